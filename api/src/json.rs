//! JSON bodies in and out: parsing that names the offending field.

use serde::Serialize;

use crate::ApiError;

pub(crate) use hermod_core::rfc3339;

/// A JSON value parsed into `T`, an error naming the offending field (unknown fields
/// included) by its whole path under `prefix`: `quiet_hours.start`, `messages[3].to`.
pub(crate) fn parse_value<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    prefix: &str,
) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let msg = e.inner().to_string();
        // serde names an unknown or a missing field only in its message.
        let named = |p: &str| msg.strip_prefix(p).and_then(|r| r.split('`').next());
        let unknown = named("unknown field `");
        let missing = named("missing field `");
        // The path names the object that holds the field ("." at the top), and for an
        // unknown field below the top the field itself.
        let path = e.path().to_string();
        let mut field = join(prefix.trim_end_matches('.'), path.trim_start_matches('.'));
        if let Some(name) = unknown.or(missing) {
            let last = field.rsplit(['.', ']']).next().unwrap_or_default();
            if missing.is_some() || last != name {
                field = join(&field, name);
            }
        }
        let code = if unknown.is_some() {
            "unknown_field"
        } else {
            "invalid_field"
        };
        ApiError::Invalid {
            code,
            message: msg,
            field: (!field.is_empty()).then_some(field),
        }
    })
}

/// `a.b`, `a[0]`, or either one alone when the other is empty.
fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ if b.starts_with('[') => format!("{a}{b}"),
        _ => format!("{a}.{b}"),
    }
}

/// A JSON body parsed into `T`, errors naming the field.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    parse_value(json_body(body)?, "")
}

pub(crate) fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::Invalid {
        code: "invalid_json",
        message: format!("request body is not valid JSON: {e}"),
        field: None,
    })
}

/// `v` as a JSON value: object keys in alphabetical order, as list responses have
/// always been written.
pub(crate) fn keys_sorted<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub(crate) fn to_json<T: Serialize>(v: &T) -> Result<String, ApiError> {
    serde_json::to_string(v)
        .map_err(|e| ApiError::Internal(hermod_core::ports::PortError::Backend(Box::new(e))))
}

/// Why a URL that points inside the operator's network is refused.
pub(crate) const INTERNAL_URL: &str = "must not point at a loopback, private, link-local or other \
     internal address (an operator can allow ranges with [webhooks] allow_private)";

/// A fallback spec; errors name the field (`fallback.after`).
pub(crate) fn parse_fallback(
    v: serde_json::Value,
    field: &str,
) -> Result<hermod_core::plan::FallbackSpec, ApiError> {
    let spec: hermod_core::plan::FallbackSpec = parse_value(v, &format!("{field}."))?;
    spec.validate()
        .map_err(|(name, msg)| ApiError::field(format!("{field}.{name}"), msg))?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Window {
        start: String,
        end: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        window: Option<Window>,
        list: Option<Vec<Window>>,
    }

    fn field_of<T: serde::de::DeserializeOwned + std::fmt::Debug>(
        v: serde_json::Value,
        prefix: &str,
    ) -> (String, String) {
        match parse_value::<T>(v, prefix) {
            Err(ApiError::Invalid { code, field, .. }) => {
                (code.to_owned(), field.unwrap_or_else(|| "<none>".into()))
            }
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn error_fields_are_whole_paths() {
        use serde_json::json;
        let cases = [
            (json!({}), "", "invalid_field", "name"),
            (json!({"name": 1}), "", "invalid_field", "name"),
            (json!({"name": "a", "x": 1}), "", "unknown_field", "x"),
            (
                json!({"name": "a", "window": {"start": "1"}}),
                "",
                "invalid_field",
                "window.end",
            ),
            (
                json!({"name": "a", "window": {"start": "1", "end": "2", "y": 0}}),
                "",
                "unknown_field",
                "window.y",
            ),
            (
                json!({"name": "a", "list": [{"start": "1", "end": "2"}, {"end": "2"}]}),
                "",
                "invalid_field",
                "list[1].start",
            ),
            (
                json!({"name": "a", "window": 5}),
                "",
                "invalid_field",
                "window",
            ),
        ];
        for (v, prefix, code, want) in cases {
            assert_eq!(
                field_of::<Outer>(v.clone(), prefix),
                (code.to_owned(), want.to_owned()),
                "{v}"
            );
        }
        // Under a prefix: a nested object (`quiet_hours.`) or a batch item (`messages[3].`).
        let nested = [
            (
                json!({"start": "1"}),
                "quiet_hours.",
                "invalid_field",
                "quiet_hours.end",
            ),
            (
                json!({"start": "1", "end": "2", "z": 1}),
                "quiet_hours.",
                "unknown_field",
                "quiet_hours.z",
            ),
            (json!(7), "quiet_hours.", "invalid_field", "quiet_hours"),
            (
                json!({"end": "2"}),
                "messages[3].",
                "invalid_field",
                "messages[3].start",
            ),
        ];
        for (v, prefix, code, want) in nested {
            assert_eq!(
                field_of::<Window>(v.clone(), prefix),
                (code.to_owned(), want.to_owned()),
                "{v} under {prefix}"
            );
        }
    }
}
