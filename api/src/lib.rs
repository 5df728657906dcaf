//! HTTP API v1 (actix-web): messages, inbound SMS, opt-outs, connectors, health,
//! metrics, OpenAPI.
//!
//! Handlers see only the `Store` trait. Errors are `{"error": {code, message, field?}}`
//! with the right 4xx; unknown JSON fields are refused with the field named.

mod app;
pub mod audit;
mod auth;
mod error;
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

/// Mounts every route. Use inside `App::new().configure(...)`.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024))
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics))
            .route("/openapi.json", web::get().to(openapi::serve))
            .service(
                web::scope("/v1")
                    .route("/messages", web::post().to(messages::create))
                    .route("/messages", web::get().to(messages::list))
                    .route("/messages/batch", web::post().to(messages::create_batch))
                    .route("/messages/{id}", web::get().to(messages::get))
                    .route("/messages/{id}", web::delete().to(messages::cancel))
                    .route("/inbound", web::get().to(inbound::list_inbound))
                    .route("/opt-outs", web::get().to(inbound::list_opt_outs))
                    .route("/opt-outs", web::post().to(inbound::add_opt_out))
                    .route(
                        "/opt-outs/{recipient}",
                        web::delete().to(inbound::remove_opt_out),
                    )
                    .route("/connectors", web::get().to(ops::connectors))
                    .route("/admin/reload", web::post().to(ops::reload))
                    .route("/admin/dead-letters", web::get().to(ops::dead_letters))
                    .route("/admin/senders", web::get().to(senders::admin_list))
                    .route("/admin/senders", web::post().to(senders::assign))
                    .route("/admin/senders/{sender}", web::delete().to(senders::remove))
                    .route("/admin/inbound", web::get().to(senders::unattributed))
                    .route("/senders", web::get().to(senders::list))
                    .route("/webhooks/rbm/{agent}", web::post().to(rbm_webhook))
                    .route("/devices", web::post().to(app::register))
                    .route("/devices", web::get().to(app::list))
                    .route("/devices/{id}/key", web::post().to(app::rotate))
                    .route("/devices/{id}", web::delete().to(app::revoke))
                    .route("/app/inbox", web::get().to(app::inbox))
                    .route("/app/stream", web::get().to(app::stream))
                    .route("/app/receipts", web::post().to(app::receipt))
                    .route("/audit/public-key", web::get().to(audit::public_key))
                    .route("/audit/verify", web::get().to(audit::verify))
                    .route("/audit/checkpoints", web::post().to(audit::checkpoint))
                    .route("/audit/export", web::get().to(audit::export))
                    .route("/subjects/{number}", web::delete().to(audit::erase))
                    .route("/tenant/retention", web::get().to(audit::get_retention))
                    .route("/tenant/retention", web::put().to(audit::put_retention))
                    .route("/templates", web::post().to(templates::create))
                    .route("/templates", web::get().to(templates::list))
                    .route("/templates/{id}", web::get().to(templates::get))
                    .route("/templates/{id}", web::put().to(templates::replace))
                    .route("/templates/{id}", web::delete().to(templates::delete))
                    .route(
                        "/templates/{id}/preview",
                        web::post().to(templates::preview),
                    )
                    .route("/hooks", web::post().to(hooks::create))
                    .route("/hooks", web::get().to(hooks::list))
                    .route("/hooks/{id}", web::delete().to(hooks::delete))
                    .route("/hooks/{token}", web::post().to(hooks::ingest))
                    .route("/tenant/defaults", web::get().to(webhooks::get_defaults))
                    .route("/tenant/defaults", web::put().to(webhooks::put_defaults))
                    .route(
                        "/webhook-endpoints",
                        web::post().to(webhooks::create_endpoint),
                    )
                    .route(
                        "/webhook-endpoints",
                        web::get().to(webhooks::list_endpoints),
                    )
                    .route(
                        "/webhook-endpoints/{id}",
                        web::delete().to(webhooks::delete_endpoint),
                    )
                    .route(
                        "/webhook-secret",
                        web::post().to(webhooks::rotate_callback_secret),
                    )
                    .route(
                        "/webhook-deliveries",
                        web::get().to(webhooks::list_deliveries),
                    )
                    .route(
                        "/webhook-deliveries/{id}/retry",
                        web::post().to(webhooks::retry_delivery),
                    ),
            )
            .default_service(web::to(not_found));
    }
}

/// `POST /v1/webhooks/rbm/{agent}`: RBM's setup handshake and signed events. No API
/// key: the HMAC signature (or the clientToken) authenticates the caller.
#[utoipa::path(post, path = "/v1/webhooks/rbm/{agent}", security(()),
    params(("agent" = String, Path, description = "the agent's `name` in the configuration"),
           ("X-Goog-Signature" = Option<String>, Header, description = "base64(HMAC-SHA512(clientToken, message.data))")),
    request_body(content = Object, description = "a Pub/Sub push envelope, or the `{clientToken, secret}` handshake"),
    responses((status = 200, description = "recorded, a duplicate, or the handshake's secret"),
              (status = 400), (status = 401, description = "bad or missing signature"), (status = 404), (status = 503)))]
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

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Prometheus text; the operator's (`Authorization: Bearer <admin_token>`): it names
/// connectors and counts every tenant's traffic.
async fn metrics(
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
