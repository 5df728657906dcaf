//! Errors as Twilio's REST API writes them: `{code, message, more_info, status}` with
//! its codes for the common cases.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::ApiError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TwilioError {
    pub status: u16,
    pub code: u32,
    pub message: String,
}

impl TwilioError {
    pub fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// `20003`: the credentials are missing or wrong (or name another account).
    pub fn auth() -> Self {
        Self::new(401, 20003, "Authenticate")
    }

    /// `20404`: no such resource (for this account).
    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    /// A parameter with no more specific code: `21000`-range codes name the common
    /// ones, `20001` the rest.
    pub fn param(code: u32, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// Hermod's validation, in Twilio's codes: the field that failed picks the code.
    pub fn from_api(e: ApiError) -> Self {
        match e {
            ApiError::Invalid { message, field, .. } => {
                let code = match field.as_deref().unwrap_or("") {
                    "to" => 21211,
                    "from" => 21212,
                    "text" if message.contains("at most") => 21617,
                    "text" => 21602,
                    "callback_url" => 21609,
                    "send_at" => 35114,
                    f if f.starts_with("content") => 21620,
                    _ => 20001,
                };
                Self::param(code, twilio_words(&message))
            }
            ApiError::ForbiddenField { field, message } if field == "from" => {
                Self::new(400, 21606, twilio_words(&message))
            }
            ApiError::ForbiddenField { message, .. } | ApiError::Forbidden(message) => {
                Self::new(403, 20403, message)
            }
            ApiError::Unauthorized => Self::auth(),
            ApiError::Suspended => Self::new(401, 20005, "Account not active"),
            ApiError::NotFound(m) => Self::new(404, 20404, m),
            ApiError::RateLimited(_) => Self::new(429, 20429, "Too Many Requests"),
            ApiError::QuotaExceeded { message, .. } => Self::new(429, 20429, message),
            ApiError::Conflict(m) | ApiError::IdempotencyMismatch(m) => Self::new(409, 20409, m),
            ApiError::MethodNotAllowed(m) => Self::new(405, 20004, m),
            e @ (ApiError::Upstream(_) | ApiError::Unavailable(_)) => {
                tracing::warn!(error = %e, "twilio api: unavailable");
                Self::new(503, 20503, "Service Unavailable")
            }
            e @ ApiError::Internal(_) => {
                tracing::error!(error = ?e, "twilio api: internal error");
                Self::new(500, 20500, "Internal Server Error")
            }
        }
    }
}

/// Hermod's message with its field names as Twilio's parameters.
fn twilio_words(message: &str) -> String {
    let mut out = message.to_owned();
    for (ours, theirs) in [
        ("callback_url", "StatusCallback"),
        ("send_at", "SendAt"),
        ("ttl", "ValidityPeriod"),
        ("content.media.url", "MediaUrl"),
    ] {
        out = out.replace(ours, theirs);
    }
    for (ours, theirs) in [("to ", "To "), ("from ", "From "), ("text ", "Body ")] {
        if let Some(rest) = out.strip_prefix(ours) {
            out = format!("{theirs}{rest}");
        }
    }
    out
}

impl ResponseError for TwilioError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST)
    }

    fn error_response(&self) -> HttpResponse {
        let mut r = HttpResponse::build(self.status_code());
        if self.status == 401 {
            r.insert_header(("WWW-Authenticate", "Basic realm=\"Twilio API\""));
        }
        r.json(serde_json::json!({
            "code": self.code,
            "message": self.message,
            "more_info": format!("https://www.twilio.com/docs/errors/{}", self.code),
            "status": self.status,
        }))
    }
}
