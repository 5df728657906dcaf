use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use hermod_core::ports::PortError;
use serde::Serialize;

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Invalid {
        code: &'static str,
        message: String,
        field: Option<String>,
    },
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// 405: the path exists for other methods (these, comma-separated).
    #[error("method not allowed; this path takes {0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    IdempotencyMismatch(String),
    #[error("{0}")]
    Conflict(String),
    #[error("rate limit exceeded; retry after {} ms", .0.as_millis())]
    RateLimited(std::time::Duration),
    #[error("{0}")]
    Forbidden(String),
    /// 403 naming the field that asks for what the caller may not use.
    #[error("{message}")]
    ForbiddenField { field: String, message: String },
    /// 403 `tenant_suspended`: the operator suspended the key's tenant.
    #[error("this tenant is suspended; its operator can resume it")]
    Suspended,
    /// 429 `quota_exceeded`: the tenant's daily quota is spent (until this UTC midnight).
    #[error("{message}")]
    QuotaExceeded {
        message: String,
        retry_after: std::time::Duration,
    },
    /// 502: a provider Hermod called for the request refused it or was unreachable.
    #[error("{0}")]
    Upstream(String),
    #[error("storage unavailable")]
    Unavailable(#[source] PortError),
    #[error("internal error")]
    Internal(#[source] PortError),
}

impl ApiError {
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code: "invalid_field",
            message: message.into(),
            field: Some(field.into()),
        }
    }

    /// A query parameter the endpoint does not take.
    pub fn unknown_param(name: &str) -> Self {
        ApiError::Invalid {
            code: "unknown_field",
            message: format!("unknown query parameter '{name}'"),
            field: Some(name.to_owned()),
        }
    }

    /// Parses the `limit` query parameter (1 to 1000).
    pub fn parse_limit<T: std::str::FromStr + PartialOrd + From<u16>>(v: &str) -> Result<T, Self> {
        v.parse()
            .ok()
            .filter(|n| (T::from(1)..=T::from(1000)).contains(n))
            .ok_or_else(|| ApiError::field("limit", "limit must be 1 to 1000"))
    }
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        match e {
            PortError::Conflict(m) => ApiError::Conflict(m),
            e @ PortError::Unavailable(_) => ApiError::Unavailable(e),
            e => ApiError::Internal(e),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::IdempotencyMismatch(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::RateLimited(_) | ApiError::QuotaExceeded { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Forbidden(_) | ApiError::ForbiddenField { .. } | ApiError::Suspended => {
                StatusCode::FORBIDDEN
            }
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let (code, field) = match self {
            ApiError::Invalid { code, field, .. } => (*code, field.as_deref()),
            ApiError::Unauthorized => ("unauthorized", None),
            ApiError::NotFound(_) => ("not_found", None),
            ApiError::MethodNotAllowed(_) => ("method_not_allowed", None),
            ApiError::IdempotencyMismatch(_) => ("idempotency_key_reused", Some("Idempotency-Key")),
            ApiError::Conflict(_) => ("conflict", None),
            ApiError::RateLimited(_) => ("rate_limited", None),
            ApiError::Forbidden(_) => ("forbidden", None),
            ApiError::ForbiddenField { field, .. } => ("forbidden", Some(field.as_str())),
            ApiError::Suspended => ("tenant_suspended", None),
            ApiError::QuotaExceeded { .. } => ("quota_exceeded", None),
            ApiError::Upstream(_) => ("provider_error", None),
            ApiError::Unavailable(_) => ("unavailable", None),
            ApiError::Internal(_) => ("internal", None),
        };
        if let ApiError::Internal(e) | ApiError::Unavailable(e) = self {
            tracing::error!(error = %e, source = ?std::error::Error::source(e), "request failed");
        }
        let mut resp = HttpResponse::build(self.status_code());
        if let ApiError::RateLimited(wait)
        | ApiError::QuotaExceeded {
            retry_after: wait, ..
        } = self
        {
            // Whole seconds, rounded up (RFC 9110 §10.2.3).
            let secs = wait.as_millis().div_ceil(1000).max(1);
            resp.insert_header(("Retry-After", secs.to_string()));
        }
        if let ApiError::MethodNotAllowed(allow) = self {
            resp.insert_header((actix_web::http::header::ALLOW, allow.as_str()));
        }
        resp.json(Body {
            error: Detail {
                code,
                message: self.to_string(),
                field,
            },
        })
    }
}
