//! RBM's limits on an AgentMessage, checked as the API does: what a send with a
//! bad message gets (400 INVALID_ARGUMENT, naming the field).

#[allow(unused_imports)]
use super::*;

/// Which of `keys` an object sets (RBM's "union fields" allow exactly one).
pub(super) fn present<'a>(v: &Value, keys: &[&'a str]) -> Vec<&'a str> {
    keys.iter()
        .copied()
        .filter(|k| v.get(k).is_some())
        .collect()
}

/// RBM's documented limits, with errors in its style (`agent_message.content_message...`).
pub fn validate_agent_message(v: &Value) -> Result<(), InvalidArgument> {
    validate(v).map_err(InvalidArgument)
}

/// What RBM's `INVALID_ARGUMENT` names: the field at fault and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArgument(pub String);

pub(super) fn validate(v: &Value) -> Result<(), String> {
    let cm = v
        .get("contentMessage")
        .filter(|c| c.is_object())
        .ok_or("agent_message.content_message: required")?;
    if let Some(t) = v.get("messageTrafficType") {
        const TYPES: [&str; 6] = [
            "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED",
            "AUTHENTICATION",
            "TRANSACTION",
            "PROMOTION",
            "SERVICEREQUEST",
            "ACKNOWLEDGEMENT",
        ];
        if !t.as_str().is_some_and(|t| TYPES.contains(&t)) {
            return Err("agent_message.message_traffic_type: unknown value".into());
        }
    }
    let p = "agent_message.content_message";
    let kinds = [
        "text",
        "fileName",
        "uploadedRbmFile",
        "richCard",
        "contentInfo",
    ];
    if present(cm, &kinds).len() != 1 {
        return Err(format!(
            "{p}: exactly one of text, fileName, uploadedRbmFile, richCard, contentInfo must be set"
        ));
    }
    if let Some(t) = cm.get("text") {
        let t = t.as_str().ok_or(format!("{p}.text: must be a string"))?;
        if t.is_empty() || t.chars().count() > 3072 {
            return Err(format!("{p}.text: must be 1 to 3072 characters"));
        }
    }
    if let Some(ci) = cm.get("contentInfo") {
        content_info(&format!("{p}.content_info"), ci)?;
    }
    if let Some(rc) = cm.get("richCard") {
        match (rc.get("standaloneCard"), rc.get("carouselCard")) {
            (Some(s), None) => {
                let q = format!("{p}.rich_card.standalone_card");
                match s["cardOrientation"].as_str() {
                    Some("VERTICAL") => {}
                    Some("HORIZONTAL") => {
                        if !matches!(
                            s["thumbnailImageAlignment"].as_str(),
                            Some("LEFT" | "RIGHT")
                        ) {
                            return Err(format!(
                                "{q}.thumbnail_image_alignment: required for HORIZONTAL cards"
                            ));
                        }
                    }
                    _ => return Err(format!("{q}.card_orientation: VERTICAL or HORIZONTAL")),
                }
                card_content(&format!("{q}.card_content"), &s["cardContent"])?;
            }
            (None, Some(c)) => {
                let q = format!("{p}.rich_card.carousel_card");
                if !matches!(c["cardWidth"].as_str(), Some("SMALL" | "MEDIUM")) {
                    return Err(format!("{q}.card_width: SMALL or MEDIUM"));
                }
                let cards = c["cardContents"]
                    .as_array()
                    .ok_or(format!("{q}.card_contents: required"))?;
                if !(2..=10).contains(&cards.len()) {
                    return Err(format!("{q}.card_contents: 2 to 10 cards"));
                }
                for (i, cc) in cards.iter().enumerate() {
                    card_content(&format!("{q}.card_contents[{i}]"), cc)?;
                }
            }
            _ => {
                return Err(format!(
                    "{p}.rich_card: exactly one of standalone_card, carousel_card"
                ));
            }
        }
    }
    suggestions(&format!("{p}.suggestions"), cm.get("suggestions"), 11)?;
    match (v.get("ttl"), v.get("expireTime")) {
        (Some(_), Some(_)) => Err("agent_message: only one of ttl, expire_time".into()),
        (Some(t), None) => {
            let ok = t
                .as_str()
                .and_then(|s| s.strip_suffix('s'))
                .and_then(|s| s.parse::<f64>().ok())
                .is_some_and(|s| s > 0.0);
            if ok {
                Ok(())
            } else {
                Err("agent_message.ttl: a duration such as \"3.5s\"".into())
            }
        }
        _ => Ok(()),
    }
}

pub(super) fn content_info(p: &str, ci: &Value) -> Result<(), String> {
    let url = ci["fileUrl"].as_str().unwrap_or_default();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(format!("{p}.file_url: a public http(s) URL is required"));
    }
    Ok(())
}

pub(super) fn card_content(p: &str, c: &Value) -> Result<(), String> {
    if !c.is_object() {
        return Err(format!("{p}: required"));
    }
    let (title, desc, media) = (c.get("title"), c.get("description"), c.get("media"));
    if title.is_none() && desc.is_none() && media.is_none() {
        return Err(format!("{p}: at least one of title, description, media"));
    }
    if title
        .and_then(Value::as_str)
        .is_some_and(|t| t.chars().count() > 200)
    {
        return Err(format!("{p}.title: at most 200 characters"));
    }
    if desc
        .and_then(Value::as_str)
        .is_some_and(|t| t.chars().count() > 2000)
    {
        return Err(format!("{p}.description: at most 2000 characters"));
    }
    if let Some(m) = media {
        if !matches!(m["height"].as_str(), Some("SHORT" | "MEDIUM" | "TALL")) {
            return Err(format!("{p}.media.height: SHORT, MEDIUM or TALL"));
        }
        content_info(&format!("{p}.media.content_info"), &m["contentInfo"])?;
    }
    suggestions(&format!("{p}.suggestions"), c.get("suggestions"), 4)
}

pub(super) fn suggestions(p: &str, s: Option<&Value>, max: usize) -> Result<(), String> {
    let Some(s) = s else { return Ok(()) };
    let list = s.as_array().ok_or(format!("{p}: must be a list"))?;
    if list.len() > max {
        return Err(format!("{p}: at most {max} suggestions"));
    }
    for (i, s) in list.iter().enumerate() {
        let (kind, body) = match (s.get("reply"), s.get("action")) {
            (Some(r), None) => ("reply", r),
            (None, Some(a)) => ("action", a),
            _ => return Err(format!("{p}[{i}]: exactly one of reply, action")),
        };
        let q = format!("{p}[{i}].{kind}");
        let text = body["text"].as_str().unwrap_or_default();
        if text.is_empty() || text.chars().count() > 25 {
            return Err(format!("{q}.text: 1 to 25 characters"));
        }
        if body["postbackData"]
            .as_str()
            .is_some_and(|d| d.len() > 2048)
        {
            return Err(format!("{q}.postback_data: at most 2048 bytes"));
        }
        if kind == "action" {
            let actions = [
                "dialAction",
                "viewLocationAction",
                "createCalendarEventAction",
                "openUrlAction",
                "shareLocationAction",
            ];
            match present(body, &actions).as_slice() {
                ["openUrlAction"] if body["openUrlAction"]["url"].as_str().is_none() => {
                    return Err(format!("{q}.open_url_action.url: required"));
                }
                ["dialAction"] if body["dialAction"]["phoneNumber"].as_str().is_none() => {
                    return Err(format!("{q}.dial_action.phone_number: required"));
                }
                [_] => {}
                _ => return Err(format!("{q}: exactly one action")),
            }
        }
    }
    Ok(())
}
