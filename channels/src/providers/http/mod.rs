//! A generic HTTP upstream, described in `[sms.providers.http]`: the request (method,
//! URL, headers and body as templates), where the provider's id is in the answer,
//! and how its receipt and inbound callbacks are read (JSON pointers, or `/name` for
//! form fields) — a provider without a built-in connector needs no code. Callbacks
//! reach Hermod with `?token=<webhook_secret>`.

use hermod_core::Status;
use hermod_core::ports::{ChannelError, ConfigError};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::{
    Body, Call, Callback, Event, GenericHttp, InboundEvent, Provider, ProviderConfig, ReceiptEvent,
    Refusal, Submit, json_answer, permanent, text_of, transient,
};

pub const DEFAULT_BASE_URL: Option<&str> = None;

const NAME: &str = "http";

pub struct Api {
    spec: GenericHttp,
    method: reqwest::Method,
    base: String,
    account: String,
    token: String,
    form: bool,
}

impl Api {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, ConfigError> {
        let what = format!("sms.providers {:?}", cfg.name);
        let spec = cfg.http.clone().ok_or_else(|| {
            ConfigError::new(format!(
                "{what}: kind = \"http\" needs [sms.providers.http]"
            ))
        })?;
        if spec.url.is_empty() {
            return Err(ConfigError::new(format!("{what}: http.url is required")));
        }
        let method = match spec.method.to_ascii_uppercase().as_str() {
            "POST" => reqwest::Method::POST,
            "PUT" => reqwest::Method::PUT,
            "GET" => reqwest::Method::GET,
            m => {
                return Err(ConfigError::new(format!(
                    "{what}: http.method {m:?} is not POST, PUT or GET"
                )));
            }
        };
        let form = match spec.content_type.as_str() {
            "application/json" => false,
            "application/x-www-form-urlencoded" => true,
            c => {
                return Err(ConfigError::new(format!(
                    "{what}: http.content_type {c:?} is not application/json or application/x-www-form-urlencoded"
                )));
            }
        };
        Ok(Self {
            spec,
            method,
            base: cfg.base().unwrap_or_default(),
            account: cfg.account.clone(),
            token: cfg.token.0.clone(),
            form,
        })
    }

    fn values<'a>(&'a self, m: &'a Submit<'_>) -> [(&'static str, String); 9] {
        [
            ("to", m.to.to_owned()),
            ("to_digits", m.to.trim_start_matches('+').to_owned()),
            ("from", m.from.to_owned()),
            ("text", m.text.to_owned()),
            ("callback_url", m.callback.to_owned()),
            ("reference", m.reference.clone()),
            ("account", self.account.clone()),
            ("token", self.token.clone()),
            ("base_url", self.base.clone()),
        ]
    }

    fn status_of(&self, raw: &str) -> Status {
        let is = |l: &[String]| l.iter().any(|w| w.eq_ignore_ascii_case(raw));
        if is(&self.spec.delivered) {
            Status::Delivered
        } else if is(&self.spec.failed) {
            Status::Failed
        } else if is(&self.spec.expired) {
            Status::Expired
        } else if is(&self.spec.rejected) {
            Status::Rejected
        } else {
            Status::Sent
        }
    }
}

/// How a value is written into a template.
#[derive(Clone, Copy)]
enum Escape {
    None,
    Json,
    Percent,
}

/// Replaces each `{{name}}` with its value, escaped.
fn fill(template: &str, values: &[(&str, String)], esc: Escape) -> String {
    let mut out = template.to_owned();
    for (k, v) in values {
        let token = format!("{{{{{k}}}}}");
        if !out.contains(&token) {
            continue;
        }
        let v = match esc {
            Escape::None => v.clone(),
            Escape::Json => {
                let q = serde_json::Value::String(v.clone()).to_string();
                q[1..q.len() - 1].to_owned()
            }
            Escape::Percent => utf8_percent_encode(v, NON_ALPHANUMERIC).to_string(),
        };
        out = out.replace(&token, &v);
    }
    out
}

/// A field by pointer (`/a/0/b`), as a string.
fn field(v: &serde_json::Value, pointer: &str) -> Option<String> {
    if pointer.is_empty() {
        return None;
    }
    v.pointer(pointer)
        .and_then(text_of)
        .filter(|s| !s.is_empty())
}

