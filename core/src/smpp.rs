//! The SMPP server's records: accounts client applications (ESMEs) bind with, the
//! parts of concatenated submits until they are whole, and the outbox of receipts and
//! inbound messages each account's receiver binds take as `deliver_sm`.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::TenantId;
use crate::ports::PortResult;

/// An SMPP account: a tenant's client application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmppAccount {
    pub system_id: String,
    pub tenant_id: TenantId,
    /// `pbkdf2-sha256$…` (see `hermod_crypto::password`).
    pub password_hash: String,
    /// Networks (CIDR) it may bind from; empty: anywhere.
    pub networks: Vec<String>,
    /// Binds open at once (per process).
    pub max_binds: u32,
    /// Submits in flight per bind; beyond it `ESME_RMSGQFUL`.
    pub window: u32,
    /// Submits per second over its binds (per process); beyond it `ESME_RTHROTTLED`.
    /// 0: only the tenant's rate limit.
    pub throughput: u32,
    /// RCS and app reads also come as a second receipt (`stat:ACCEPTD`).
    pub read_receipts: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What an account's bind needs besides the account: its tenant's limits and state.
#[derive(Clone, Debug)]
pub struct BindTarget {
    pub account: SmppAccount,
    pub limits: crate::tenant::TenantLimits,
    pub suspended: bool,
}

/// Defaults of a new account.
pub const DEFAULT_MAX_BINDS: u32 = 4;
pub const DEFAULT_WINDOW: u32 = 50;

/// SMPP 3.4 passwords are at most 8 characters.
pub const MAX_PASSWORD: usize = 8;
/// system_id is at most 15 characters.
pub const MAX_SYSTEM_ID: usize = 15;

/// Checks CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or plain addresses; names the bad one.
pub fn parse_networks(networks: &[String]) -> Result<Vec<ipnet::IpNet>, String> {
    networks
        .iter()
        .map(|n| {
            n.parse::<ipnet::IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("'{n}' is not a network (CIDR) or an address"))
        })
        .collect()
}

/// Whether an account limited to `networks` may bind from `ip` (empty: anywhere).
pub fn network_allows(networks: &[String], ip: std::net::IpAddr) -> bool {
    let ip = crate::net::canonical(ip);
    networks.is_empty()
        || parse_networks(networks).is_ok_and(|nets| nets.iter().any(|n| n.contains(&ip)))
}

/// Whether `s` may be a system_id: 1–15 letters, digits, `_` or `-`.
pub fn valid_system_id(s: &str) -> bool {
    (1..=MAX_SYSTEM_ID).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Where a message submitted over SMPP came from: its receipt goes back to that
/// account, addressed to `source` (the submit's source_addr).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmppOrigin {
    /// The account's system_id.
    #[serde(rename = "a")]
    pub system_id: String,
    /// `registered_delivery`'s receipt bits (0x01 any outcome, 0x02 failures only).
    #[serde(rename = "rd")]
    pub registered_delivery: u8,
    #[serde(rename = "src")]
    pub source: String,
    #[serde(rename = "ton")]
    pub source_ton: u8,
    #[serde(rename = "npi")]
    pub source_npi: u8,
    /// A binary message's data_coding: its body is the bytes in hex, sent over SMS only.
    #[serde(rename = "bin", default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<u8>,
}

/// What an account's receiver bind gets: a receipt or an inbound message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    Receipt(ReceiptNotice),
    Mo(MoNotice),
}

/// A delivery receipt (SMPP 3.4 Appendix B).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptNotice {
    pub message_id: String,
    /// The recipient (the receipt's source_addr), without `+`.
    pub recipient: String,
    /// The submit's source_addr (the receipt's destination_addr).
    pub source: String,
    pub source_ton: u8,
    pub source_npi: u8,
    /// `DELIVRD`, `UNDELIV`, `EXPIRED`, `DELETED`, `REJECTD`, `ACCEPTD` (read).
    pub stat: String,
    /// The `message_state` TLV's value.
    pub state: u8,
    /// 3-digit `err:`.
    pub err: String,
    pub submitted_at: i64,
    pub done_at: i64,
    /// The channel that ended it (`rcs`, `sms`, `app`).
    pub channel: Option<String>,
}

/// An inbound message to one of the tenant's numbers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoNotice {
    pub inbound_id: String,
    /// The sender, without `+`.
    pub from: String,
    /// The tenant's number or sender it was sent to.
    pub to: String,
    pub text: String,
    pub channel: String,
}

/// A receipt's `stat`, `message_state` and `err` for a message status; None for
/// statuses that are not final (and `read`, see [`read_receipt`]).
pub fn receipt_state(status: crate::Status) -> Option<(&'static str, u8, &'static str)> {
    use crate::Status::*;
    match status {
        Delivered => Some(("DELIVRD", 2, "000")),
        Failed => Some(("UNDELIV", 5, "001")),
        Expired => Some(("EXPIRED", 3, "000")),
        Canceled => Some(("DELETED", 4, "000")),
        Rejected => Some(("REJECTD", 8, "000")),
        _ => None,
    }
}

