//! Our content model → RBM's `AgentMessage` JSON (RBM API v1 reference:
//! phones.agentMessages, `AgentContentMessage`, `RichCard`, `Suggestion`).

use hermod_core::content::{
    Alignment, Card, Content, Media, MediaHeight, Orientation, RichMessage, Suggestion,
};
use hermod_core::model::Outgoing;
use serde_json::{Value, json};

fn content_info(m: &Media) -> Value {
    let mut v = json!({ "fileUrl": m.url, "forceRefresh": false });
    if let Some(t) = &m.thumbnail_url {
        v["thumbnailUrl"] = json!(t);
    }
    v
}

fn suggestion(s: &Suggestion) -> Value {
    let (text, postback) = (s.text(), s.postback_data());
    let action = |key: &str, body: Value| json!({ "action": { "text": text, "postbackData": postback, key: body } });
    match s {
        Suggestion::Reply { .. } => json!({ "reply": { "text": text, "postbackData": postback } }),
        Suggestion::OpenUrl { url, .. } => action("openUrlAction", json!({ "url": url })),
        Suggestion::Dial { phone_number, .. } => {
            action("dialAction", json!({ "phoneNumber": phone_number }))
        }
        Suggestion::ViewLocation {
            latitude,
            longitude,
            label,
            ..
        } => {
            let mut v = json!({ "latLong": { "latitude": latitude, "longitude": longitude } });
            if let Some(l) = label {
                v["label"] = json!(l);
            }
            action("viewLocationAction", v)
        }
        Suggestion::CalendarEvent {
            start_time,
            end_time,
            title,
            description,
            ..
        } => {
            let mut v = json!({ "startTime": start_time, "endTime": end_time, "title": title });
            if let Some(d) = description {
                v["description"] = json!(d);
            }
            action("createCalendarEventAction", v)
        }
        Suggestion::ShareLocation { .. } => action("shareLocationAction", json!({})),
    }
}

fn card_content(c: &Card) -> Value {
    let mut v = json!({});
    if let Some(t) = &c.title {
        v["title"] = json!(t);
    }
    if let Some(d) = &c.description {
        v["description"] = json!(d);
    }
    if let Some(m) = &c.media {
        let height = match m.height.unwrap_or(MediaHeight::Medium) {
            MediaHeight::Short => "SHORT",
            MediaHeight::Medium => "MEDIUM",
            MediaHeight::Tall => "TALL",
        };
        v["media"] = json!({ "height": height, "contentInfo": content_info(m) });
    }
    if !c.suggestions.is_empty() {
        v["suggestions"] = c.suggestions.iter().map(suggestion).collect();
    }
    v
}

/// The `contentMessage` of a rich message.
pub fn content_message(m: &RichMessage) -> Value {
    let mut v = match &m.content {
        Content::Text(t) => json!({ "text": t }),
        Content::Media(media) => json!({ "contentInfo": content_info(media) }),
        Content::Card(c) => {
            let orientation = c.orientation.unwrap_or(Orientation::Vertical);
            let mut card = json!({
                "cardOrientation": match orientation {
                    Orientation::Vertical => "VERTICAL",
                    Orientation::Horizontal => "HORIZONTAL",
                },
                "cardContent": card_content(c),
            });
            if orientation == Orientation::Horizontal {
                card["thumbnailImageAlignment"] =
                    json!(match c.image_alignment.unwrap_or(Alignment::Left) {
                        Alignment::Left => "LEFT",
                        Alignment::Right => "RIGHT",
                    });
            }
            json!({ "richCard": { "standaloneCard": card } })
        }
        Content::Carousel(cards) => json!({ "richCard": { "carouselCard": {
            "cardWidth": "MEDIUM",
            "cardContents": cards.iter().map(card_content).collect::<Vec<_>>(),
        }}}),
    };
    if !m.suggestions.is_empty() {
        v["suggestions"] = m.suggestions.iter().map(suggestion).collect();
    }
    v
}