impl Provider for Api {
    fn request(&self, m: &Submit<'_>) -> Result<Call, ChannelError> {
        let values = self.values(m);
        // The base URL and our own values are trusted; only the message's are escaped.
        let with_base = fill(
            &self.spec.url,
            &[("base_url", self.base.clone())],
            Escape::None,
        );
        let url = fill(&with_base, &values, Escape::Percent);
        let body = fill(
            &self.spec.body,
            &values,
            if self.form {
                Escape::Percent
            } else {
                Escape::Json
            },
        );
        if !self.form
            && !body.is_empty()
            && serde_json::from_str::<serde_json::Value>(&body).is_err()
        {
            return Err(permanent(NAME, "body_template_not_json"));
        }
        Ok(Call {
            method: self.method.clone(),
            url,
            headers: self
                .spec
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), fill(v, &values, Escape::None)))
                .collect(),
            basic: None,
            body: Body::Raw {
                content_type: self.spec.content_type.clone(),
                body,
            },
        })
    }

    fn answer(&self, status: u16, body: &[u8]) -> Result<(Vec<String>, String), ChannelError> {
        if !(200..300).contains(&status) {
            return Err(if self.spec.transient_statuses.contains(&status) {
                transient(NAME, format!("http_{status}"))
            } else {
                permanent(NAME, format!("http_{status}"))
            });
        }
        let v = json_answer(NAME, body)?;
        let id =
            field(&v, &self.spec.id_pointer).ok_or_else(|| permanent(NAME, "no_id_in_answer"))?;
        Ok((vec![id], format!("http_{status}")))
    }

    fn callback(&self, cb: &Callback<'_>) -> Result<Vec<Event>, Refusal> {
        let v = cb.fields();
        let r = &self.spec.receipt;
        if let Some(raw) = field(&v, &r.status) {
            let id = field(&v, &r.id).ok_or_else(|| Refusal::Malformed("no id".into()))?;
            return Ok(vec![Event::Receipt(ReceiptEvent {
                id,
                status: self.status_of(&raw),
                error: field(&v, &r.error).map(|e| format!("{NAME}:{e}")),
                raw_status: raw,
                to: field(&v, &r.to),
                reference: field(&v, &r.reference).or_else(|| cb.query_param("ref")),
            })]);
        }
        let i = &self.spec.inbound;
        if let Some(text) = field(&v, &i.text) {
            let (Some(from), Some(to)) = (field(&v, &i.from), field(&v, &i.to)) else {
                return Err(Refusal::Malformed("no from or to".into()));
            };
            return Ok(vec![Event::Inbound(InboundEvent {
                id: field(&v, &i.id),
                from,
                to,
                text,
                concat: None,
            })]);
        }
        Err(Refusal::Malformed(
            "neither a receipt (no status) nor an inbound message (no text)".into(),
        ))
    }

    fn token_in_callback(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_escape_for_their_place() {
        let api = Api::new(&ProviderConfig {
            name: "g".into(),
            kind: super::super::ProviderKind::Http,
            base_url: Some("http://127.0.0.1:9/api".into()),
            token: hermod_core::Secret("t0k".into()),
            http: Some(GenericHttp {
                url: "{{base_url}}/send?to={{to}}".into(),
                body: r#"{"to":"{{to}}","text":"{{text}}","cb":"{{callback_url}}"}"#.into(),
                headers: [("Authorization".to_owned(), "Bearer {{token}}".to_owned())].into(),
                ..GenericHttp::default()
            }),
            ..ProviderConfig::default()
        })
        .unwrap();
        let c = api
            .request(&Submit {
                to: "+4479",
                from: "",
                text: "say \"hi\"\n",
                callback: "http://h/cb?ref=1&token=x",
                reference: "1".into(),
                validity_secs: None,
            })
            .unwrap();
        assert_eq!(c.url, "http://127.0.0.1:9/api/send?to=%2B4479");
        assert_eq!(c.headers[0].1, "Bearer t0k");
        let Body::Raw { body, .. } = c.body else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["text"], "say \"hi\"\n");
        assert_eq!(v["cb"], "http://h/cb?ref=1&token=x");
        assert_eq!(
            api.answer(200, br#"{"id":"abc"}"#).unwrap().0,
            vec!["abc".to_owned()]
        );
        assert_eq!(api.answer(400, b""), Err(permanent(NAME, "http_400")));
        assert_eq!(api.answer(408, b""), Err(transient(NAME, "http_408")));
    }
}
