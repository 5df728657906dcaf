//! Rendering a stored template: the variables as the engine's context, the variant
//! for a locale, JSON content rendered leaf by leaf, and the SMS the text makes.

#[allow(unused_imports)]
use super::*;

pub(super) fn context(vars: &serde_json::Value, locale: &str, tz: Option<&str>) -> Value {
    let mut map = match vars {
        serde_json::Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    map.insert(LOCALE_KEY.into(), locale.into());
    if let Some(tz) = tz {
        map.insert(TZ_KEY.into(), tz.into());
    }
    Value::from(minijinja::value::Serde(map))
}

/// Looks a dotted name up in the variables.
pub(super) fn lookup<'a>(vars: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    name.split('.').try_fold(vars, |v, k| v.get(k))
}

impl Template {
    /// The locale to use for `wanted`: itself, its language (`de` for `de-AT`), another
    /// variant of that language, else the default.
    pub fn pick_locale(&self, wanted: Option<&str>) -> &str {
        if let Some(w) = wanted {
            if let Some((k, _)) = self.variants.get_key_value(w) {
                return k;
            }
            let lang = w.split('-').next().unwrap_or(w);
            if let Some((k, _)) = self.variants.get_key_value(lang) {
                return k;
            }
            if let Some(k) = self
                .variants
                .keys()
                .find(|k| k.split('-').next() == Some(lang))
            {
                return k;
            }
        }
        &self.default_locale
    }

    /// Renders the variant for `locale` with `vars`; `tz` is the recipient's time zone
    /// (the `date` filter's default). Errors name the field (`vars.order.id`).
    pub fn render(
        &self,
        locale: Option<&str>,
        vars: &serde_json::Value,
        tz: Option<&str>,
    ) -> Result<Rendered, TemplateError> {
        if !vars.is_object() {
            return Err(err("vars", "vars must be a JSON object"));
        }
        for name in &self.variables {
            if lookup(vars, name).is_none_or(|v| v.is_null()) {
                return Err(err(
                    format!("vars.{name}"),
                    format!("variable '{name}' is missing"),
                ));
            }
        }
        let locale = self.pick_locale(locale).to_owned();
        self.render_with(&locale, vars, tz, &STRICT)
    }

    pub(super) fn render_with(
        &self,
        locale: &str,
        vars: &serde_json::Value,
        tz: Option<&str>,
        env: &Environment<'static>,
    ) -> Result<Rendered, TemplateError> {
        let Some(v) = self.variants.get(locale) else {
            return Err(err(
                "locale",
                format!("the template has no variant '{locale}'"),
            ));
        };
        let ctx = context(vars, locale, tz);
        let base = format!("variants.{locale}");
        let one = |field: &str, src: &str| -> Result<String, TemplateError> {
            render_capped(env, src, ctx.clone()).map_err(|m| err(field, m))
        };
        let text = match &v.text {
            Some(t) => Some(one(&format!("{base}.text"), t)?),
            None => None,
        };
        let content = match &v.content {
            Some(c) => Some(render_json(c, &format!("{base}.content"), &one)?),
            None => None,
        };
        let mut suggestions = Vec::new();
        for (i, s) in v.suggestions.iter().flatten().enumerate() {
            let field = format!("{base}.suggestions[{i}]");
            let r = render_json(s, &field, &one)?;
            suggestions.push(
                serde_json::from_value::<Suggestion>(r).map_err(|e| err(&field, e.to_string()))?,
            );
        }
        let rich = match (content, &text) {
            (Some(c), _) => Some(
                serde_json::from_value::<Content>(c)
                    .map_err(|e| err(format!("{base}.content"), e.to_string()))?,
            ),
            (None, Some(t)) if !suggestions.is_empty() => Some(Content::Text(t.clone())),
            _ => None,
        }
        .map(|content| RichMessage {
            content,
            suggestions,
        });
        if let Some(r) = &rich {
            r.validate().map_err(|e| {
                err(
                    format!("{base}.{}", e.field),
                    format!("{} {}", e.field, e.message),
                )
            })?;
        }
        let text = match (text, &rich) {
            (Some(t), _) => t,
            (None, Some(r)) => r.plain_text().chars().take(1600).collect(),
            (None, None) => String::new(),
        };
        if text.chars().count() > 1600 {
            return Err(err(
                format!("{base}.text"),
                "the rendered text is longer than 1600 characters",
            ));
        }
        Ok(Rendered {
            locale: locale.to_owned(),
            text,
            content: rich,
        })
    }
}

pub(super) fn render_json(
    v: &serde_json::Value,
    path: &str,
    one: &dyn Fn(&str, &str) -> Result<String, TemplateError>,
) -> Result<serde_json::Value, TemplateError> {
    Ok(match v {
        serde_json::Value::String(s) => serde_json::Value::String(one(path, s)?),
        serde_json::Value::Array(a) => serde_json::Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| render_json(x, &format!("{path}[{i}]"), one))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), render_json(x, &format!("{path}.{k}"), one)?)))
                .collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

/// How a text goes out as SMS: `GSM-7` or `UCS-2`, and in how many parts.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SmsInfo {
    pub encoding: &'static str,
    pub segments: usize,
    pub characters: usize,
}

pub fn sms_info(text: &str) -> SmsInfo {
    let seg = crate::gsm::segment(text);
    SmsInfo {
        encoding: match seg.coding {
            crate::gsm::Coding::Gsm7 => "GSM-7",
            crate::gsm::Coding::Latin1 => "Latin-1",
            crate::gsm::Coding::Ucs2 => "UCS-2",
        },
        segments: seg.parts.len(),
        characters: text.chars().count(),
    }
}