/// The second receipt of a message read on RCS or the app: `stat:ACCEPTD`
/// (`message_state` 6).
pub fn read_receipt() -> (&'static str, u8, &'static str) {
    ("ACCEPTD", 6, "000")
}

/// `message_state` (SMPP 5.0 §4.7.15) of a message status, for `query_sm`.
pub fn message_state(status: crate::Status) -> u8 {
    use crate::Status::*;
    match status {
        Scheduled => 0,
        Delivered | Read => 2,
        Expired => 3,
        Canceled => 4,
        Failed => 5,
        Rejected => 8,
        _ => 1,
    }
}

/// An outbox row leased to this process.
#[derive(Clone, Debug)]
pub struct OutboxItem {
    pub id: i64,
    pub system_id: String,
    pub notice: Notice,
}

/// Which concatenated submit a part belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PartKey {
    pub system_id: String,
    pub source: String,
    pub dest: String,
    pub reference: u16,
    pub total: u8,
}

/// One part of a concatenated submit, its user data without the header.
#[derive(Clone, Debug)]
pub struct SubmitPart {
    pub key: PartKey,
    pub seq: u8,
    pub data_coding: u8,
    pub bytes: Vec<u8>,
    pub registered_delivery: u8,
    /// The message id the parts get when this is the first one stored.
    pub new_id: String,
    pub at: i64,
}

/// A stored part: the message is still incomplete, or now whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartOutcome {
    Waiting {
        message_id: String,
    },
    /// Every part (data_coding, bytes) in order, and registered_delivery over them.
    Complete {
        message_id: String,
        parts: Vec<(u8, Vec<u8>)>,
        registered_delivery: u8,
    },
}

/// The server's store.
#[async_trait]
pub trait SmppStore: Send + Sync {
    /// The account with its tenant's limits; None when unknown or its tenant deleted.
    async fn bind_target(&self, system_id: &str) -> PortResult<Option<BindTarget>>;
    async fn accounts(&self, tenant: Option<&TenantId>) -> PortResult<Vec<SmppAccount>>;
    /// Creates or updates an account (by system_id). Err(Conflict) when another tenant
    /// holds the system_id; None when the tenant does not exist.
    async fn put_account(&self, account: &SmppAccount) -> PortResult<Option<SmppAccount>>;
    /// Deletes a tenant's account and what waits for it; false when there is none.
    async fn delete_account(&self, tenant: &TenantId, system_id: &str) -> PortResult<bool>;
    /// Stores a part (a part stored before is kept as it was).
    async fn put_part(&self, part: &SubmitPart) -> PortResult<PartOutcome>;
    /// Forgets the parts of a message once it is stored.
    async fn drop_parts(&self, key: &PartKey) -> PortResult<()>;
    /// Leases up to `max` waiting notices of these accounts for `lease_ms`.
    async fn lease_outbox(
        &self,
        system_ids: &[String],
        max: usize,
        lease_ms: i64,
    ) -> PortResult<Vec<OutboxItem>>;
    /// Acknowledged by the client: never sent again.
    async fn ack_outbox(&self, ids: &[i64]) -> PortResult<()>;
    /// Forgets acknowledged rows written before `before` (Unix ms); how many.
    async fn purge_outbox(&self, before: i64) -> PortResult<usize>;
    /// Not delivered: due again after `delay_ms`.
    async fn release_outbox(&self, ids: &[i64], delay_ms: i64) -> PortResult<()>;
    /// Replaces the text (and times) of a message still scheduled; false when it is
    /// not the tenant's or no longer waiting.
    async fn replace_scheduled(
        &self,
        tenant: &TenantId,
        id: &crate::MessageId,
        text: &str,
        send_at: Option<i64>,
        ttl_secs: Option<i64>,
    ) -> PortResult<bool>;
}

