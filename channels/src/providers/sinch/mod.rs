//! Sinch's SMS REST API: `POST /xms/v1/{service_plan_id}/batches` with
//! `Authorization: Bearer <API token>` and `{"from", "to": [..], "body",
//! "delivery_report": "per_recipient", "callback_url", "client_reference",
//! "expire_at"}`, answered `201` with the batch (`id`) or `{"code", "text"}`. Delivery
//! reports (`{"type": "recipient_delivery_report_sms", "batch_id", "recipient",
//! "code", "status", "client_reference"}`) and inbound messages (`{"type": "mo_text",
//! "id", "from", "to", "body"}`) are POSTed to the callback URL, which carries Basic
//! credentials (`hermod:<webhook_secret>`), the way Sinch authenticates callbacks.

use base64::Engine;
use hermod_core::Status;
use hermod_core::ports::{ChannelError, ConfigError};

use super::{
    Body, Call, Callback, Event, InboundEvent, Provider, ProviderConfig, ReceiptEvent, Refusal,
    Submit, json_answer, permanent, text_of, transient,
};

pub const DEFAULT_BASE_URL: Option<&str> = Some("https://us.sms.api.sinch.com");

const NAME: &str = "sinch";

/// The Basic user of callbacks.
pub const CALLBACK_USER: &str = "hermod";

pub struct Api {
    base: String,
    plan: String,
    token: String,
    secret: String,
}

impl Api {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, ConfigError> {
        if cfg.account.is_empty() || cfg.token.0.is_empty() {
            return Err(ConfigError::new(format!(
                "sms.providers {:?}: sinch needs account (the service plan id) and token (the API token)",
                cfg.name
            )));
        }
        Ok(Self {
            base: cfg.base().unwrap_or_default(),
            plan: cfg.account.clone(),
            token: cfg.token.0.clone(),
            secret: cfg.webhook_secret.0.clone(),
        })
    }
}

/// A delivery report's `status` → the unified one.
pub fn status_of(s: &str) -> Status {
    match s {
        "Delivered" => Status::Delivered,
        "Expired" => Status::Expired,
        "Rejected" => Status::Rejected,
        "Failed" | "Aborted" | "Cancelled" | "Deleted" => Status::Failed,
        _ => Status::Sent,
    }
}

impl Provider for Api {
    fn needs_webhook_secret(&self) -> bool {
        true
    }

    fn request(&self, m: &Submit<'_>) -> Result<Call, ChannelError> {
        let mut batch = serde_json::json!({
            "to": [m.to],
            "body": m.text,
            "client_reference": m.reference,
        });
        if !m.from.is_empty() {
            batch["from"] = m.from.into();
        }
        if !m.callback.is_empty() {
            // Basic credentials in the URL: Sinch sends them with each callback.
            let mut u = url::Url::parse(m.callback).map_err(|_| permanent(NAME, "callback_url"))?;
            let _ = u.set_username(CALLBACK_USER);
            let _ = u.set_password(Some(&self.secret));
            batch["callback_url"] = u.to_string().into();
            batch["delivery_report"] = "per_recipient".into();
        }
        if let Some(v) = m.validity_secs {
            let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(v);
            if let Ok(s) = at.format(&time::format_description::well_known::Rfc3339) {
                batch["expire_at"] = s.into();
            }
        }
        let mut call = Call::post(
            format!("{}/xms/v1/{}/batches", self.base, self.plan),
            Body::Json(batch),
        );
        call.headers
            .push(("Authorization".into(), format!("Bearer {}", self.token)));
        Ok(call)
    }

    fn answer(&self, status: u16, body: &[u8]) -> Result<(Vec<String>, String), ChannelError> {
        let v = json_answer(NAME, body);
        if !(200..300).contains(&status) {
            let code = v
                .ok()
                .and_then(|v| v["code"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("http_{status}"));
            return Err(if status == 401 || status == 403 {
                transient(NAME, code)
            } else {
                permanent(NAME, code)
            });
        }
        let v = v?;
        let id = v["id"]
            .as_str()
            .ok_or_else(|| permanent(NAME, "bad_answer"))?;
        Ok((vec![id.to_owned()], "Queued".into()))
    }

    fn callback(&self, cb: &Callback<'_>) -> Result<Vec<Event>, Refusal> {
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{CALLBACK_USER}:{}", self.secret))
        );
        let presented = cb.req.header("authorization").unwrap_or_default();
        if self.secret.is_empty()
            || !hermod_crypto::constant_time_eq(presented.as_bytes(), want.as_bytes())
        {
            return Err(Refusal::Unauthenticated);
        }
        let v = cb.fields();
        match v["type"].as_str() {
            Some("recipient_delivery_report_sms") => {
                let (Some(id), Some(st)) = (v["batch_id"].as_str(), v["status"].as_str()) else {
                    return Err(Refusal::Malformed("no batch_id or status".into()));
                };
                let code = v["code"].as_i64().unwrap_or(0);
                Ok(vec![Event::Receipt(ReceiptEvent {
                    id: id.to_owned(),
                    status: status_of(st),
                    raw_status: st.to_owned(),
                    error: (status_of(st).is_final() && status_of(st) != Status::Delivered)
                        .then(|| format!("{NAME}:{code}")),
                    to: text_of(&v["recipient"]),
                    reference: text_of(&v["client_reference"]).or_else(|| cb.query_param("ref")),
                })])
            }
            Some("mo_text") => {
                let (Some(from), Some(to)) = (text_of(&v["from"]), text_of(&v["to"])) else {
                    return Err(Refusal::Malformed("no from or to".into()));
                };
                Ok(vec![Event::Inbound(InboundEvent {
                    id: text_of(&v["id"]),
                    from,
                    to,
                    text: v["body"].as_str().unwrap_or_default().to_owned(),
                    concat: None,
                })])
            }
            // Batch-level reports and other types carry nothing per message.
            Some(_) => Ok(Vec::new()),
            None => Err(Refusal::Malformed("no type".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_and_errors() {
        let a = Api::new(&ProviderConfig {
            name: "sc".into(),
            kind: super::super::ProviderKind::Sinch,
            account: "plan".into(),
            token: hermod_core::Secret("tok".into()),
            webhook_secret: hermod_core::Secret("s3".into()),
            ..ProviderConfig::default()
        })
        .unwrap();
        assert_eq!(
            a.answer(
                201,
                br#"{"id":"01FC66621XXXXX119Z8PMV1QPQ","to":["+46"],"canceled":false}"#
            )
            .unwrap()
            .0,
            vec!["01FC66621XXXXX119Z8PMV1QPQ".to_owned()]
        );
        assert_eq!(
            a.answer(
                400,
                br#"{"code":"syntax_constraint_violation","text":"to is empty"}"#
            ),
            Err(permanent(NAME, "syntax_constraint_violation"))
        );
        let c = a
            .request(&Submit {
                to: "+46701234567",
                from: "Acme",
                text: "hi",
                callback: "https://h.example/v1/webhooks/sinch/sc?ref=3",
                reference: "3".into(),
                validity_secs: None,
            })
            .unwrap();
        let Body::Json(b) = c.body else { panic!() };
        assert_eq!(
            b["callback_url"],
            "https://hermod:s3@h.example/v1/webhooks/sinch/sc?ref=3"
        );
        assert_eq!(c.url, "https://us.sms.api.sinch.com/xms/v1/plan/batches");
    }
}
