//! HTTP API v1 (actix-web): messages, inbound SMS, opt-outs, connectors, health,
//! metrics, OpenAPI.
//!
//! Handlers see only the `Store` trait. Errors are `{"error": {code, message, field?}}`
//! with the right 4xx; unknown JSON fields are refused with the field named.

mod app;
pub mod audit;
mod auth;
mod error;
#[doc(hidden)]
pub mod fuzz;
mod hooks;
mod inbound;
pub mod limits;
mod messages;
pub mod openapi;
mod ops;
mod senders;
mod templates;
mod webhooks;

use std::sync::Arc;

use actix_web::{HttpResponse, web};
use hermod_core::model::ChannelKind;
use hermod_core::ports::{Store, WebhookIngress};
use hermod_crypto::ApiKeys;

pub use error::ApiError;
pub use limits::{Budgets, KeyedLimit, Rate, RateLimits};
pub use ops::Operations;

/// Shared state of the HTTP workers.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub keys: ApiKeys,
    /// Renders `/metrics` in the Prometheus text format.
    pub metrics: Arc<dyn Fn() -> String + Send + Sync>,
    /// Per-tenant limits on message creation.
    pub limits: Arc<RateLimits>,
    /// Alert hooks', audit calls' and stream sockets' own budgets.
    pub budgets: Arc<Budgets>,
    /// Connectors and reload, when this process runs the channels.
    pub ops: Option<Arc<dyn Operations>>,
    /// Bearer token of the admin endpoints; none = admin API off.
    pub admin_token: Option<String>,
    /// The job queue, for `GET /v1/admin/dead-letters`.
    pub queue: Option<Arc<dyn hermod_core::ports::Queue>>,
    /// Channels messages may ask for.
    pub channels: Vec<ChannelKind>,
    /// RBM webhook ingress, when RCS agents are configured.
    pub rbm_webhook: Option<Arc<dyn WebhookIngress>>,
    /// Agent events (READ, typing) for inbound RCS messages, when agents are configured.
    pub agent_events: Option<Arc<dyn hermod_core::ports::AgentEvents>>,
    /// The app channel's device registry and inboxes.
    pub devices: Option<Arc<dyn hermod_core::ports::Devices>>,
    /// Device ids with new envelopes (wakes this process's app streams).
    pub app_wake: Option<tokio::sync::broadcast::Sender<String>>,
    /// Where app acknowledgements go: batched into the store with other receipts.
    pub receipts: Arc<dyn hermod_core::ports::ReceiptSink>,
    /// Customer webhook endpoints and deliveries.
    pub webhooks: Option<Arc<dyn hermod_core::webhook::Webhooks>>,
    /// The audit chain, erasure and retention.
    pub audit: Option<Arc<dyn hermod_core::audit::AuditLog>>,
    /// Signs audit checkpoints.
    pub signer: Option<Arc<dyn hermod_core::audit::CheckpointSigning>>,
    /// Message templates.
    pub templates: Option<Arc<dyn hermod_core::ports::Templates>>,
    /// Alert hooks.
    pub hooks: Option<Arc<dyn hermod_core::ports::Hooks>>,
    /// Tenants' quiet hours, read at most every few seconds per tenant.
    pub quiet: Arc<QuietCache>,
    /// API keys as last read, so a request costs no database read (see `auth`).
    pub key_cache: Arc<auth::KeyCache>,
    /// Which addresses webhook URLs may point at (`[webhooks] allow_private`).
    pub address_policy: Arc<hermod_core::net::AddressPolicy>,
    /// Who owns which sender (configuration and `/v1/admin/senders`).
    pub senders: Arc<hermod_core::sender::SenderBook>,
}

/// Each tenant's quiet hours as last read, and when.
#[derive(Default)]
pub struct QuietCache(
    std::sync::Mutex<
        std::collections::HashMap<
            hermod_core::TenantId,
            (std::time::Instant, Option<hermod_core::quiet::QuietHours>),
        >,
    >,
);

