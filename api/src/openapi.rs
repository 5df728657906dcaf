use actix_web::HttpResponse;
use actix_web::get;
use utoipa::OpenApi;

use crate::inbound::*;
use crate::messages::*;
use crate::{app, hooks, senders, templates, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Hermod API", description = "One API for SMS, RCS and app messages."),
    components(schemas(SendMessage, SendBatch, MessageResource, MessageList, AttemptView, EventView,
                       InboundResource, InboundList, AgentEventSent, NewOptOut, OptOutResource,
                       app::NewDevice, app::RotateKey, app::DeviceResource, app::AppReceipt,
                       webhooks::NewEndpoint, webhooks::EndpointResource, webhooks::DeliveryResource,
                       webhooks::DefaultsBody, templates::TemplateBody, templates::PreviewBody,
                       templates::TemplateResource, hooks::HookBody, hooks::HookResource,
                       senders::NewSender, senders::SenderResource,
                       crate::audit::PublicKeyResource, crate::audit::VerifyResource,
                       crate::audit::BreakResource, crate::audit::ErasureResource,
                       crate::audit::RetentionBody)),
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

/// This document.
#[utoipa::path(tag = "ops", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document")))]
#[get("/openapi.json")]
pub(crate) async fn serve() -> HttpResponse {
    HttpResponse::Ok().json(cached())
}

/// The document, built once: it depends on nothing but the code.
fn cached() -> &'static serde_json::Value {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    DOC.get_or_init(spec)
}

/// The document, for `hermod openapi` and tests.
pub fn document() -> String {
    serde_json::to_string_pretty(cached()).unwrap_or_default()
}

/// Every 4xx and 5xx body: `{"error": {"code", "message", "field"?}}`.
fn error_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "required": ["error"],
        "additionalProperties": false,
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": false,
            "properties": {
                "code": {"type": "string", "description": "`invalid_field`, `not_found`, … (the HTTP API reference lists them)"},
                "message": {"type": "string", "description": "for people; may change"},
                "field": {"type": "string", "description": "the offending field by its whole path (`messages[3].to`) or header"}
            }
        }}
    })
}

/// Twilio's error body: `{code, message, more_info, status}`.
fn twilio_error_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "required": ["code", "message", "more_info", "status"],
        "properties": {
            "code": {"type": "integer", "description": "Twilio's error code (`21211`, `20404`, …)"},
            "message": {"type": "string"},
            "more_info": {"type": "string", "description": "Twilio's page for the code"},
            "status": {"type": "integer", "description": "the HTTP status"}
        }
    })
}

