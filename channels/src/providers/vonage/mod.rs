//! Vonage's SMS API: `POST /sms/json` (form: `api_key`, `api_secret`, `from`, `to`,
//! `text`, `type=unicode` when the text is not GSM, `callback`, `client-ref`, `ttl`),
//! answered `200` with `{"message-count", "messages": [{"message-id", "status", ...}]}`
//! — one per part; a non-zero `status` is an error (1 throttled, 5 internal: retried;
//! the others permanent). Delivery receipts (`messageId`, `msisdn`, `status`,
//! `err-code`, `client-ref`) and inbound messages (`msisdn`, `to`, `messageId`,
//! `text`, `concat-*`) arrive as JSON or form, signed (`sig`, with `timestamp`) with the
//! account's signature secret.

use hermod_core::Status;
use hermod_core::inbound::Concat;
use hermod_core::now_ms;
use hermod_core::ports::{ChannelError, ConfigError};
use hermod_crypto::vonage::Method;

use super::{
    Body, Call, Callback, Event, InboundEvent, Provider, ProviderConfig, ReceiptEvent, Refusal,
    Submit, json_answer, permanent, text_of, throttled, transient,
};

pub const DEFAULT_BASE_URL: Option<&str> = Some("https://rest.nexmo.com");

const NAME: &str = "vonage";

/// How far a signed callback's `timestamp` may be from now.
const SKEW_SECS: i64 = 300;

pub struct Api {
    base: String,
    key: String,
    secret: String,
    signature_secret: String,
    method: Method,
}

impl Api {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, ConfigError> {
        let what = format!("sms.providers {:?}", cfg.name);
        if cfg.account.is_empty() || cfg.token.0.is_empty() {
            return Err(ConfigError::new(format!(
                "{what}: vonage needs account (the API key) and token (the API secret)"
            )));
        }
        let method = Method::parse(&cfg.signature_method).ok_or_else(|| {
            ConfigError::new(format!(
                "{what}: signature_method must be sha256 or sha512 (HMAC)"
            ))
        })?;
        Ok(Self {
            base: cfg.base().unwrap_or_default(),
            key: cfg.account.clone(),
            secret: cfg.token.0.clone(),
            signature_secret: cfg.webhook_secret.0.clone(),
            method,
        })
    }
}

/// A receipt's `status` → the unified one.
pub fn status_of(s: &str) -> Status {
    match s {
        "delivered" => Status::Delivered,
        "expired" => Status::Expired,
        "failed" => Status::Failed,
        "rejected" => Status::Rejected,
        _ => Status::Sent,
    }
}

impl Provider for Api {
    fn needs_webhook_secret(&self) -> bool {
        true
    }

    fn request(&self, m: &Submit<'_>) -> Result<Call, ChannelError> {
        let mut form = vec![
            ("api_key".to_owned(), self.key.clone()),
            ("api_secret".to_owned(), self.secret.clone()),
            ("from".to_owned(), m.from.trim_start_matches('+').to_owned()),
            ("to".to_owned(), m.to.trim_start_matches('+').to_owned()),
            ("text".to_owned(), m.text.to_owned()),
            ("client-ref".to_owned(), m.reference.clone()),
        ];
        if hermod_core::gsm::encode_gsm7(m.text).is_none() {
            form.push(("type".into(), "unicode".into()));
        }
        if !m.callback.is_empty() {
            form.push(("callback".into(), m.callback.to_owned()));
        }
        if let Some(v) = m.validity_secs {
            // Milliseconds, 20000 to 604800000.
            form.push((
                "ttl".into(),
                (v * 1000).clamp(20_000, 604_800_000).to_string(),
            ));
        }
        Ok(Call::post(
            format!("{}/sms/json", self.base),
            Body::Form(form),
        ))
    }

    fn answer(&self, status: u16, body: &[u8]) -> Result<(Vec<String>, String), ChannelError> {
        if status == 401 {
            return Err(transient(NAME, "unauthorized"));
        }
        let v = json_answer(NAME, body)?;
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        if msgs.is_empty() {
            return Err(permanent(NAME, format!("http_{status}")));
        }
        let mut ids = Vec::new();
        for m in &msgs {
            let st = m["status"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| text_of(&m["status"]));
            match st.as_deref() {
                Some("0") => {}
                Some("1") => return Err(throttled(NAME)),
                // Internal error, invalid credentials (a rotated secret): try later.
                Some(c @ ("5" | "4")) => return Err(transient(NAME, c)),
                Some(c) if !ids.is_empty() => {
                    // Earlier parts went out: resending would repeat them.
                    tracing::warn!(status = c, "vonage refused a later part");
                    return Err(permanent(NAME, c));
                }
                Some(c) => return Err(permanent(NAME, c)),
                None => return Err(permanent(NAME, "bad_answer")),
            }
            if let Some(id) = m["message-id"].as_str() {
                ids.push(id.to_owned());
            }
        }
        if ids.is_empty() {
            return Err(permanent(NAME, "bad_answer"));
        }
        Ok((ids, "0".into()))
    }