/// How long a tenant's quiet hours are used before being read again (other API
/// processes see a change within this).
const QUIET_TTL: std::time::Duration = std::time::Duration::from_secs(2);

impl AppState {
    /// The tenant's quiet hours, if it has set any.
    pub(crate) async fn quiet_hours(
        &self,
        tenant: &hermod_core::TenantId,
    ) -> Result<Option<hermod_core::quiet::QuietHours>, ApiError> {
        if let Ok(c) = self.quiet.0.lock()
            && let Some((at, q)) = c.get(tenant)
            && at.elapsed() < QUIET_TTL
        {
            return Ok(q.clone());
        }
        let q = self.store.tenant_defaults(tenant).await?.quiet_hours;
        if let Ok(mut c) = self.quiet.0.lock() {
            c.insert(tenant.clone(), (std::time::Instant::now(), q.clone()));
        }
        Ok(q)
    }

    pub(crate) fn forget_quiet_hours(&self, tenant: &hermod_core::TenantId) {
        if let Ok(mut c) = self.quiet.0.lock() {
            c.remove(tenant);
        }
    }
}

/// One route: its method, path and handler.
macro_rules! route {
    ($m:ident $path:literal => $h:expr) => {
        (
            actix_web::http::Method::$m,
            $path,
            web::method(actix_web::http::Method::$m).to($h),
        )
    };
}

/// Every route the server mounts: method, path, handler. The one list `configure`
/// mounts and [`route_table`] shows (the isolation test walks it: a route without a
/// case there fails it).
fn routes() -> Vec<(actix_web::http::Method, &'static str, actix_web::Route)> {
    vec![
        route!(GET "/healthz" => healthz),
        route!(GET "/metrics" => metrics),
        route!(GET "/openapi.json" => openapi::serve),
        route!(POST "/v1/messages" => messages::create),
        route!(GET "/v1/messages" => messages::list),
        route!(POST "/v1/messages/batch" => messages::create_batch),
        route!(GET "/v1/messages/{id}" => messages::get),
        route!(DELETE "/v1/messages/{id}" => messages::cancel),
        route!(GET "/v1/inbound" => inbound::list_inbound),
        route!(POST "/v1/inbound/{id}/read" => inbound::mark_read),
        route!(POST "/v1/inbound/{id}/typing" => inbound::show_typing),
        route!(GET "/v1/opt-outs" => inbound::list_opt_outs),
        route!(POST "/v1/opt-outs" => inbound::add_opt_out),
        route!(DELETE "/v1/opt-outs/{recipient}" => inbound::remove_opt_out),
        route!(GET "/v1/connectors" => ops::connectors),
        route!(POST "/v1/admin/reload" => ops::reload),
        route!(GET "/v1/admin/dead-letters" => ops::dead_letters),
        route!(GET "/v1/admin/senders" => senders::admin_list),
        route!(POST "/v1/admin/senders" => senders::assign),
        route!(DELETE "/v1/admin/senders/{sender}" => senders::remove),
        route!(GET "/v1/admin/inbound" => senders::unattributed),
        route!(GET "/v1/senders" => senders::list),
        route!(POST "/v1/webhooks/rbm/{agent}" => rbm_webhook),
        route!(POST "/v1/devices" => app::register),
        route!(GET "/v1/devices" => app::list),
        route!(POST "/v1/devices/{id}/key" => app::rotate),
        route!(DELETE "/v1/devices/{id}" => app::revoke),
        route!(GET "/v1/app/inbox" => app::inbox),
        route!(GET "/v1/app/stream" => app::stream),
        route!(POST "/v1/app/receipts" => app::receipt),
        route!(GET "/v1/audit/public-key" => audit::public_key),
        route!(GET "/v1/audit/verify" => audit::verify),
        route!(POST "/v1/audit/checkpoints" => audit::checkpoint),
        route!(GET "/v1/audit/export" => audit::export),
        route!(DELETE "/v1/subjects/{number}" => audit::erase),
        route!(GET "/v1/tenant/retention" => audit::get_retention),
        route!(PUT "/v1/tenant/retention" => audit::put_retention),
        route!(POST "/v1/templates" => templates::create),
        route!(GET "/v1/templates" => templates::list),
        route!(GET "/v1/templates/{id}" => templates::get),
        route!(PUT "/v1/templates/{id}" => templates::replace),
        route!(DELETE "/v1/templates/{id}" => templates::delete),
        route!(POST "/v1/templates/{id}/preview" => templates::preview),
        route!(POST "/v1/hooks" => hooks::create),
        route!(GET "/v1/hooks" => hooks::list),
        route!(DELETE "/v1/hooks/{id}" => hooks::delete),
        route!(POST "/v1/hooks/{token}" => hooks::ingest),
        route!(GET "/v1/tenant/defaults" => webhooks::get_defaults),
        route!(PUT "/v1/tenant/defaults" => webhooks::put_defaults),
        route!(POST "/v1/webhook-endpoints" => webhooks::create_endpoint),
        route!(GET "/v1/webhook-endpoints" => webhooks::list_endpoints),
        route!(DELETE "/v1/webhook-endpoints/{id}" => webhooks::delete_endpoint),
        route!(POST "/v1/webhook-secret" => webhooks::rotate_callback_secret),
        route!(GET "/v1/webhook-deliveries" => webhooks::list_deliveries),
        route!(POST "/v1/webhook-deliveries/{id}/retry" => webhooks::retry_delivery),
    ]
}

