//! HTTP API v1 (actix-web): messages, inbound SMS, opt-outs, connectors, health,
//! metrics, OpenAPI.
//!
//! Handlers see only the `Store` trait. Errors are `{"error": {code, message, field?}}`
//! with the right 4xx; unknown JSON fields are refused with the field named.

mod admin;
mod app;
pub mod audit;
mod auth;
pub mod console;
mod error;
#[doc(hidden)]
pub mod fuzz;
mod hooks;
mod inbound;
mod json;
mod keys;
pub mod limits;
mod messages;
pub mod openapi;
mod ops;
mod senders;
pub mod smpp;
mod span;
mod templates;
pub mod twilio;
mod webhooks;

use actix_web::{get, post};
use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use hermod_core::model::ChannelKind;
use hermod_core::ports::{Inbound, Messages, Tenants, WebhookIngress};
use hermod_core::tenant::Role;
use hermod_crypto::ApiKeys;

pub use auth::Caller;
pub use error::ApiError;
pub use limits::{Budgets, KeyedLimit, Quotas, Rate, RateLimits};
pub use ops::Operations;
pub use span::request_span;

/// Shared state of the HTTP workers.
#[derive(Clone)]
pub struct AppState {
    /// Messages: accepting, reading, canceling.
    pub messages: Arc<dyn Messages>,
    /// Inbound messages, opt-outs and provider events.
    pub inbound: Arc<dyn Inbound>,
    /// API keys and the tenants' defaults.
    pub tenants: Arc<dyn Tenants>,
    /// Tenants, keys with roles and console sessions, as the operator administers them.
    pub admin: Arc<dyn hermod_core::tenant::TenantAdmin>,
    /// The console's overview.
    pub insights: Arc<dyn hermod_core::insights::Insights>,
    /// Tenants' daily quotas, counted.
    pub quotas: Arc<Quotas>,
    /// The console's settings (`[console]`).
    pub console: console::ConsoleOptions,
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
    /// Providers' webhooks by provider (`rbm`): `/v1/webhooks/{provider}/{name}`.
    pub ingress: Arc<HashMap<String, Arc<dyn WebhookIngress>>>,
    /// Agent events (READ, typing) for inbound messages, by the channel they came on.
    pub agent_events: Arc<HashMap<ChannelKind, Arc<dyn hermod_core::ports::AgentEvents>>>,
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
    /// The Twilio API's accounts, numbers and removals.
    pub twilio: Arc<dyn hermod_core::twilio::TwilioStore>,
    /// Twilio accounts as last read, so a request costs no database read.
    pub twilio_accounts: Arc<twilio::AccountCache>,
    /// SMPP server accounts, message parts and the deliver_sm outbox.
    pub smpp: Arc<dyn hermod_core::smpp::SmppStore>,
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
        let q = self.tenants.tenant_defaults(tenant).await?.quiet_hours;
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

/// One route, declared once: the handler's `#[actix_web::<method>("<path>")]` mounts it
/// and its `#[utoipa::path]` documents it, so the table below both mounts the server
/// and writes the paths of `/openapi.json`.
pub(crate) struct Route {
    pub(crate) method: utoipa::openapi::HttpMethod,
    /// The path as mounted (`/v1/messages/{id}`).
    pub(crate) path: String,
    /// The OpenAPI tag: the handler's module unless its attribute names one.
    pub(crate) tag: String,
    pub(crate) operation: utoipa::openapi::path::Operation,
    /// Who may call it.
    pub(crate) access: Access,
    pub(crate) schemas: SchemaList,
    mount: Box<dyn FnOnce(&mut web::ServiceConfig)>,
}

/// Schemas an operation refers to, by name.
pub(crate) type SchemaList = Vec<(
    String,
    utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
)>;

fn route<H>(handler: H, access: Access) -> Route
where
    H: actix_web::dev::HttpServiceFactory
        + utoipa::Path
        + utoipa::__dev::SchemaReferences
        + for<'t> utoipa::__dev::Tags<'t>
        + 'static,
{
    // One method per handler: its actix attribute names one.
    let method = H::methods()
        .into_iter()
        .next()
        .unwrap_or(utoipa::openapi::HttpMethod::Get);
    // `hermod_api::messages::create`: the module names the tag.
    let module = std::any::type_name::<H>()
        .rsplit("::")
        .nth(1)
        .unwrap_or("api")
        .to_owned();
    let tag = H::tags().first().map(|t| (*t).to_owned()).unwrap_or(module);
    let mut schemas = Vec::new();
    H::schemas(&mut schemas);
    Route {
        method,
        path: H::path(),
        tag,
        operation: H::operation(),
        access,
        schemas,
        mount: Box::new(move |cfg| {
            cfg.service(handler);
        }),
    }
}

/// Every route the server mounts. The one list `configure` mounts, `/openapi.json`
/// documents and [`route_table`] shows (the isolation test walks it: a route without
/// a case there fails it).
pub(crate) fn routes() -> Vec<Route> {
    vec![
        route(healthz, Access::Public),
        route(metrics, Access::Operator),
        route(openapi::serve, Access::Public),
        route(messages::create, Access::Tenant(Role::Send)),
        route(messages::list, Access::Tenant(Role::Read)),
        route(messages::create_batch, Access::Tenant(Role::Send)),
        route(messages::get, Access::Tenant(Role::Read)),
        route(messages::cancel, Access::Tenant(Role::Send)),
        route(inbound::list_inbound, Access::Tenant(Role::Read)),
        route(inbound::mark_read, Access::Tenant(Role::Send)),
        route(inbound::show_typing, Access::Tenant(Role::Send)),
        route(inbound::list_opt_outs, Access::Tenant(Role::Read)),
        route(inbound::add_opt_out, Access::Tenant(Role::Admin)),
        route(inbound::remove_opt_out, Access::Tenant(Role::Admin)),
        route(ops::connectors, Access::Operator),
        route(ops::reload, Access::Operator),
        route(ops::dead_letters, Access::Operator),
        route(senders::admin_list, Access::Operator),
        route(senders::assign, Access::Operator),
        route(senders::remove, Access::Operator),
        route(senders::unattributed, Access::Operator),
        route(senders::list, Access::Tenant(Role::Read)),
        route(provider_webhook, Access::Public),
        route(app::register, Access::Tenant(Role::Admin)),
        route(app::list, Access::Tenant(Role::Read)),
        route(app::rotate, Access::Tenant(Role::Admin)),
        route(app::revoke, Access::Tenant(Role::Admin)),
        route(app::inbox, Access::Device),
        route(app::stream, Access::Device),
        route(app::receipt, Access::Device),
        route(audit::public_key, Access::Public),
        route(audit::verify, Access::Tenant(Role::Read)),
        route(audit::checkpoint, Access::Tenant(Role::Admin)),
        route(audit::export, Access::Tenant(Role::Admin)),
        route(audit::erase, Access::Tenant(Role::Admin)),
        route(audit::get_retention, Access::Tenant(Role::Read)),
        route(audit::put_retention, Access::Tenant(Role::Admin)),
        route(templates::create, Access::Tenant(Role::Admin)),
        route(templates::list, Access::Tenant(Role::Read)),
        route(templates::get, Access::Tenant(Role::Read)),
        route(templates::replace, Access::Tenant(Role::Admin)),
        route(templates::delete, Access::Tenant(Role::Admin)),
        route(templates::preview, Access::Tenant(Role::Read)),
        route(hooks::create, Access::Tenant(Role::Admin)),
        route(hooks::list, Access::Tenant(Role::Read)),
        route(hooks::delete, Access::Tenant(Role::Admin)),
        route(hooks::ingest, Access::Public),
        route(webhooks::get_defaults, Access::Tenant(Role::Read)),
        route(webhooks::put_defaults, Access::Tenant(Role::Admin)),
        route(webhooks::create_endpoint, Access::Tenant(Role::Admin)),
        route(webhooks::list_endpoints, Access::Tenant(Role::Read)),
        route(webhooks::delete_endpoint, Access::Tenant(Role::Admin)),
        route(
            webhooks::rotate_callback_secret,
            Access::Tenant(Role::Admin),
        ),
        route(webhooks::list_deliveries, Access::Tenant(Role::Read)),
        route(webhooks::retry_delivery, Access::Tenant(Role::Admin)),
        route(keys::create, Access::Tenant(Role::Admin)),
        route(keys::list, Access::Tenant(Role::Admin)),
        route(keys::revoke, Access::Tenant(Role::Admin)),
        route(keys::rotate, Access::Tenant(Role::Admin)),
        route(admin::create_tenant, Access::Operator),
        route(admin::list_tenants, Access::Operator),
        route(admin::get_tenant, Access::Operator),
        route(admin::update_tenant, Access::Operator),
        route(admin::delete_tenant, Access::Operator),
        route(admin::create_tenant_key, Access::Operator),
        route(admin::verify_audit, Access::Operator),
        route(twilio::put_own_account, Access::Tenant(Role::Admin)),
        route(twilio::get_own_account, Access::Tenant(Role::Read)),
        route(twilio::put_tenant_account, Access::Operator),
        route(smpp::accounts::put_tenant_account, Access::Operator),
        route(smpp::accounts::list_tenant_accounts, Access::Operator),
        route(smpp::accounts::delete_tenant_account, Access::Operator),
        route(twilio::create_message, Access::Twilio(Role::Send)),
        route(twilio::list_messages, Access::Twilio(Role::Read)),
        route(twilio::fetch_message, Access::Twilio(Role::Read)),
        route(twilio::update_message, Access::Twilio(Role::Send)),
        route(twilio::delete_message, Access::Twilio(Role::Send)),
        route(twilio::list_numbers, Access::Twilio(Role::Read)),
        route(twilio::fetch_number, Access::Twilio(Role::Read)),
        route(twilio::update_number, Access::Twilio(Role::Admin)),
    ]
}

impl Route {
    /// `GET`, `POST`, … as HTTP writes it.
    pub(crate) fn method_name(&self) -> String {
        serde_json::to_value(&self.method)
            .ok()
            .and_then(|m| m.as_str().map(str::to_ascii_uppercase))
            .unwrap_or_default()
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, the document, providers' and hooks' own signatures).
    Public,
    /// The operator: `Authorization: Bearer <admin_token>`.
    Operator,
    /// A tenant's API key of at least this role.
    Tenant(Role),
    /// An app device's token.
    Device,
    /// HTTP Basic as Twilio takes it: the account SID and auth token (the tenant's
    /// admin), or an API key's SID and secret of at least this role.
    Twilio(Role),
}

impl Access {
    /// `public`, `operator`, `device`, or the least role: `read`, `send`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Operator => "operator",
            Access::Device => "device",
            Access::Tenant(r) => r.as_str(),
            Access::Twilio(Role::Read) => "twilio-read",
            Access::Twilio(Role::Send) => "twilio-send",
            Access::Twilio(Role::Admin) => "twilio-admin",
        }
    }
}

