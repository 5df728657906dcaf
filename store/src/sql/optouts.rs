//! Opt-outs as the message path checks them (the opt-out records themselves are the
//! inbound part's).

use hermod_core::inbound::{ALL_SENDERS, sender_key};

use super::rows::{MessageRow, OptOutRow};

/// `reason` of a message refused because its recipient opted out.
pub const OPTED_OUT: &str = "recipient_opted_out";

/// Whether an opt-out blocks this message. A message without a sender is blocked by
/// any opt-out of its tenant for that recipient: its sender is the connector's
/// default, which a recipient may have answered STOP to.
pub(crate) fn opted_out(outs: &[OptOutRow], m: &MessageRow) -> bool {
    outs.iter().any(|o| {
        o.tenant_id == m.tenant_id
            && (m.to_hash.as_deref() == Some(o.recipient.as_str()) || o.recipient == m.to_number)
            && (o.sender == ALL_SENDERS
                || m.from_addr
                    .as_deref()
                    .is_none_or(|f| sender_key(f) == o.sender))
    })
}
