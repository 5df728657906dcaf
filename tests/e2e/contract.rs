//! The contract check: every response the end-to-end client receives from a Hermod
//! route (`support::call` and the helpers built on it) is checked against
//! `/openapi.json` — its status must be declared (or be an error) and its JSON body
//! must match the declared schema. Spec and server cannot drift apart unnoticed.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

struct Contract {
    spec: Value,
    /// `(template segments, path)` of every documented path.
    paths: Vec<(Vec<String>, String)>,
    /// Compiled validators by JSON pointer into the spec.
    validators: Mutex<HashMap<String, std::sync::Arc<jsonschema::Validator>>>,
}

fn contract() -> &'static Contract {
    static C: OnceLock<Contract> = OnceLock::new();
    C.get_or_init(|| {
        let spec = hermod_api::openapi::spec();
        let paths = spec["paths"]
            .as_object()
            .expect("paths")
            .keys()
            .map(|p| (segments(p), p.clone()))
            .collect();
        Contract {
            spec,
            paths,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(str::to_owned)
        .collect()
}

/// The documented path `url` is an instance of: the one with the most literal
/// segments (`/v1/messages/batch` over `/v1/messages/{id}`).
fn documented_path(url: &str) -> Option<&'static str> {
    let c = contract();
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(url);
    let path = path.split(['?', '#']).next().unwrap_or(path);
    let got = segments(path);
    c.paths
        .iter()
        .filter(|(t, _)| {
            t.len() == got.len()
                && t.iter()
                    .zip(&got)
                    .all(|(t, g)| (t.starts_with('{') && !g.is_empty()) || t == g)
        })
        .max_by_key(|(t, _)| t.iter().filter(|s| !s.starts_with('{')).count())
        .map(|(_, p)| p.as_str())
}

fn escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

fn validator(pointer: &str) -> std::sync::Arc<jsonschema::Validator> {
    let c = contract();
    let mut cache = c.validators.lock().unwrap();
    cache
        .entry(pointer.to_owned())
        .or_insert_with(|| {
            // The response's schema, with the components beside it so that
            // `#/components/schemas/…` resolves.
            let schema = json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": c.spec["components"],
                "allOf": [c.spec.pointer(pointer).expect("schema pointer")],
            });
            std::sync::Arc::new(
                jsonschema::validator_for(&schema)
                    .unwrap_or_else(|e| panic!("the schema at {pointer} does not compile: {e}")),
            )
        })
        .clone()
}

/// Panics when a response of a Hermod route breaks the contract. Responses of paths
/// the document does not name (simulators, receivers) are not checked.
pub fn check(method: &str, url: &str, status: u16, content_type: Option<&str>, body: &Value) {
    let Some(path) = documented_path(url) else {
        return;
    };
    let c = contract();
    let m = method.to_ascii_lowercase();
    let op = format!("/paths/{}/{m}", escape(path));
    let Some(operation) = c.spec.pointer(&op) else {
        // A wrong method: the server must say so.
        assert_eq!(
            status, 405,
            "{method} {url}: not in /openapi.json, answered {status}"
        );
        check_error(url, method, status, body);
        return;
    };
    let declared = operation["responses"].get(status.to_string()).is_some();
    if !declared {
        assert!(
            status >= 400,
            "{method} {url} ({path}): status {status} is not declared in /openapi.json"
        );
        check_error(url, method, status, body);
        return;
    }
    let json_body = content_type.is_some_and(|t| t.starts_with("application/json"));
    let schema = format!(
        "{op}/responses/{status}/content/{}/schema",
        escape("application/json")
    );
    if json_body && c.spec.pointer(&schema).is_some() {
        let v = validator(&schema);
        let errors: Vec<String> = v
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {url} ({path}) {status}: the body does not match /openapi.json:\n  {}\nbody: {body}",
            errors.join("\n  ")
        );
    }
}

fn check_error(url: &str, method: &str, status: u16, body: &Value) {
    // The Twilio API answers errors in Twilio's shape.
    let v = validator(if url.contains("/2010-04-01/") {
        "/components/schemas/TwilioError"
    } else {
        "/components/schemas/Error"
    });
    assert!(
        v.is_valid(body),
        "{method} {url} {status}: not an error body: {body}"
    );
}

#[test]
fn the_contract_check_catches_a_drifted_response() {
    // A documented body passes; one with a field of the wrong type or a list
    // declared as an object does not; an undeclared success status does not.
    let ok = json!({"data": [], "next_cursor": null});
    check(
        "GET",
        "http://h/v1/messages",
        200,
        Some("application/json"),
        &ok,
    );
    let drifted = json!({"data": {"id": 1}});
    let r = std::panic::catch_unwind(|| {
        check(
            "GET",
            "http://h/v1/messages",
            200,
            Some("application/json"),
            &drifted,
        )
    });
    assert!(r.is_err(), "a wrong body must fail the check");
    let r = std::panic::catch_unwind(|| {
        check(
            "GET",
            "http://h/v1/messages",
            299,
            Some("application/json"),
            &ok,
        )
    });
    assert!(r.is_err(), "an undeclared 2xx must fail the check");
    let error = json!({"error": {"code": "not_found", "message": "no such message"}});
    check(
        "GET",
        "http://h/v1/messages/abc",
        404,
        Some("application/json"),
        &error,
    );
    let r = std::panic::catch_unwind(|| {
        check(
            "GET",
            "http://h/v1/messages/abc",
            404,
            Some("application/json"),
            &ok,
        )
    });
    assert!(r.is_err(), "an error must have the error shape");
    // `/v1/messages/batch` is the batch route, not a message id.
    assert_eq!(
        documented_path("http://h:1/v1/messages/batch?x=1"),
        Some("/v1/messages/batch")
    );
    assert_eq!(documented_path("http://h:1/sim/thing"), None);
}