    fn callback(&self, cb: &Callback<'_>) -> Result<Vec<Event>, Refusal> {
        let fields = cb.fields();
        let obj = fields
            .as_object()
            .ok_or_else(|| Refusal::Malformed("not a JSON object or form".into()))?;
        let params: Vec<(String, String)> = obj
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), text_of(v)?)))
            .collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        if self.signature_secret.is_empty()
            || !hermod_crypto::vonage::verify(self.method, &self.signature_secret, &params)
        {
            return Err(Refusal::Unauthenticated);
        }
        let ts = get("timestamp")
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(Refusal::Unauthenticated)?;
        if (now_ms() / 1000 - ts).abs() > SKEW_SECS {
            return Err(Refusal::Unauthenticated);
        }
        if get("api-key").is_some_and(|k| k != self.key) {
            return Err(Refusal::Unauthenticated);
        }
        let msisdn = get("msisdn").ok_or_else(|| Refusal::Malformed("no msisdn".into()))?;
        if let Some(st) = get("status") {
            let id = get("messageId").ok_or_else(|| Refusal::Malformed("no messageId".into()))?;
            let error = get("err-code")
                .filter(|c| !c.is_empty() && *c != "0")
                .map(|c| format!("{NAME}:{c}"));
            return Ok(vec![Event::Receipt(ReceiptEvent {
                id: id.to_owned(),
                status: status_of(st),
                raw_status: st.to_owned(),
                error,
                to: Some(msisdn.to_owned()),
                reference: get("client-ref")
                    .map(str::to_owned)
                    .or_else(|| cb.query_param("ref")),
            })]);
        }
        let to = get("to").ok_or_else(|| Refusal::Malformed("no to".into()))?;
        let concat = if get("concat") == Some("true") {
            match (
                get("concat-ref").and_then(|r| r.parse().ok()),
                get("concat-total").and_then(|r| r.parse().ok()),
                get("concat-part").and_then(|r| r.parse().ok()),
            ) {
                (Some(reference), Some(total), Some(seq)) => Some(Concat {
                    reference,
                    total,
                    seq,
                }),
                _ => return Err(Refusal::Malformed("incomplete concat-*".into())),
            }
        } else {
            None
        };
        Ok(vec![Event::Inbound(InboundEvent {
            id: get("messageId").map(str::to_owned),
            from: msisdn.to_owned(),
            to: to.to_owned(),
            text: get("text").unwrap_or_default().to_owned(),
            concat,
        })])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        Api::new(&ProviderConfig {
            name: "vg".into(),
            kind: super::super::ProviderKind::Vonage,
            account: "key".into(),
            token: hermod_core::Secret("secret".into()),
            webhook_secret: hermod_core::Secret("sigsecret".into()),
            ..ProviderConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn every_part_has_an_id_and_error_statuses_are_sorted() {
        let a = api();
        let two = br#"{"message-count":"2","messages":[{"to":"447700900000","message-id":"0A01","status":"0"},{"to":"447700900000","message-id":"0A02","status":"0"}]}"#;
        assert_eq!(
            a.answer(200, two).unwrap().0,
            vec!["0A01".to_owned(), "0A02".to_owned()]
        );
        let throttle = br#"{"message-count":"1","messages":[{"status":"1","error-text":"Throughput Rate Exceeded"}]}"#;
        assert_eq!(a.answer(200, throttle), Err(throttled(NAME)));
        let missing =
            br#"{"message-count":"1","messages":[{"status":"2","error-text":"Missing to param"}]}"#;
        assert_eq!(a.answer(200, missing), Err(permanent(NAME, "2")));
        let internal =
            br#"{"message-count":"1","messages":[{"status":"5","error-text":"Internal Error"}]}"#;
        assert_eq!(a.answer(200, internal), Err(transient(NAME, "5")));
    }

    #[test]
    fn unicode_text_is_marked() {
        let c = api()
            .request(&Submit {
                to: "+447700900000",
                from: "Acme",
                text: "привет",
                callback: "",
                reference: "9".into(),
                validity_secs: None,
            })
            .unwrap();
        let Body::Form(f) = c.body else { panic!() };
        assert_eq!(super::super::param(&f, "type"), Some("unicode"));
        assert_eq!(super::super::param(&f, "to"), Some("447700900000"));
        assert_eq!(super::super::param(&f, "client-ref"), Some("9"));
    }
}