/// `(method, path, access)` of every route, as mounted.
pub fn route_table() -> Vec<(String, String, Access)> {
    routes()
        .into_iter()
        .map(|r| (r.method_name(), r.path, r.access))
        .collect()
}

/// The access a mounted route needs, by method and matched pattern; None for a route
/// not in the table.
pub(crate) fn access_of(method: &str, pattern: Option<&str>) -> Option<Access> {
    static TABLE: std::sync::OnceLock<HashMap<(String, String), Access>> =
        std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        route_table()
            .into_iter()
            .map(|(m, p, a)| ((m, p), a))
            .collect()
    });
    table
        .get(&(method.to_owned(), pattern?.to_owned()))
        .copied()
}

/// Mounts every route. Use inside `App::new().configure(...)`. A path that is mounted
/// for other methods answers 405 with `Allow`; any other one 404.
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let state_console_enabled = state.console.enabled;
        cfg.app_data(web::Data::new(state))
            .app_data(web::PayloadConfig::new(8 * 1024 * 1024));
        let mut known: Vec<(actix_web::dev::ResourceDef, String)> = Vec::new();
        for r in routes() {
            known.push((
                actix_web::dev::ResourceDef::new(r.path.as_str()),
                r.method_name(),
            ));
            (r.mount)(cfg);
        }
        if state_console_enabled {
            console::mount(cfg);
        }
        let known = std::sync::Arc::new(known);
        cfg.default_service(web::to(move |req: actix_web::HttpRequest| {
            let known = known.clone();
            async move { unrouted(&known, req.path()) }
        }));
    }
}

