//! Provider event markers (a redelivered webhook event changes nothing) and the
//! reference a typing indicator's deliveries carry.

/// Inside a transaction: records a provider event's marker; false when it was there
/// already (the event was applied before). A macro, so that one body serves both
/// backends' connections.
macro_rules! mark_event {
    ($c:expr, $ev:expr, $now:expr) => {
        diesel::insert_into($crate::sql::schema::webhook_events::table)
            .values((
                $crate::sql::schema::webhook_events::source.eq(&$ev.source),
                $crate::sql::schema::webhook_events::event_id.eq(&$ev.id),
                $crate::sql::schema::webhook_events::received_at.eq($now),
            ))
            .on_conflict_do_nothing()
            .execute($c)
            .await
            .map(|n| n > 0)
    };
}
/// The `message_id` of a `message.typing` delivery: the sender's subject, which
/// erasing it finds the delivery by.
pub(crate) fn typing_ref(subject: &str) -> String {
    format!("typing:{subject}")
}

pub(crate) use mark_event;
