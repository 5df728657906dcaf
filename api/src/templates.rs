//! `/v1/templates`: per-locale message templates, and a preview that renders without
//! sending.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, post, put};
use hermod_core::ports::{PortError, Templates};
use hermod_core::template::{Rendered, Template, TemplateError, TemplateSpec, sms_info};
use hermod_core::{Msisdn, now_ms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::json::{parse_json, rfc3339};
use crate::{ApiError, AppState};

/// `POST /v1/templates` body (`PUT /v1/templates/{id}` takes the same without `id`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TemplateBody {
    /// Your name for it (letters, digits, `_`, `-`, `.`; ≤ 64): messages refer to it.
    pub id: Option<String>,
    /// Used when a message asks for a locale the template lacks; required with more
    /// than one variant.
    pub default_locale: Option<String>,
    /// Dotted variable names (`order.id`); each must be given when sending. Left
    /// out: the variables the variants use.
    pub variables: Option<Vec<String>>,
    /// Locale (`en`, `de-DE`) → `{text?, content?, suggestions?}`, as in
    /// `POST /v1/messages`; every string is a MiniJinja template.
    #[schema(value_type = Object)]
    pub variants: serde_json::Value,
    /// What messages sent with it are for, as `traffic_type` in `POST /v1/messages`
    /// (their default when they name none).
    pub traffic_type: Option<String>,
}