/// 405 with the methods a known path allows, else 404.
fn unrouted(known: &[(actix_web::dev::ResourceDef, String)], path: &str) -> HttpResponse {
    let allowed: Vec<&str> = known
        .iter()
        .filter(|(def, _)| def.is_match(path))
        .map(|(_, m)| m.as_str())
        .collect();
    if allowed.is_empty() {
        return actix_web::ResponseError::error_response(&ApiError::NotFound(
            "no such route".into(),
        ));
    }
    actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed(allowed.join(", ")))
}

/// `POST /v1/webhooks/{provider}/{name}`: a provider's webhook — RBM's (the setup
/// handshake and signed events of agent `name`), or an HTTP SMS provider's (receipts
/// and inbound messages of connector `name`). No API key: the provider's signature or
/// secret authenticates the caller.
#[utoipa::path(tag = "channels", security(()),
    params(("provider" = String, Path, description = "`rbm` (RCS), or an HTTP SMS provider's kind: `twilio`, `vonage`, `infobip`, `sinch`, `http`"),
           ("name" = String, Path, description = "the connector's `name` in the configuration (an RBM agent's, a `[[sms.providers]]` entry's)"),
           ("X-Goog-Signature" = Option<String>, Header, description = "RBM: base64(HMAC-SHA512(clientToken, message.data))"),
           ("X-Twilio-Signature" = Option<String>, Header, description = "Twilio: base64(HMAC-SHA1(auth token, URL + sorted form parameters))")),
    request_body(content = Object, description = "the provider's event; RBM: a Pub/Sub push envelope, or the `{clientToken, secret}` handshake; SMS providers: their delivery report or inbound message (form or JSON)"),
    responses((status = 200, description = "recorded (`ok`), a `duplicate`, `ignored` with a `reason` (an unknown agent, an agent without client_token, a signed event Hermod cannot use), the handshake's secret, or (Twilio inbound) empty TwiML"),
              (status = 204, description = "Twilio status callback recorded"),
              (status = 400, description = "not an event of this provider"), (status = 401, description = "bad or missing signature or secret"), (status = 404, description = "no such provider or connector configured here"), (status = 503, description = "not recorded: the provider should send it again")))]