/// The generated document, completed where the generator leaves it short of the
/// OpenAPI rules: every response has a description (the status's reason phrase when
/// the handler gives none) and operation ids are unique (`<tag>_<handler>`).
pub fn spec() -> serde_json::Value {
    let mut api = ApiDoc::openapi();
    // The paths come from the table that mounts the routes (`crate::routes`).
    let components = api.components.get_or_insert_with(Default::default);
    let mut access = Vec::new();
    for r in crate::routes() {
        access.push((
            r.path.clone(),
            r.method_name().to_ascii_lowercase(),
            r.access,
        ));
        let mut op = r.operation;
        // Handler names repeat across modules (`list`, `create`): `<tag>_<handler>`.
        op.operation_id = op.operation_id.map(|id| format!("{}_{id}", r.tag));
        op.tags = Some(vec![r.tag]);
        api.paths.add_path_operation(r.path, vec![r.method], op);
        for (name, schema) in r.schemas {
            components.schemas.entry(name).or_insert(schema);
        }
    }
    let mut doc = serde_json::to_value(api).unwrap_or_default();
    doc["components"]["schemas"]["Error"] = error_schema();
    doc["components"]["schemas"]["TwilioError"] = twilio_error_schema();
    doc["components"]["securitySchemes"]["twilio"] = serde_json::json!({"type": "http", "scheme": "basic", "description": "Twilio's: the account SID and auth token, or an API key SID (`SK…`) and secret"});
    let hermod_error = serde_json::json!({"$ref": "#/components/schemas/Error"});
    let twilio_error = serde_json::json!({"$ref": "#/components/schemas/TwilioError"});
    // Who may call each operation, and the 403 a key of a lesser role gets.
    for (path, method, a) in access {
        let op = &mut doc["paths"][&path][&method];
        if op.is_object() {
            op["x-hermod-access"] = serde_json::json!(a.as_str());
            if let crate::Access::Twilio(_) = a {
                op["security"] = serde_json::json!([{"twilio": []}]);
            }
            if let crate::Access::Tenant(_) = a
                && op["responses"].get("403").is_none()
            {
                op["responses"]["403"] = serde_json::json!({
                    "description": "the key's role does not allow this route (`forbidden`), or its tenant is suspended (`tenant_suspended`)"
                });
            }
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        // The Twilio API answers errors in Twilio's shape.
        let error_ref = if path.starts_with("/2010-04-01/") {
            &twilio_error
        } else {
            &hermod_error
        };
        for op in ops.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            for (status, r) in responses.iter_mut() {
                let code = status
                    .parse::<u16>()
                    .ok()
                    .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok());
                let missing = r
                    .get("description")
                    .and_then(|d| d.as_str())
                    .is_none_or(str::is_empty);
                let error = code.is_some_and(|c| c.as_u16() >= 400);
                if error && r.get("content").is_none() {
                    r["content"] = serde_json::json!({"application/json": {"schema": error_ref}});
                } else if error
                    && let Some(schema) = r.pointer_mut("/content/application~1json/schema")
                    && schema != error_ref
                {
                    // A route's own error body, or the common one (bad JSON, auth).
                    *schema = serde_json::json!({"oneOf": [schema.take(), error_ref]});
                }
                if missing && let Some(r) = r.as_object_mut() {
                    let phrase = code
                        .and_then(|c| c.canonical_reason())
                        .unwrap_or("response");
                    r.insert("description".into(), phrase.into());
                }
            }
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request body with only the fields the document marks required is one the
    /// server accepts, and it holds every field the document requires: optional fields
    /// are not declared required, required ones not left out.
    #[test]
    fn request_bodies_require_what_the_server_requires() {
        fn accepts<T: serde::de::DeserializeOwned>(body: &str) -> bool {
            crate::json::parse_json::<T>(body.as_bytes()).is_ok()
        }
        let doc = spec();
        /// The schema's name, a minimal body, whether the server's type accepts it.
        type Case = (&'static str, &'static str, fn(&str) -> bool);
        let cases: [Case; 5] = [
            (
                "HookBody",
                r#"{"name": "disk"}"#,
                accepts::<crate::hooks::HookBody>,
            ),
            (
                "DefaultsBody",
                "{}",
                accepts::<crate::webhooks::DefaultsBody>,
            ),
            (
                "SendMessage",
                r#"{"to": "+447911123456"}"#,
                accepts::<SendMessage>,
            ),
            (
                "NewEndpoint",
                r#"{"url": "https://example.com/h", "events": ["*"]}"#,
                accepts::<crate::webhooks::NewEndpoint>,
            ),
            (
                "PreviewBody",
                "{}",
                accepts::<crate::templates::PreviewBody>,
            ),
        ];
        for (name, minimal, accepted) in cases {
            assert!(accepted(minimal), "{name}: the server refuses {minimal}");
            let body: serde_json::Value = serde_json::from_str(minimal).unwrap();
            let mut required: Vec<&str> = doc["components"]["schemas"][name]["required"]
                .as_array()
                .map(|r| r.iter().filter_map(|f| f.as_str()).collect())
                .unwrap_or_default();
            required.sort_unstable();
            let mut given: Vec<&str> = body
                .as_object()
                .unwrap()
                .keys()
                .map(|k| k.as_str())
                .collect();
            given.sort_unstable();
            assert_eq!(required, given, "{name}: required in /openapi.json");
        }
    }

    /// The same table mounts the routes and is compared with the document: a route
    /// missing from `/openapi.json` (or documented but not mounted) fails here.
    #[test]
    fn every_mounted_route_is_in_the_document_and_nothing_else() {
        let doc = spec();
        let mut documented = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.insert(format!("{} {path}", method.to_ascii_uppercase()));
            }
        }
        let mounted: std::collections::BTreeSet<String> = crate::route_table()
            .into_iter()
            .map(|(m, p, _)| format!("{m} {p}"))
            .collect();
        let missing: Vec<_> = mounted.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&mounted).collect();
        assert!(
            missing.is_empty(),
            "mounted but not in /openapi.json: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "in /openapi.json but not mounted: {extra:?}"
        );
    }

    #[test]
    fn operation_ids_are_unique_and_every_response_is_described() {
        let doc = spec();
        let mut ids = std::collections::HashSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap();
                assert!(
                    ids.insert(id.to_owned()),
                    "{method} {path}: operationId {id} twice"
                );
                for (status, r) in op["responses"].as_object().unwrap() {
                    assert!(
                        r["description"].as_str().is_some_and(|d| !d.is_empty()),
                        "{method} {path} {status}: no description"
                    );
                }
            }
        }
    }
}