/// The `AgentMessage` body for an outgoing message: its rich content (or its text),
/// and `ttl` = what is left of the message's lifetime.
pub fn agent_message(msg: &Outgoing, now_ms: i64) -> Value {
    let content = match &msg.content {
        Some(m) => content_message(m),
        None => json!({ "text": msg.text }),
    };
    let mut v = json!({ "contentMessage": content });
    if let Some(exp) = msg.expires_at {
        let secs = ((exp - now_ms).max(1000) + 999) / 1000;
        v["ttl"] = json!(format!("{secs}s"));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use hermod_core::{AttemptId, MessageId, Msisdn};

    fn rich(v: Value) -> RichMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn standalone_card_in_rbm_shape() {
        let m = rich(json!({
            "content": {"card": {
                "title": "Order shipped", "description": "Arrives Tuesday",
                "orientation": "horizontal", "image_alignment": "right",
                "media": {"url": "https://example.com/a.png", "thumbnail_url": "https://example.com/t.png", "height": "tall"},
                "suggestions": [{"open_url": {"text": "Track", "url": "https://example.com/t"}}]
            }},
            "suggestions": [
                {"reply": {"text": "Thanks", "postback_data": "thanks"}},
                {"dial": {"text": "Call", "phone_number": "+442071234567"}},
                {"view_location": {"text": "Shop", "latitude": 51.5, "longitude": -0.12, "label": "Our shop"}},
                {"calendar_event": {"text": "Remind me", "start_time": "2026-12-01T09:00:00Z", "end_time": "2026-12-01T10:00:00Z", "title": "Delivery"}},
                {"share_location": {"text": "Where are you?"}}
            ]
        }));
        assert_eq!(
            content_message(&m),
            json!({
                "richCard": {"standaloneCard": {
                    "cardOrientation": "HORIZONTAL",
                    "thumbnailImageAlignment": "RIGHT",
                    "cardContent": {
                        "title": "Order shipped", "description": "Arrives Tuesday",
                        "media": {"height": "TALL", "contentInfo": {"fileUrl": "https://example.com/a.png", "thumbnailUrl": "https://example.com/t.png", "forceRefresh": false}},
                        "suggestions": [{"action": {"text": "Track", "postbackData": "Track", "openUrlAction": {"url": "https://example.com/t"}}}]
                    }
                }},
                "suggestions": [
                    {"reply": {"text": "Thanks", "postbackData": "thanks"}},
                    {"action": {"text": "Call", "postbackData": "Call", "dialAction": {"phoneNumber": "+442071234567"}}},
                    {"action": {"text": "Shop", "postbackData": "Shop", "viewLocationAction": {"latLong": {"latitude": 51.5, "longitude": -0.12}, "label": "Our shop"}}},
                    {"action": {"text": "Remind me", "postbackData": "Remind me", "createCalendarEventAction": {"startTime": "2026-12-01T09:00:00Z", "endTime": "2026-12-01T10:00:00Z", "title": "Delivery"}}},
                    {"action": {"text": "Where are you?", "postbackData": "Where are you?", "shareLocationAction": {}}}
                ]
            })
        );
    }

    #[test]
    fn carousel_media_text_and_ttl() {
        let m = rich(
            json!({"content": {"carousel": [{"title": "A"}, {"title": "B", "media": {"url": "https://x.io/b.jpg"}}]}}),
        );
        assert_eq!(
            content_message(&m),
            json!({"richCard": {"carouselCard": {"cardWidth": "MEDIUM", "cardContents": [
                {"title": "A"},
                {"title": "B", "media": {"height": "MEDIUM", "contentInfo": {"fileUrl": "https://x.io/b.jpg", "forceRefresh": false}}}
            ]}}})
        );
        let media = rich(json!({"content": {"media": {"url": "https://x.io/v.mp4"}}}));
        assert_eq!(
            content_message(&media),
            json!({"contentInfo": {"fileUrl": "https://x.io/v.mp4", "forceRefresh": false}})
        );
        let o = Outgoing {
            attempt_id: AttemptId::generate(),
            tenant_id: hermod_core::TenantId::from_trusted("ten_test".into()),
            message_id: MessageId::generate(),
            to: Msisdn::parse("+447911123456").unwrap(),
            from: None,
            text: "plain".into(),
            user_ref: 0,
            expires_at: Some(100_500),
            content: None,
            user_id: None,
            traffic_type: None,
            binary: None,
        };
        assert_eq!(
            agent_message(&o, 10_000),
            json!({"contentMessage": {"text": "plain"}, "ttl": "91s"})
        );
    }
}
