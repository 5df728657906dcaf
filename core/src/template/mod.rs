//! Message templates: per-locale variants of text and rich content, rendered with
//! MiniJinja (`{{ order.id }}`, `{{ order.total | amount("EUR") }}`,
//! `{{ order.placed_at | date("long") }}`).
//!
//! - A variable's value is inserted as it is: it is never evaluated as a template,
//!   and in rich content every string is rendered on its own, so a quote or a brace in
//!   a value cannot change the message's structure. `{% raw %}{{{% endraw %}` writes
//!   literal braces; `| urlencode` escapes a value inside a URL.
//! - Creation checks the syntax of every string, that each variable used is declared
//!   (when `variables` is given; otherwise the used ones become the declared ones),
//!   that each filter exists, and RBM's limits on the rich content with the variables
//!   left empty. Rendering checks every declared variable is given, and the limits
//!   again with the real values.

mod render;
#[allow(unused_imports)]
pub use render::*;

mod engine;
#[allow(unused_imports)]
pub use engine::*;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, Error as MjError, ErrorKind, State, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::content::{Content, RichMessage, Suggestion};

/// One locale's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The text (SMS, and the plain form of rich content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Rich content as in `POST /v1/messages`; every string in it is a template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestions: Option<Vec<serde_json::Value>>,
}

/// A stored template.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub id: String,
    /// The variant used when a message asks for a locale the template lacks.
    pub default_locale: String,
    /// Dotted names of the variables (`order.id`); each must be given when rendering.
    pub variables: Vec<String>,
    pub variants: BTreeMap<String, Variant>,
    /// What messages sent with it are for (their default `traffic_type`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_type: Option<crate::model::TrafficType>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
}

/// A problem with a template or its variables; `field` names where (`variants.de.text`,
/// `vars.order.id`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TemplateError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> TemplateError {
    TemplateError {
        field: field.into(),
        message: message.into(),
    }
}

/// A rendered variant.
#[derive(Clone, Debug, PartialEq)]
pub struct Rendered {
    pub locale: String,
    pub text: String,
    pub content: Option<RichMessage>,
}

/// What `POST /v1/templates` takes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub id: String,
    pub default_locale: Option<String>,
    pub variables: Option<Vec<String>>,
    pub variants: BTreeMap<String, Variant>,
    #[serde(default)]
    pub traffic_type: Option<crate::model::TrafficType>,
}

/// Steps one string of a template may take to render: plenty for a message (a loop
/// over a few hundred items), nothing like a loop of 10⁵ × 10⁵.
pub const FUEL: u64 = 50_000;
/// Bytes of one string's source.
pub const MAX_SOURCE: usize = 8 * 1024;
/// Bytes one string may render to (a message is at most 1,600 characters).
pub const MAX_OUTPUT: usize = 16 * 1024;

/// What an absent variable prints as when a template is checked at creation.
const PLACEHOLDER: &str = "x";

/// Context keys the filters read (the variant's locale, the recipient's time zone).
const LOCALE_KEY: &str = "__locale";
const TZ_KEY: &str = "__tz";

fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// `en`, `de-DE`, `pt-BR`, `zh-Hant-TW`.
pub fn valid_locale(l: &str) -> bool {
    let mut parts = l.split('-');
    let lang = parts.next().unwrap_or_default();
    (2..=3).contains(&lang.len())
        && lang.bytes().all(|b| b.is_ascii_lowercase())
        && parts.all(|p| (2..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Every template string of a variant with its field name.
fn strings(locale: &str, v: &Variant) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let base = format!("variants.{locale}");
    if let Some(t) = &v.text {
        out.push((format!("{base}.text"), t.clone()));
    }
    if let Some(c) = &v.content {
        leaves(c, &format!("{base}.content"), &mut out);
    }
    for (i, s) in v.suggestions.iter().flatten().enumerate() {
        leaves(s, &format!("{base}.suggestions[{i}]"), &mut out);
    }
    out
}

fn leaves(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((path.to_owned(), s.clone())),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, &format!("{path}[{i}]"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                leaves(x, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// Whether `used` (`order.id`) is covered by a declared name (`order.id`, `order`).
fn declared(used: &str, names: &[String]) -> bool {
    names.iter().any(|d| {
        used == d
            || used
                .strip_prefix(d.as_str())
                .is_some_and(|r| r.starts_with('.'))
            || d.strip_prefix(used).is_some_and(|r| r.starts_with('.'))
    })
}

impl TemplateSpec {
    /// Checks the template and resolves its declared variables.
    pub fn validate(self, now: i64) -> Result<Template, TemplateError> {
        if !valid_id(&self.id) {
            return Err(err(
                "id",
                "id must be 1 to 64 letters, digits, '_', '-' or '.'",
            ));
        }
        if self.variants.is_empty() {
            return Err(err("variants", "variants must name at least one locale"));
        }
        for (locale, v) in &self.variants {
            if !valid_locale(locale) {
                return Err(err(
                    format!("variants.{locale}"),
                    format!("'{locale}' is not a locale (e.g. en, de-DE)"),
                ));
            }
            if v.text.is_none() && v.content.is_none() {
                return Err(err(
                    format!("variants.{locale}"),
                    "a variant needs text or content",
                ));
            }
        }
        let default_locale = match self.default_locale {
            Some(l) if self.variants.contains_key(&l) => l,
            Some(l) => {
                return Err(err(
                    "default_locale",
                    format!("default_locale '{l}' has no variant"),
                ));
            }
            None if self.variants.len() == 1 => {
                self.variants.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(err(
                    "default_locale",
                    "default_locale is required with more than one variant",
                ));
            }
        };
        if let Some(names) = &self.variables {
            for (i, n) in names.iter().enumerate() {
                let ok = !n.is_empty()
                    && n.split('.').all(|p| {
                        !p.is_empty()
                            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                            && !p.starts_with("__")
                    });
                if !ok {
                    return Err(err(
                        format!("variables[{i}]"),
                        format!("'{n}' is not a variable name (letters, digits, '_', dots)"),
                    ));
                }
            }
        }
        let mut used = BTreeSet::new();
        for (locale, v) in &self.variants {
            for (field, src) in strings(locale, v) {
                if src.len() > MAX_SOURCE {
                    return Err(err(
                        &field,
                        format!("must be at most {MAX_SOURCE} bytes of template source"),
                    ));
                }
                check_language(&src).map_err(|m| err(&field, m))?;
                let t = LENIENT
                    .template_from_str(&src)
                    .map_err(|e| err(&field, mj_message(&e)))?;
                let vars = t.undeclared_variables(true);
                for var in vars {
                    if LENIENT
                        .globals()
                        .any(|(g, _)| g == var.split('.').next().unwrap_or_default())
                    {
                        continue;
                    }
                    if let Some(names) = &self.variables
                        && !declared(&var, names)
                    {
                        return Err(err(
                            &field,
                            format!("unknown variable '{var}' (declared: {})", names.join(", ")),
                        ));
                    }
                    used.insert(var);
                }
                // Unknown filters and bad filter arguments show when run.
                let ctx = context(&serde_json::json!({}), locale, None);
                render_capped(&LENIENT, &src, ctx).map_err(|m| err(&field, m))?;
            }
        }
        let variables = self.variables.unwrap_or_else(|| used.into_iter().collect());
        let tpl = Template {
            id: self.id,
            default_locale,
            variables,
            variants: self.variants,
            traffic_type: self.traffic_type,
            created_at: now,
            updated_at: now,
        };
        // RBM's limits, with a placeholder for every variable. A failure that a value
        // could cure (an empty title, a URL or a time that is all variable) waits for
        // the real values; a literal that breaks a rule, a length over a limit even
        // so, or too many suggestions fails now.
        for (locale, v) in &tpl.variants {
            let sources: BTreeMap<String, String> = strings(locale, v).into_iter().collect();
            if let Err(e) = tpl.render_with(locale, &serde_json::json!({}), None, &LENIENT) {
                let templated = sources
                    .get(&e.field)
                    .is_some_and(|s| s.contains("{{") || s.contains("{%"));
                let certain = e.message.contains("must be at most")
                    || e.message.contains("suggestions are allowed");
                if !templated || certain {
                    return Err(e);
                }
            }
        }
        Ok(tpl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Result<Template, TemplateError> {
        serde_json::from_value::<TemplateSpec>(v)
            .unwrap()
            .validate(0)
    }

    fn order() -> Template {
        spec(serde_json::json!({
            "id": "order_shipped",
            "default_locale": "en",
            "variants": {
                "en": {"text": "Order {{ order.id }} shipped: {{ order.total | amount(order.currency) }}, arrives {{ order.eta | date(\"long\") }}."},
                "de": {"text": "Bestellung {{ order.id }} versandt: {{ order.total | amount(order.currency) }}, Ankunft {{ order.eta | date(\"%d.%m.%Y\") }}."},
                "fr": {"content": {"card": {"title": "Commande {{ order.id }}", "description": "Total {{ order.total | amount(order.currency) }}"}},
                       "suggestions": [{"open_url": {"text": "Suivre", "url": "https://shop.example/t/{{ order.id | urlencode }}"}}]}
            }
        }))
        .unwrap()
    }

    #[test]
    fn renders_per_locale_with_filters() {
        let t = order();
        assert_eq!(
            t.variables,
            vec!["order.currency", "order.eta", "order.id", "order.total"]
        );
        let vars = serde_json::json!({"order": {"id": "A-17", "total": 1234.5, "currency": "EUR", "eta": "2026-11-24"}});
        let en = t.render(Some("en-GB"), &vars, None).unwrap();
        assert_eq!(en.locale, "en");
        assert_eq!(
            en.text,
            "Order A-17 shipped: €1,234.50, arrives 24 November 2026."
        );
        let de = t.render(Some("de-AT"), &vars, None).unwrap();
        assert_eq!(
            de.text,
            "Bestellung A-17 versandt: 1.234,50 €, Ankunft 24.11.2026."
        );
        let fr = t.render(Some("fr"), &vars, None).unwrap();
        let rich = fr.content.unwrap();
        assert_eq!(fr.text, rich.plain_text());
        let json = serde_json::to_value(&rich.content).unwrap();
        assert_eq!(json["card"]["title"], "Commande A-17");
        assert_eq!(json["card"]["description"], "Total 1 234,50 €");
        // No such locale: the default.
        assert_eq!(t.render(Some("ja"), &vars, None).unwrap().locale, "en");
    }

    #[test]
    fn errors_name_the_variable() {
        let t = order();
        let e = t
            .render(
                Some("en"),
                &serde_json::json!({"order": {"id": "1", "total": 2, "currency": "EUR"}}),
                None,
            )
            .unwrap_err();
        assert_eq!(e.field, "vars.order.eta");
        assert!(e.message.contains("order.eta"), "{e}");
        let e = t.render(None, &serde_json::json!([1]), None).unwrap_err();
        assert_eq!(e.field, "vars");
        // Unknown variable at creation.
        let e = spec(serde_json::json!({"id": "x", "variables": ["order.id"],
            "variants": {"en": {"text": "{{ order.id }} {{ order.idd }}"}}}))
        .unwrap_err();
        assert_eq!(e.field, "variants.en.text");
        assert!(e.message.contains("unknown variable 'order.idd'"), "{e}");
        // Syntax, unknown filter, bad locale, missing default.
        let e = spec(serde_json::json!({"id": "x", "variants": {"en": {"text": "{{ order.id "}}}))
            .unwrap_err();
        assert_eq!(e.field, "variants.en.text");
        let e =
            spec(serde_json::json!({"id": "x", "variants": {"en": {"text": "{{ a | nope }}"}}}))
                .unwrap_err();
        assert!(e.message.contains("unknown filter"), "{e}");
        let e =
            spec(serde_json::json!({"id": "x", "variants": {"EN_us": {"text": "a"}}})).unwrap_err();
        assert_eq!(e.field, "variants.EN_us");
        let e = spec(
            serde_json::json!({"id": "x", "variants": {"en": {"text": "a"}, "de": {"text": "b"}}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "default_locale");
    }

    #[test]
    fn runaway_templates_are_refused_naming_the_field() {
        let one = |text: &str| {
            spec(serde_json::json!({"id": "t", "variants": {"en": {"text": text}}}))
                .map(|_| ())
                .unwrap_err()
        };
        let e =
            one("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}");
        assert_eq!(e.field, "variants.en.text");
        assert!(e.message.contains("steps"), "{}", e.message);
        let e = one("{% for i in range(100) %}{{ 'x' * 100000000 }}{% endfor %}");
        assert_eq!(e.field, "variants.en.text");
        assert!(e.message.contains("operator"), "{}", e.message);
        // Values that double: by concatenation, in a namespace, in `set`s or nested
        // loops, through macros. Each is refused before it runs.
        for src in [
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "{% set s = 'x' %}{% set s = s + s %}{{ s }}",
            "{%- set s = 'x' -%}{{ s }}",
            "{% for a in ['x'] %}{% for b in [a ~ a] %}{{ b }}{% endfor %}{% endfor %}",
            "{% with a = 'x' %}{{ a }}{% endwith %}",
            "{% macro d(s) %}{{ s }}{% endmacro %}{{ d('x') }}",
            "{{ 2 ** 64 }}",
        ] {
            let e = one(src);
            assert_eq!(e.field, "variants.en.text", "{src}");
            assert!(
                e.message.contains("templates do not have"),
                "{src}: {}",
                e.message
            );
        }
        // What can still grow is capped before it is built.
        for src in [
            "{{ range(100000) | join('xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx') }}",
            "{{ 'xxxxxxxxxx' | replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy' | replace('y', 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz')) }}",
            "{{ 'x' | indent(1000000000) }}",
        ] {
            let e = one(src);
            assert_eq!(e.field, "variants.en.text", "{src}");
        }
        let e = one(&"x".repeat(MAX_SOURCE + 1));
        assert!(e.message.contains("template source"), "{}", e.message);
        // At render time too, with variables that make it large.
        let t = spec(
            serde_json::json!({"id": "t", "variants": {"en": {"text": "{{ s }}{{ s }}{{ s }}"}}}),
        )
        .unwrap();
        let e = t
            .render(
                None,
                &serde_json::json!({"s": "x".repeat(MAX_OUTPUT / 2)}),
                None,
            )
            .unwrap_err();
        assert_eq!(e.field, "variants.en.text");
        assert!(e.message.contains("renders to more than"), "{}", e.message);
        let small = t
            .render(None, &serde_json::json!({"s": "ab"}), None)
            .unwrap();
        assert_eq!(small.text, "ababab");
    }

    #[test]
    fn rbm_limits_checked_at_creation_and_render() {
        // A card title over 200 characters even with variables empty.
        let long = "x".repeat(201);
        let e = spec(serde_json::json!({"id": "x", "variants": {"en": {"content": {"card": {"title": format!("{long}{{{{ a }}}}")}}}}}))
            .unwrap_err();
        assert_eq!(e.field, "variants.en.content.card.title", "{e}");
        // Five suggestions on a card, over RBM's four... or a suggestion text over 25.
        let e = spec(
            serde_json::json!({"id": "x", "variants": {"en": {"text": "hi",
            "suggestions": [{"reply": {"text": "this reply text is far too long for RBM"}}]}}}),
        )
        .unwrap_err();
        assert!(e.field.contains("suggestions"), "{e}");
        // Within limits at creation, over them once rendered.
        let t = spec(serde_json::json!({"id": "x", "variants": {"en": {"content": {"card": {"title": "{{ name }}"}}}}})).unwrap();
        let e = t
            .render(None, &serde_json::json!({"name": "y".repeat(250)}), None)
            .unwrap_err();
        assert!(e.field.contains("title"), "{e}");
    }

    #[test]
    fn values_are_not_templates_and_cannot_break_json() {
        let t = spec(serde_json::json!({"id": "x", "variants": {"en": {
            "text": "{% raw %}{{literal}}{% endraw %} {{ v }}",
            "content": {"card": {"title": "{{ v }}"}}}}}))
        .unwrap();
        let r = t
            .render(
                None,
                &serde_json::json!({"v": "{{ secret }}\", \"x\": \"}"}),
                None,
            )
            .unwrap();
        assert_eq!(r.text, "{{literal}} {{ secret }}\", \"x\": \"}");
        let json = serde_json::to_value(&r.content.unwrap().content).unwrap();
        assert_eq!(json["card"]["title"], "{{ secret }}\", \"x\": \"}");
    }

    #[test]
    fn dates_in_the_recipients_zone() {
        let t = spec(serde_json::json!({"id": "x", "variants": {"en": {"text": "{{ at | date(\"datetime\") }} / {{ at | date(\"time\", tz=\"America/New_York\") }} / {{ secs | date }}"}}})).unwrap();
        let r = t
            .render(
                None,
                &serde_json::json!({"at": "2026-07-01T12:00:00Z", "secs": 0}),
                Some("Europe/Berlin"),
            )
            .unwrap();
        assert_eq!(r.text, "2026-07-01 14:00 / 08:00 / 1 Jan 1970");
        let e = t
            .render(None, &serde_json::json!({"at": "soon", "secs": 0}), None)
            .unwrap_err();
        assert!(e.message.contains("'soon'"), "{e}");
    }

    #[test]
    fn amounts() {
        assert_eq!(format_amount(1234.5, Some("USD"), None, "en"), "$1,234.50");
        assert_eq!(format_amount(-3.0, Some("GBP"), None, "en-GB"), "-£3.00");
        assert_eq!(
            format_amount(1_000_000.0, Some("JPY"), None, "ja"),
            "¥1,000,000"
        );
        assert_eq!(format_amount(1234.5, Some("EUR"), None, "de"), "1.234,50 €");
        assert_eq!(
            format_amount(1234.5, Some("CHF"), None, "en"),
            "1,234.50 CHF"
        );
        assert_eq!(format_amount(0.004, None, None, "en"), "0.00");
        assert_eq!(format_amount(12.3456, None, Some(3), "en"), "12.346");
    }

    #[test]
    fn sms_encoding_and_segments() {
        assert_eq!(
            sms_info("Hello"),
            SmsInfo {
                encoding: "GSM-7",
                segments: 1,
                characters: 5
            }
        );
        assert_eq!(sms_info(&"a".repeat(161)).segments, 2);
        // € takes two septets (an escape): 81 of them need two parts.
        assert_eq!(sms_info(&"€".repeat(81)).segments, 2);
        let u = sms_info("Grüße 👋");
        assert_eq!(u.encoding, "UCS-2");
        assert_eq!(u.segments, 1);
    }
}
