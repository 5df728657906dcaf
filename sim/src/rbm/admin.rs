//! The simulator's own control endpoints (not Google's): devices, user messages and
//! events, launch states, what it received.

#[allow(unused_imports)]
use super::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewDevice {
    phone: String,
    features: Option<Vec<String>>,
    #[serde(default = "yes")]
    online: bool,
}

pub(super) fn yes() -> bool {
    true
}

pub(super) async fn add_device_http(
    inner: web::Data<Inner>,
    body: web::Json<NewDevice>,
) -> HttpResponse {
    let d = body.into_inner();
    if !valid_phone(&d.phone) {
        return HttpResponse::BadRequest().json(json!({"error": "phone must be E.164"}));
    }
    let features = d
        .features
        .unwrap_or_else(|| ALL_FEATURES.iter().map(|f| (*f).to_owned()).collect());
    lock(&inner).devices.insert(
        d.phone,
        Device {
            features,
            online: d.online,
        },
    );
    HttpResponse::Created().json(json!({"status": "ok"}))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UserMessage {
    text: Option<String>,
    postback_data: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

pub(super) async fn user_message_http(
    inner: web::Data<Inner>,
    phone: web::Path<String>,
    body: web::Json<UserMessage>,
) -> HttpResponse {
    let what = match (
        &body.postback_data,
        body.latitude,
        body.longitude,
        &body.text,
    ) {
        (Some(p), _, _, t) => json!({"suggestionResponse": {
            "postbackData": p, "text": t.clone().unwrap_or_default(), "type": "REPLY"}}),
        (None, Some(lat), Some(lon), _) => {
            json!({"location": {"latitude": lat, "longitude": lon}})
        }
        (None, _, _, Some(t)) => json!({ "text": t }),
        _ => {
            return HttpResponse::BadRequest()
                .json(json!({"error": "give text, postback_data or latitude+longitude"}));
        }
    };
    user_says(inner.into_inner(), &phone, what);
    HttpResponse::Accepted().json(json!({"status": "queued"}))
}

#[derive(serde::Deserialize)]
pub(super) struct UserEvent {
    #[serde(rename = "type")]
    kind: String,
}

pub(super) async fn user_event_http(
    inner: web::Data<Inner>,
    phone: web::Path<String>,
    body: web::Json<UserEvent>,
) -> HttpResponse {
    if !matches!(
        body.kind.as_str(),
        "IS_TYPING" | "SUBSCRIBE" | "UNSUBSCRIBE"
    ) {
        return HttpResponse::BadRequest()
            .json(json!({"error": "type is IS_TYPING, SUBSCRIBE or UNSUBSCRIBE"}));
    }
    let ev = bare_user_event(&inner, &phone, &body.kind);
    let inner = inner.into_inner();
    tokio::spawn(async move { push(&inner, &ev).await });
    HttpResponse::Accepted().json(json!({"status": "queued"}))
}

#[derive(serde::Deserialize)]
pub(super) struct Launch {
    region: String,
    old: String,
    new: String,
}

pub(super) async fn launch_http(inner: web::Data<Inner>, body: web::Json<Launch>) -> HttpResponse {
    let (ev, attributes) = launch_event(&inner.cfg, &body.region, &body.old, &body.new);
    let inner = inner.into_inner();
    tokio::spawn(async move { push_with(&inner, &ev, attributes).await });
    HttpResponse::Accepted().json(json!({"status": "queued"}))
}

pub(super) async fn messages_http(inner: web::Data<Inner>) -> HttpResponse {
    let st = lock(&inner);
    let list: Vec<Value> = st
        .received
        .iter()
        .map(|(phone, id, body)| {
            json!({
                "phone": phone,
                "message_id": id,
                "state": format!("{:?}", st.messages.get(id).map(|m| m.state)),
                "agent_message": body,
            })
        })
        .collect();
    HttpResponse::Ok().json(list)
}

pub(super) async fn stats_http(inner: web::Data<Inner>) -> HttpResponse {
    let st = lock(&inner);
    HttpResponse::Ok().json(json!({
        "token_requests": st.token_requests,
        "capability_requests": st.capability_requests,
        "messages": st.received.len(),
        "events_sent": st.events_sent,
        "agent_events": st.agent_events.len(),
        "files": st.files.len(),
        "devices": st.devices.len(),
    }))
}