#[post("/v1/webhooks/{provider}/{name}")]
pub(crate) async fn provider_webhook(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    req: actix_web::HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let (provider, name) = path.into_inner();
    let Some(hook) = state.ingress.get(&provider) else {
        return actix_web::ResponseError::error_response(&ApiError::NotFound(format!(
            "no {provider} webhook is configured here"
        )));
    };
    let request = hermod_core::ports::WebhookRequest {
        name,
        query: req.query_string().to_owned(),
        headers: req
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect(),
        body: body.to_vec(),
    };
    let r = hook.handle_request(&request).await;
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(r.status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type(r.content_type)
    .body(r.body)
}

/// Liveness: `200 ok` while the process serves.
#[utoipa::path(tag = "ops", security(()),
    responses((status = 200, description = "the process is up")))]
#[get("/healthz")]
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

/// Prometheus text; the operator's (`Authorization: Bearer <admin_token>`): it names
/// connectors and counts every tenant's traffic.
#[utoipa::path(tag = "ops",
    responses((status = 200, content_type = "text/plain", description = "Prometheus text"), (status = 401, description = "not the admin token"), (status = 403, description = "no admin token configured")))]
#[get("/metrics")]
pub(crate) async fn metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    ops::require_admin(&req, &state)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body((state.metrics)()))
}