/// `(method, path)` of every route, as mounted.
pub fn route_table() -> Vec<(String, &'static str)> {
    routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p))
        .collect()
}

/// Mounts every route. Use inside `App::new().configure(...)`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024));
        for (_, path, route) in routes() {
            cfg.route(path, route);
        }
        cfg.default_service(web::to(not_found));
    }
}

/// `POST /v1/webhooks/rbm/{agent}`: RBM's setup handshake and signed events. No API
/// key: the HMAC signature (or the clientToken) authenticates the caller.
#[utoipa::path(post, path = "/v1/webhooks/rbm/{agent}", security(()),
    params(("agent" = String, Path, description = "the agent's `name` in the configuration"),
           ("X-Goog-Signature" = Option<String>, Header, description = "base64(HMAC-SHA512(clientToken, message.data))")),
    request_body(content = Object, description = "a Pub/Sub push envelope, or the `{clientToken, secret}` handshake"),
    responses((status = 200, description = "recorded (`ok`), a `duplicate`, `ignored` with a `reason` (an unknown agent, an agent without client_token, a signed event Hermod cannot use), or the handshake's secret"),
              (status = 400, description = "not a push envelope"), (status = 401, description = "bad or missing signature"), (status = 404, description = "this server has no RCS agents"), (status = 503)))]
pub(crate) async fn rbm_webhook(
    state: web::Data<AppState>,
    agent: web::Path<String>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let Some(hook) = &state.rbm_webhook else {
        return actix_web::ResponseError::error_response(&ApiError::NotFound(
            "no RCS agents are configured".into(),
        ));
    };
    let sig = req
        .headers()
        .get("x-goog-signature")
        .and_then(|v| v.to_str().ok());
    let r = hook.handle(&agent, sig, &body).await;
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(r.status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type(r.content_type)
    .body(r.body)
}

/// Liveness: `200 ok` while the process serves.
#[utoipa::path(get, path = "/healthz", tag = "ops", security(()),
    responses((status = 200, description = "the process is up")))]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Prometheus text; the operator's (`Authorization: Bearer <admin_token>`): it names
/// connectors and counts every tenant's traffic.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, content_type = "text/plain", description = "Prometheus text"), (status = 401, description = "not the admin token"), (status = 403, description = "no admin token configured")))]
pub(crate) async fn metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    ops::require_admin(&req, &state)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body((state.metrics)()))
}

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::NotFound("no such route".into()))
}
