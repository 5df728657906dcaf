//! Erasing a subject: its data key destroyed, its messages blanked, those in flight
//! ended, its webhook deliveries ended and blanked; one audit fact says so.

use crate::SqlStore;
use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::common::*;
use crate::sql::schema::*;
use crate::{backend, write_tx};
use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::audit::*;
use hermod_core::ports::PortResult;
use hermod_core::{Status, now_ms};
use serde_json::json;
use std::collections::HashSet;

/// Not yet at an outcome: still to be sent, or sent and awaiting its receipt.
pub(super) fn in_flight(s: Status) -> bool {
    matches!(
        s,
        Status::Accepted | Status::Scheduled | Status::Queued | Status::Sending | Status::Sent
    )
}

/// The messages of a subject still on their way are canceled; all of its content
/// becomes unreadable when its data key goes, and what is not sealed under it goes
/// too: message metadata, webhook deliveries about its messages and replies, app
/// devices and envelopes, stored idempotent responses that name it, and parts of its
/// replies still waiting for the rest.
pub(super) async fn erase(
    store: &SqlStore,
    tenant: &str,
    number: &str,
    ours: &[String],
) -> PortResult<Erasure> {
    let ours: HashSet<String> = ours
        .iter()
        .map(|s| hermod_core::inbound::sender_key(s))
        .collect();
    let subject = store.vault.lookup(number);
    let now = now_ms();
    let t = tenant.to_owned();
    let number = number.to_owned();
    let digits = hermod_core::inbound::sender_key(&number);
    write_tx!(&store.db, |c| {
        let destroyed = diesel::delete(
            subject_keys::table
                .filter(subject_keys::tenant_id.eq(&t))
                .filter(subject_keys::subject.eq(&subject)),
        )
        .execute(c)
        .await?;
        let msgs: Vec<(String, String)> = messages::table
            .filter(messages::tenant_id.eq(&t))
            .filter(messages::to_hash.eq(&subject))
            .select((messages::id, messages::status))
            .load(c)
            .await?;
        let open: Vec<String> = msgs
            .iter()
            .filter(|(_, s)| in_flight(parse_status(s)))
            .map(|(id, _)| id.clone())
            .collect();
        let all: Vec<&str> = msgs.iter().map(|(id, _)| id.as_str()).collect();
        for chunk in open.chunks(500) {
            diesel::update(
                attempts::table
                    .filter(attempts::message_id.eq_any(chunk))
                    .filter(attempts::status.eq(Status::Queued.as_str())),
            )
            .set((
                attempts::status.eq(Status::Canceled.as_str()),
                attempts::updated_at.eq(now),
            ))
            .execute(c)
            .await?;
            diesel::update(messages::table.filter(messages::id.eq_any(chunk)))
                .set((
                    messages::status.eq(Status::Canceled.as_str()),
                    messages::reason.eq(ERASED),
                    messages::updated_at.eq(now),
                ))
                .execute(c)
                .await?;
            diesel::delete(
                fallback_timers::table.filter(fallback_timers::message_id.eq_any(chunk)),
            )
            .execute(c)
            .await?;
        }
        // Its replies, by the sender's HMAC (their content is sealed like messages').
        let replies: Vec<String> = inbound_messages::table
            .filter(inbound_messages::tenant_id.eq(&t))
            .filter(inbound_messages::from_hash.eq(&subject))
            .select(inbound_messages::id)
            .load(c)
            .await?;
        for chunk in all.chunks(500) {
            diesel::update(messages::table.filter(messages::id.eq_any(chunk)))
                .set((
                    messages::shredded_at.eq(now),
                    messages::metadata.eq(None::<String>),
                ))
                .execute(c)
                .await?;
            diesel::delete(app_inbox::table.filter(app_inbox::message_id.eq_any(chunk)))
                .execute(c)
                .await?;
        }
        // Deliveries that waited or failed keep their payload (metadata, a reply's
        // number and text): blanked, and those still waiting end.
        let typing = crate::sql::markers::typing_ref(&subject);
        let about: Vec<&str> = all
            .iter()
            .copied()
            .chain(replies.iter().map(String::as_str))
            .chain(std::iter::once(typing.as_str()))
            .collect();
        // (Message and inbound ids are unique across tenants.)
        for chunk in about.chunks(500) {
            crate::sql::deliveries::erase_deliveries_of!(c, chunk, now)?;
        }
        // App devices registered for the number, with their envelopes.
        let devices: Vec<String> = devices::table
            .filter(devices::tenant_id.eq(&t))
            .filter(devices::recipient.eq(&number))
            .select(devices::id)
            .load(c)
            .await?;
        if !devices.is_empty() {
            diesel::delete(app_inbox::table.filter(app_inbox::device_id.eq_any(&devices)))
                .execute(c)
                .await?;
            diesel::delete(devices::table.filter(devices::id.eq_any(&devices)))
                .execute(c)
                .await?;
        }
        // Stored responses name every recipient's subject (see `seal::seal_idem`).
        diesel::update(
            idempotency_keys::table
                .filter(idempotency_keys::tenant_id.eq(&t))
                .filter(idempotency_keys::body.like(format!("%{subject}%"))),
        )
        .set(idempotency_keys::body.eq(crate::sql::seal::ERASED_BODY))
        .execute(c)
        .await?;
        // Parts of its replies to this tenant's numbers, still waiting for the rest.
        let waiting: Vec<String> = inbound_parts::table
            .filter(inbound_parts::from_number.eq(&digits))
            .select(inbound_parts::to_addr)
            .distinct()
            .load(c)
            .await?;
        let to_us: Vec<&String> = waiting
            .iter()
            .filter(|to| ours.contains(&hermod_core::inbound::sender_key(to)))
            .collect();
        if !to_us.is_empty() {
            diesel::delete(
                inbound_parts::table
                    .filter(inbound_parts::from_number.eq(&digits))
                    .filter(inbound_parts::to_addr.eq_any(to_us)),
            )
            .execute(c)
            .await?;
        }
        let evs = open
            .iter()
            .map(|id| {
                event_row(
                    id,
                    &t,
                    Status::Canceled,
                    None,
                    Some(json!({ "reason": ERASED })),
                    now,
                )
            })
            .collect();
        c.insert_events(evs).await?;
        let out = Erasure {
            subject: subject.clone(),
            key_destroyed: destroyed > 0,
            messages: i64::try_from(msgs.len()).unwrap_or(i64::MAX),
            canceled: i64::try_from(open.len()).unwrap_or(i64::MAX),
        };
        c.insert_audit(vec![fact(
            &t,
            now,
            "erasure",
            Some(&subject),
            json!({
                "key_destroyed": out.key_destroyed,
                "messages": out.messages,
                "canceled": out.canceled,
            }),
        )])
        .await?;
        Ok::<_, DieselError>(out)
    })
    .map_err(backend)
}