/// `POST /v1/templates/{id}/preview` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    pub locale: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub vars: Option<serde_json::Value>,
    /// A recipient: dates show in its time zone.
    pub to: Option<String>,
    /// A time zone for dates, over the recipient's.
    pub timezone: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct TemplateResource {
    pub id: String,
    pub default_locale: String,
    pub variables: Vec<String>,
    #[schema(value_type = Object)]
    pub variants: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traffic_type: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /v1/templates`: the tenant's templates.
#[derive(Serialize, ToSchema)]
pub struct TemplateList {
    pub data: Vec<TemplateResource>,
}

fn resource(t: &Template) -> TemplateResource {
    TemplateResource {
        id: t.id.clone(),
        default_locale: t.default_locale.clone(),
        variables: t.variables.clone(),
        variants: serde_json::to_value(&t.variants).unwrap_or_default(),
        traffic_type: t.traffic_type.map(|t| t.as_str().to_owned()),
        created_at: rfc3339(t.created_at),
        updated_at: rfc3339(t.updated_at),
    }
}

fn store(state: &AppState) -> Result<&dyn Templates, ApiError> {
    state
        .templates
        .as_deref()
        .ok_or_else(|| ApiError::NotFound("templates are not available here".into()))
}

/// A template error as a 400 naming the field under `prefix`.
pub(crate) fn template_error(prefix: &str, e: TemplateError) -> ApiError {
    ApiError::field(format!("{prefix}{}", e.field), e.message)
}

/// How long checking or rendering a template may take before the request is a 400
/// (fuel bounds it far below this; the deadline is the backstop).
const RENDER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Runs template work on a blocking thread, never on the async workers.
pub(crate) async fn off_thread<T: Send + 'static>(
    field: &'static str,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::time::timeout(RENDER_DEADLINE, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ApiError::Internal(PortError::Backend(Box::new(e)))),
        Err(_) => Err(ApiError::field(
            field,
            "the template took too long to render",
        )),
    }
}

pub(crate) fn spec(body: TemplateBody, id: String) -> Result<Template, ApiError> {
    let variants = serde_json::from_value(body.variants).map_err(|e| {
        ApiError::field(
            "variants",
            format!("variants must map locales to {{text, content, suggestions}}: {e}"),
        )
    })?;
    let traffic_type = match body.traffic_type.as_deref() {
        None => None,
        Some(t) => Some(hermod_core::model::TrafficType::parse(t).ok_or_else(|| {
            ApiError::field(
                "traffic_type",
                "traffic_type must be one of authentication, transaction, promotion, service_request, acknowledgement",
            )
        })?),
    };
    TemplateSpec {
        id,
        default_locale: body.default_locale,
        variables: body.variables,
        variants,
        traffic_type,
    }
    .validate(now_ms())
    .map_err(|e| template_error("", e))
}

#[utoipa::path(request_body = TemplateBody,
    responses((status = 201, body = TemplateResource), (status = 400), (status = 409)))]
#[post("/v1/templates")]
pub(crate) async fn create(
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: TemplateBody = parse_json(&body)?;
    let id =
        b.id.clone()
            .ok_or_else(|| ApiError::field("id", "id is required"))?;
    let t = off_thread("variants", move || spec(b, id)).await?;
    match store(&state)?.put_template(&tenant.0, &t, false).await {
        Err(PortError::Conflict(m)) => return Err(ApiError::Conflict(m)),
        other => other?,
    }
    Ok(HttpResponse::Created().json(resource(&t)))
}

#[utoipa::path(request_body = TemplateBody,
    responses((status = 200, body = TemplateResource), (status = 400)))]
#[put("/v1/templates/{id}")]
pub(crate) async fn replace(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: TemplateBody = parse_json(&body)?;
    let id = path.into_inner();
    if b.id.as_ref().is_some_and(|i| *i != id) {
        return Err(ApiError::field("id", "id differs from the path"));
    }
    let t = off_thread("variants", move || spec(b, id)).await?;
    store(&state)?.put_template(&tenant.0, &t, true).await?;
    let stored = store(&state)?
        .template(&tenant.0, &t.id)
        .await?
        .unwrap_or(t);
    Ok(HttpResponse::Ok().json(resource(&stored)))
}

#[utoipa::path(responses((status = 200, body = TemplateList)))]
#[get("/v1/templates")]
pub(crate) async fn list(
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let all = store(&state)?.list_templates(&tenant.0).await?;
    Ok(
        HttpResponse::Ok().json(crate::json::keys_sorted(&TemplateList {
            data: all.iter().map(resource).collect(),
        })),
    )
}

async fn find(state: &AppState, tenant: &Tenant, id: &str) -> Result<Template, ApiError> {
    store(state)?
        .template(&tenant.0, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no template '{id}'")))
}

#[utoipa::path(responses((status = 200, body = TemplateResource), (status = 404)))]
#[get("/v1/templates/{id}")]
pub(crate) async fn get(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(resource(&find(&state, &tenant, &path).await?)))
}

#[utoipa::path(responses((status = 204), (status = 404)))]
#[delete("/v1/templates/{id}")]
pub(crate) async fn delete(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if store(&state)?.delete_template(&tenant.0, &path).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound(format!("no template '{path}'")))
    }
}

/// The time zone dates render in: `timezone`, else the recipient's.
pub(crate) fn zone(
    timezone: Option<&str>,
    to: Option<&Msisdn>,
    quiet: Option<&hermod_core::quiet::QuietHours>,
) -> Option<String> {
    timezone.map(str::to_owned).or_else(|| {
        let to = to?;
        quiet
            .and_then(|q| q.zone_for(to))
            .or_else(|| hermod_core::quiet::country_zone(to).map(str::to_owned))
    })
}

pub(crate) fn rendered_json(r: &Rendered) -> serde_json::Value {
    serde_json::json!({
        "locale": r.locale,
        "text": r.text,
        "content": r.content.as_ref().map(|c| serde_json::to_value(&c.content).unwrap_or_default()),
        "suggestions": r.content.as_ref().filter(|c| !c.suggestions.is_empty()).map(|c| serde_json::to_value(&c.suggestions).unwrap_or_default()),
        "sms": sms_info(&r.text),
    })
}

#[utoipa::path(request_body = PreviewBody,
    responses((status = 200, description = "`{locale, text, content, suggestions, sms: {encoding, segments, characters}}`"), (status = 400), (status = 404)))]
#[post("/v1/templates/{id}/preview")]
pub(crate) async fn preview(
    path: web::Path<String>,
    tenant: Tenant,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let b: PreviewBody = parse_json(&body)?;
    Ok(HttpResponse::Ok().json(render_preview(&state, &tenant, &path, b).await?))
}

/// A template rendered for a preview: `{locale, text, content, suggestions, sms}`.
pub(crate) async fn render_preview(
    state: &AppState,
    tenant: &Tenant,
    id: &str,
    b: PreviewBody,
) -> Result<serde_json::Value, ApiError> {
    let t = find(state, tenant, id).await?;
    let to = match &b.to {
        Some(v) => Some(Msisdn::parse(v).map_err(|e| ApiError::field("to", format!("to {e}")))?),
        None => None,
    };
    if let Some(z) = &b.timezone
        && !hermod_core::quiet::valid_zone(z)
    {
        return Err(ApiError::field(
            "timezone",
            format!("unknown time zone '{z}'"),
        ));
    }
    let tz = zone(b.timezone.as_deref(), to.as_ref(), None);
    let vars = b.vars.unwrap_or_else(|| serde_json::json!({}));
    let locale = b.locale.clone();
    let r = off_thread("variants", move || {
        t.render(locale.as_deref(), &vars, tz.as_deref())
            .map_err(|e| template_error("", e))
    })
    .await?;
    Ok(rendered_json(&r))
}
