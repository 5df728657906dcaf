use actix_web::HttpResponse;
use utoipa::OpenApi;

use crate::inbound::{self, *};
use crate::messages::{self, *};
use crate::{app, hooks, ops, senders, templates, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hermod API", description = "One API for SMS, RCS and app messages."),
    paths(messages::create, messages::create_batch, messages::get, messages::list, messages::cancel,
          inbound::list_inbound, inbound::mark_read, inbound::show_typing, inbound::list_opt_outs, inbound::add_opt_out, inbound::remove_opt_out,
          ops::connectors, ops::reload, ops::dead_letters, crate::rbm_webhook,
          app::register, app::list, app::rotate, app::revoke, app::inbox, app::receipt,
          webhooks::create_endpoint, webhooks::list_endpoints, webhooks::delete_endpoint,
          webhooks::rotate_callback_secret, webhooks::list_deliveries, webhooks::retry_delivery,
          webhooks::get_defaults, webhooks::put_defaults,
          templates::create, templates::list, templates::get, templates::replace, templates::delete,
          templates::preview, hooks::create, hooks::list, hooks::delete, hooks::ingest,
          senders::admin_list, senders::assign, senders::remove, senders::unattributed, senders::list),
    components(schemas(SendMessage, SendBatch, MessageResource, MessageList, AttemptView, EventView,
                       InboundResource, InboundList, AgentEventSent, NewOptOut, OptOutResource,
                       app::NewDevice, app::RotateKey, app::DeviceResource, app::AppReceipt,
                       webhooks::NewEndpoint, webhooks::EndpointResource, webhooks::DeliveryResource,
                       webhooks::DefaultsBody, templates::TemplateBody, templates::PreviewBody,
                       templates::TemplateResource, hooks::HookBody, hooks::HookResource,
                       senders::NewSender, senders::SenderResource)),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        doc.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The document, for `hermod openapi` and tests.
pub fn document() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_default()
}
