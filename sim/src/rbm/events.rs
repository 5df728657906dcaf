//! The events the simulated users and Google send to the agent's webhook: signed
//! Pub/Sub push envelopes of user messages, receipts and launch states.

#[allow(unused_imports)]
use super::*;

/// Pushes a user message event: the common fields plus `what` (`text`,
/// `suggestionResponse` or `location`).
pub(super) fn user_says(inner: Arc<Inner>, phone: &str, what: Value) {
    let id = random_id();
    lock(&inner)
        .user_messages
        .insert(id.clone(), phone.to_owned());
    let mut ev = json!({
        "senderPhoneNumber": phone,
        "messageId": id,
        "sendTime": rfc3339_now(),
        "agentId": inner.cfg.agent_id,
    });
    if let (Some(ev), Value::Object(what)) = (ev.as_object_mut(), what) {
        ev.extend(what);
    }
    // A phone says it is typing before it sends.
    let typing = bare_user_event(&inner, phone, "IS_TYPING");
    tokio::spawn(async move {
        push(&inner, &typing).await;
        push(&inner, &ev).await;
    });
}

/// A user event about no message (IS_TYPING, SUBSCRIBE, UNSUBSCRIBE): no `messageId`.
pub(super) fn bare_user_event(inner: &Inner, phone: &str, kind: &str) -> Value {
    json!({
        "senderPhoneNumber": phone,
        "eventType": kind,
        "eventId": random_id(),
        "sendTime": rfc3339_now(),
        "agentId": inner.cfg.agent_id,
    })
}

/// An AgentLaunchEvent and the attributes of its Pub/Sub message.
pub(super) fn launch_event(
    cfg: &RbmSimConfig,
    region: &str,
    old: &str,
    new: &str,
) -> (Value, Value) {
    (
        json!({
            "eventId": random_id(),
            "agentId": cfg.agent_id,
            "botDisplayName": "Simulated agent",
            "brandId": "brands/sim",
            "brandDisplayName": "Sim brand",
            "regionId": format!("/v1/regions/{region}"),
            "oldLaunchState": old,
            "newLaunchState": new,
            "actingParty": "carrier",
            "comment": "",
            "sendTime": rfc3339_now(),
        }),
        json!({
            "business_id": cfg.agent_id,
            "event_type": new,
            "product": "RBM",
            "project_number": "0",
            "type": "agent_launch_event",
        }),
    )
}

pub(super) fn envelope(cfg: &RbmSimConfig, event: &Value) -> (String, String) {
    envelope_with(cfg, event, json!({}))
}

pub(super) fn envelope_with(
    cfg: &RbmSimConfig,
    event: &Value,
    attributes: Value,
) -> (String, String) {
    let data = event.to_string();
    let sig = hermod_crypto::rbm::sign_webhook(&cfg.client_token, data.as_bytes());
    let body = json!({
        "message": {
            "data": STANDARD.encode(data.as_bytes()),
            "messageId": random_id(),
            "publishTime": rfc3339_now(),
            "attributes": attributes,
        },
        "subscription": "projects/rbm-sim/subscriptions/rbm-agent-subscription",
    });
    (body.to_string(), sig)
}

/// POSTs one event to the webhook, retrying like Pub/Sub (with backoff) on errors.
pub(super) async fn push(inner: &Inner, event: &Value) {
    push_with(inner, event, json!({})).await;
}

pub(super) async fn push_with(inner: &Inner, event: &Value, attributes: Value) {
    let Some(url) = &inner.cfg.webhook_url else {
        return;
    };
    let (body, sig) = envelope_with(&inner.cfg, event, attributes);
    let mut wait = Duration::from_millis(100);
    for _ in 0..8 {
        let r = inner
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("X-Goog-Signature", &sig)
            .body(body.clone())
            .send()
            .await;
        if r.is_ok_and(|r| r.status().is_success()) {
            lock(inner).events_sent += 1;
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
    }
    tracing::warn!("rbm sim: webhook did not accept an event");
}

pub(super) fn user_event(inner: &Inner, phone: &str, kind: &str, message_id: &str) -> Value {
    json!({
        "senderPhoneNumber": phone,
        "eventType": kind,
        "eventId": random_id(),
        "messageId": message_id,
        "sendTime": rfc3339_now(),
        "agentId": inner.cfg.agent_id,
    })
}

/// Delivers a pending message once its device is online (or expires it), then reads
/// it after the read delay.
pub(super) async fn deliver(inner: Arc<Inner>, id: String, now: bool) {
    if !now {
        tokio::time::sleep(inner.cfg.delivery_delay).await;
    }
    let phone = loop {
        let outcome = {
            let mut st = lock(&inner);
            let online = |st: &State, p: &str| {
                inner.cfg.all_reachable && !st.devices.contains_key(p)
                    || st.devices.get(p).is_some_and(|d| d.online)
            };
            let Some(m) = st.messages.get(&id) else {
                return;
            };
            let phone = m.phone.clone();
            if m.state != SimState::Pending {
                return;
            }
            let expired = m.expires_at.is_some_and(|e| Instant::now() >= e);
            let deliverable = now || online(&st, &phone);
            let m = st.messages.get_mut(&id);
            match m {
                Some(m) if deliverable && !expired => {
                    m.state = SimState::Delivered;
                    Some((phone, "DELIVERED"))
                }
                Some(m) if expired => {
                    m.state = SimState::Expired;
                    Some((phone, "TTL_EXPIRATION_REVOKED"))
                }
                _ => None,
            }
        };
        match outcome {
            Some((phone, "DELIVERED")) => break phone,
            Some((phone, kind)) => {
                let ev = json!({
                    "eventType": kind,
                    "eventId": random_id(),
                    "messageId": id,
                    "phoneNumber": phone,
                    "sendTime": rfc3339_now(),
                    "agentId": inner.cfg.agent_id,
                });
                push(&inner, &ev).await;
                return;
            }
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    push(&inner, &user_event(&inner, &phone, "DELIVERED", &id)).await;
    let Some(read) = inner.cfg.read_delay else {
        return;
    };
    tokio::time::sleep(read).await;
    if let Some(m) = lock(&inner).messages.get_mut(&id) {
        m.state = SimState::Read;
    }
    push(&inner, &user_event(&inner, &phone, "READ", &id)).await;
}