/// SMPP time (`YYMMDDhhmmsstnnp`, §7.1.1): absolute (`+`/`-`: quarter hours from UTC)
/// or relative (`R`: years, months, days, hours, minutes, seconds from `now`), as Unix
/// ms. None for an empty field; Err for a malformed one.
pub fn parse_smpp_time(s: &str, now_ms: i64) -> Result<Option<i64>, String> {
    if s.is_empty() {
        return Ok(None);
    }
    let b = s.as_bytes();
    if b.len() != 16 || !b[..15].iter().all(u8::is_ascii_digit) {
        return Err(format!("'{s}' is not an SMPP time (YYMMDDhhmmsstnnp)"));
    }
    let n = |i: usize| i64::from(b[i] - b'0') * 10 + i64::from(b[i + 1] - b'0');
    let (yy, mo, dd, hh, mi, ss) = (n(0), n(2), n(4), n(6), n(8), n(10));
    let tenths = i64::from(b[12] - b'0');
    let quarters = n(13);
    match b[15] {
        b'R' => {
            // Months and years as 30 and 365 days, as SMSCs count them.
            let secs = ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss;
            Ok(Some(now_ms + secs * 1000))
        }
        p @ (b'+' | b'-') => {
            let month = time::Month::try_from(u8::try_from(mo).unwrap_or(0))
                .map_err(|_| format!("'{s}': month {mo}"))?;
            let date = time::Date::from_calendar_date(
                2000 + i32::try_from(yy).unwrap_or(0),
                month,
                u8::try_from(dd).unwrap_or(0),
            )
            .map_err(|e| format!("'{s}': {e}"))?;
            let t = time::Time::from_hms(
                u8::try_from(hh).unwrap_or(99),
                u8::try_from(mi).unwrap_or(99),
                u8::try_from(ss).unwrap_or(99),
            )
            .map_err(|e| format!("'{s}': {e}"))?;
            let local = date.with_time(t).assume_utc().unix_timestamp() * 1000 + tenths * 100;
            let offset = quarters * 15 * 60 * 1000;
            Ok(Some(if p == b'+' {
                local - offset
            } else {
                local + offset
            }))
        }
        _ => Err(format!("'{s}' ends in neither R, + nor -")),
    }
}

/// `YYMMDDhhmm` (UTC) of a Unix ms time: the receipt's dates.
pub fn receipt_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}{:02}{:02}{:02}{:02}",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// The receipt's text, SMPP 3.4 Appendix B.
pub fn receipt_text(r: &ReceiptNotice) -> String {
    let dlvrd = if r.state == 2 || r.state == 6 {
        "001"
    } else {
        "000"
    };
    format!(
        "id:{} sub:001 dlvrd:{dlvrd} submit date:{} done date:{} stat:{} err:{} text:",
        r.message_id,
        receipt_date(r.submitted_at),
        receipt_date(r.done_at),
        r.stat,
        r.err
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smpp_times_absolute_and_relative() {
        // 2026-12-07 10:30:00 at UTC+1 (4 quarter hours ahead) is 09:30 UTC.
        let abs = parse_smpp_time("261207103000004+", 0).unwrap().unwrap();
        assert_eq!(crate::rfc3339(abs), "2026-12-07T09:30:00Z");
        let west = parse_smpp_time("261207103000508-", 0).unwrap().unwrap();
        assert_eq!(crate::rfc3339(west - 500), "2026-12-07T12:30:00Z");
        // Relative: one day, two hours, three minutes, four seconds.
        assert_eq!(
            parse_smpp_time("000001020304000R", 1_000).unwrap(),
            Some(1_000 + (86_400 + 2 * 3600 + 3 * 60 + 4) * 1000)
        );
        assert_eq!(parse_smpp_time("", 0).unwrap(), None);
        assert!(parse_smpp_time("2612071030", 0).is_err());
        assert!(parse_smpp_time("261307103000004+", 0).is_err());
        assert!(parse_smpp_time("261207103000004X", 0).is_err());
    }

    #[test]
    fn receipt_text_is_appendix_b() {
        let r = ReceiptNotice {
            message_id: "msg_1".into(),
            recipient: "447700900001".into(),
            source: "Hermod".into(),
            source_ton: 5,
            source_npi: 0,
            stat: "DELIVRD".into(),
            state: 2,
            err: "000".into(),
            submitted_at: 1_796_640_000_000,
            done_at: 1_796_640_060_000,
            channel: Some("rcs".into()),
        };
        assert_eq!(
            receipt_text(&r),
            "id:msg_1 sub:001 dlvrd:001 submit date:2612071040 done date:2612071041 stat:DELIVRD err:000 text:"
        );
    }

    #[test]
    fn networks() {
        let n = vec!["10.0.0.0/8".to_owned(), "::1".to_owned()];
        assert!(network_allows(&n, "10.1.2.3".parse().unwrap()));
        assert!(network_allows(&n, "::1".parse().unwrap()));
        assert!(network_allows(&n, "::ffff:10.0.0.1".parse().unwrap()));
        assert!(!network_allows(&n, "192.168.0.1".parse().unwrap()));
        assert!(network_allows(&[], "192.168.0.1".parse().unwrap()));
        assert!(parse_networks(&["nope".to_owned()]).is_err());
    }

    #[test]
    fn system_ids_and_passwords() {
        assert!(valid_system_id("acme_01"));
        assert!(!valid_system_id(""));
        assert!(!valid_system_id("a-very-long-system-id"));
        assert!(!valid_system_id("bad id"));
    }
}
