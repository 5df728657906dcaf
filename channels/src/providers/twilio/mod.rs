//! Twilio's Messages API: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//! (form: `To`, `From`, `Body`, `StatusCallback`, `ValidityPeriod`; Basic auth with the
//! Account SID and auth token), answered `201` with the message resource (`sid`,
//! `status`) or an error `{code, message, more_info, status}`. Status callbacks and
//! inbound messages are form POSTs signed with `X-Twilio-Signature`; an inbound
//! message is answered with empty TwiML.

use hermod_core::Status;
use hermod_core::ports::{ChannelError, ConfigError, WebhookReply};

use super::{
    Body, Call, Callback, Event, InboundEvent, Provider, ProviderConfig, ReceiptEvent, Refusal,
    Submit, param, permanent, throttled, transient,
};

pub const DEFAULT_BASE_URL: Option<&str> = Some("https://api.twilio.com");

const NAME: &str = "twilio";

pub struct Api {
    base: String,
    sid: String,
    token: String,
}

impl Api {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, ConfigError> {
        if cfg.account.is_empty() || cfg.token.0.is_empty() {
            return Err(ConfigError::new(format!(
                "sms.providers {:?}: twilio needs account (the Account SID) and token (the auth token)",
                cfg.name
            )));
        }
        Ok(Self {
            base: cfg.base().unwrap_or_default(),
            sid: cfg.account.clone(),
            token: cfg.token.0.clone(),
        })
    }
}

/// Twilio's message status → the unified one.
pub fn status_of(s: &str) -> Status {
    match s {
        "delivered" | "read" => Status::Delivered,
        "undelivered" | "failed" | "canceled" => Status::Failed,
        _ => Status::Sent,
    }
}

/// Error codes of a refused request that trying again (later, or elsewhere) can cure:
/// authentication and account problems, queue overflow, rate limits.
fn transient_code(code: i64) -> bool {
    matches!(code, 20003 | 20005 | 20429 | 30001 | 30002 | 21611)
}

impl Provider for Api {
    fn request(&self, m: &Submit<'_>) -> Result<Call, ChannelError> {
        let mut form = vec![
            ("To".to_owned(), m.to.to_owned()),
            ("Body".to_owned(), m.text.to_owned()),
        ];
        if !m.from.is_empty() {
            form.push(("From".into(), m.from.to_owned()));
        }
        if !m.callback.is_empty() {
            form.push(("StatusCallback".into(), m.callback.to_owned()));
        }
        if let Some(v) = m.validity_secs {
            form.push(("ValidityPeriod".into(), v.clamp(1, 36_000).to_string()));
        }
        let mut call = Call::post(
            format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.base, self.sid
            ),
            Body::Form(form),
        );
        call.basic = Some((self.sid.clone(), self.token.clone()));
        Ok(call)
    }

    fn answer(&self, status: u16, body: &[u8]) -> Result<(Vec<String>, String), ChannelError> {
        // An error without a JSON body is named by its HTTP status.
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        if (200..300).contains(&status) {
            let sid = v["sid"]
                .as_str()
                .ok_or_else(|| permanent(NAME, "bad_answer"))?;
            let raw = v["status"].as_str().unwrap_or("queued").to_owned();
            if let Some(code) = v["error_code"].as_i64() {
                return Err(permanent(NAME, code));
            }
            return Ok((vec![sid.to_owned()], raw));
        }
        let code = v["code"].as_i64().unwrap_or(i64::from(status));
        if code == 20429 {
            return Err(throttled(NAME));
        }
        if transient_code(code) || status == 401 || status == 403 {
            return Err(transient(NAME, code));
        }
        Err(permanent(NAME, code))
    }

    fn callback(&self, cb: &Callback<'_>) -> Result<Vec<Event>, Refusal> {
        let form = cb.form();
        let sig = cb
            .req
            .header(hermod_crypto::twilio::HEADER)
            .ok_or(Refusal::Unauthenticated)?;
        if !hermod_crypto::twilio::verify(&self.token, cb.url, &form, sig) {
            return Err(Refusal::Unauthenticated);
        }
        if param(&form, "AccountSid").is_some_and(|a| a != self.sid) {
            return Err(Refusal::Unauthenticated);
        }
        let sid = param(&form, "MessageSid")
            .or_else(|| param(&form, "SmsSid"))
            .ok_or_else(|| Refusal::Malformed("no MessageSid".into()))?;
        if let Some(st) = param(&form, "MessageStatus").or_else(|| param(&form, "SmsStatus"))
            && st != "received"
        {
            let error = param(&form, "ErrorCode")
                .filter(|c| !c.is_empty() && *c != "0")
                .map(|c| format!("{NAME}:{c}"));
            return Ok(vec![Event::Receipt(ReceiptEvent {
                id: sid.to_owned(),
                status: status_of(st),
                raw_status: st.to_owned(),
                error,
                to: param(&form, "To").map(str::to_owned),
                reference: cb.query_param("ref"),
            })]);
        }
        let (from, to) = match (param(&form, "From"), param(&form, "To")) {
            (Some(f), Some(t)) => (f, t),
            _ => return Err(Refusal::Malformed("no From or To".into())),
        };
        Ok(vec![Event::Inbound(InboundEvent {
            id: Some(sid.to_owned()),
            from: from.to_owned(),
            to: to.to_owned(),
            text: param(&form, "Body").unwrap_or_default().to_owned(),
            concat: None,
        })])
    }

    fn reply(&self, events: &[Event]) -> WebhookReply {
        if events.iter().any(|e| matches!(e, Event::Inbound(_))) {
            return WebhookReply {
                status: 200,
                content_type: "text/xml",
                body: "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>".into(),
            };
        }
        WebhookReply {
            status: 204,
            content_type: "text/plain",
            body: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api() -> Api {
        Api::new(&ProviderConfig {
            name: "tw".into(),
            account: "AC123".into(),
            token: hermod_core::Secret("tok".into()),
            ..ProviderConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn answers_and_errors_are_sorted() {
        let a = api();
        let ok = a
            .answer(
                201,
                br#"{"sid":"SMabc","status":"queued","error_code":null}"#,
            )
            .unwrap();
        assert_eq!(ok, (vec!["SMabc".to_owned()], "queued".to_owned()));
        let bad = br#"{"code":21211,"message":"The 'To' number is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#;
        assert_eq!(a.answer(400, bad), Err(permanent(NAME, 21211)));
        let auth = br#"{"code":20003,"message":"Authenticate","status":401}"#;
        assert_eq!(a.answer(401, auth), Err(transient(NAME, 20003)));
        assert_eq!(a.answer(400, br#"{"code":20429}"#), Err(throttled(NAME)));
        assert!(a.answer(201, b"not json").is_err());
    }

    #[test]
    fn the_request_is_twilios_form() {
        let c = api()
            .request(&Submit {
                to: "+447911123456",
                from: "+15005550006",
                text: "hi",
                callback: "https://h/cb?ref=1",
                reference: "1".into(),
                validity_secs: Some(60),
            })
            .unwrap();
        assert_eq!(
            c.url,
            "https://api.twilio.com/2010-04-01/Accounts/AC123/Messages.json"
        );
        assert_eq!(c.basic, Some(("AC123".into(), "tok".into())));
        let Body::Form(f) = c.body else { panic!() };
        assert_eq!(param(&f, "To"), Some("+447911123456"));
        assert_eq!(param(&f, "StatusCallback"), Some("https://h/cb?ref=1"));
        assert_eq!(param(&f, "ValidityPeriod"), Some("60"));
    }
}
