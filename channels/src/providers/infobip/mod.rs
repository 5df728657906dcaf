//! Infobip's SMS API: `POST /sms/2/text/advanced` with `Authorization: App <API key>`
//! and `{"messages": [{"destinations": [{"to"}], "from", "text", "notifyUrl",
//! "notifyContentType", "callbackData", "validityPeriod"}]}`, answered `200` with
//! `{"bulkId", "messages": [{"messageId", "status": {"groupId", "groupName", "id",
//! "name"}}]}` (group 5 REJECTED is a refusal) or `{"requestError":
//! {"serviceException": {"messageId", "text"}}}`. Delivery reports (`{"results":
//! [{"messageId", "to", "status", "error", "callbackData"}]}`) and inbound messages
//! (`{"results": [{"messageId", "from", "to", "text"}]}`) are POSTed to Hermod's
//! webhook, which they reach with `?token=<webhook_secret>` (Infobip signs nothing).

use hermod_core::Status;
use hermod_core::ports::{ChannelError, ConfigError};

use super::{
    Body, Call, Callback, Event, InboundEvent, Provider, ProviderConfig, ReceiptEvent, Refusal,
    Submit, json_answer, permanent, text_of, throttled, transient,
};

pub const DEFAULT_BASE_URL: Option<&str> = None;

const NAME: &str = "infobip";

pub struct Api {
    base: String,
    key: String,
}

impl Api {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, ConfigError> {
        if cfg.token.0.is_empty() {
            return Err(ConfigError::new(format!(
                "sms.providers {:?}: infobip needs token (the API key)",
                cfg.name
            )));
        }
        Ok(Self {
            base: cfg.base().unwrap_or_default(),
            key: cfg.token.0.clone(),
        })
    }
}

/// A status group id → the unified status.
pub fn status_of(group: i64) -> Status {
    match group {
        3 => Status::Delivered,
        2 => Status::Failed,
        4 => Status::Expired,
        5 => Status::Rejected,
        _ => Status::Sent,
    }
}

impl Provider for Api {
    fn request(&self, m: &Submit<'_>) -> Result<Call, ChannelError> {
        let mut msg = serde_json::json!({
            "destinations": [{"to": m.to.trim_start_matches('+')}],
            "text": m.text,
            "callbackData": m.reference,
        });
        if !m.from.is_empty() {
            msg["from"] = m.from.trim_start_matches('+').into();
        }
        if !m.callback.is_empty() {
            msg["notifyUrl"] = m.callback.into();
            msg["notifyContentType"] = "application/json".into();
        }
        if let Some(v) = m.validity_secs {
            // Minutes, at most 48 hours.
            msg["validityPeriod"] = ((v + 59) / 60).clamp(1, 2880).into();
        }
        let mut call = Call::post(
            format!("{}/sms/2/text/advanced", self.base),
            Body::Json(serde_json::json!({ "messages": [msg] })),
        );
        call.headers
            .push(("Authorization".into(), format!("App {}", self.key)));
        call.headers
            .push(("Accept".into(), "application/json".into()));
        Ok(call)
    }

    fn answer(&self, status: u16, body: &[u8]) -> Result<(Vec<String>, String), ChannelError> {
        let v = json_answer(NAME, body);
        if !(200..300).contains(&status) {
            let code = v
                .ok()
                .and_then(|v| {
                    v["requestError"]["serviceException"]["messageId"]
                        .as_str()
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| format!("http_{status}"));
            return Err(if status == 401 || status == 403 {
                transient(NAME, code)
            } else {
                permanent(NAME, code)
            });
        }
        let v = v?;
        let m = &v["messages"][0];
        let id = m["messageId"]
            .as_str()
            .ok_or_else(|| permanent(NAME, "bad_answer"))?;
        let group = m["status"]["groupId"].as_i64().unwrap_or(1);
        let name = m["status"]["name"].as_str().unwrap_or("PENDING").to_owned();
        match group {
            5 if name.contains("THROTTL") => Err(throttled(NAME)),
            5 | 2 => Err(permanent(NAME, name)),
            _ => Ok((vec![id.to_owned()], name)),
        }
    }

    fn callback(&self, cb: &Callback<'_>) -> Result<Vec<Event>, Refusal> {
        let v = cb.fields();
        let results = v["results"]
            .as_array()
            .ok_or_else(|| Refusal::Malformed("no results".into()))?;
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            let id = r["messageId"]
                .as_str()
                .ok_or_else(|| Refusal::Malformed("a result without messageId".into()))?;
            if r["status"].is_object() {
                let group = r["status"]["groupId"].as_i64().unwrap_or(0);
                let error = r["error"]["id"]
                    .as_i64()
                    .filter(|e| *e != 0)
                    .map(|e| format!("{NAME}:{e}"));
                out.push(Event::Receipt(ReceiptEvent {
                    id: id.to_owned(),
                    status: status_of(group),
                    raw_status: r["status"]["name"].as_str().unwrap_or_default().to_owned(),
                    error,
                    to: text_of(&r["to"]),
                    reference: text_of(&r["callbackData"]).or_else(|| cb.query_param("ref")),
                }));
            } else {
                let (Some(from), Some(to)) = (text_of(&r["from"]), text_of(&r["to"])) else {
                    return Err(Refusal::Malformed(
                        "an inbound result without from or to".into(),
                    ));
                };
                out.push(Event::Inbound(InboundEvent {
                    id: Some(id.to_owned()),
                    from,
                    to,
                    text: r["text"].as_str().unwrap_or_default().to_owned(),
                    concat: None,
                }));
            }
        }
        Ok(out)
    }

    fn token_in_callback(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_the_first_message() {
        let a = Api::new(&ProviderConfig {
            name: "ib".into(),
            base_url: Some("https://x.api.infobip.com".into()),
            token: hermod_core::Secret("k".into()),
            ..ProviderConfig::default()
        })
        .unwrap();
        let ok = br#"{"bulkId":"b1","messages":[{"to":"41793026727","status":{"groupId":1,"groupName":"PENDING","id":26,"name":"PENDING_ACCEPTED","description":"Message sent to next instance"},"messageId":"m1"}]}"#;
        assert_eq!(
            a.answer(200, ok).unwrap(),
            (vec!["m1".to_owned()], "PENDING_ACCEPTED".to_owned())
        );
        let rejected = br#"{"messages":[{"status":{"groupId":5,"groupName":"REJECTED","id":51,"name":"MISSING_TO"},"messageId":"m2"}]}"#;
        assert_eq!(a.answer(200, rejected), Err(permanent(NAME, "MISSING_TO")));
        let unauthorized = br#"{"requestError":{"serviceException":{"messageId":"UNAUTHORIZED","text":"Invalid login details"}}}"#;
        assert_eq!(
            a.answer(401, unauthorized),
            Err(transient(NAME, "UNAUTHORIZED"))
        );
        let bad = br#"{"requestError":{"serviceException":{"messageId":"BAD_REQUEST","text":"Bad request"}}}"#;
        assert_eq!(a.answer(400, bad), Err(permanent(NAME, "BAD_REQUEST")));
    }
}
