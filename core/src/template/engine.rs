//! The template engine: minijinja environments with fuel and output caps, the
//! constructs templates may not use, and the filters Hermod adds (date, amount, a
//! capped join and replace).

#[allow(unused_imports)]
use super::*;

pub(super) fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(FUEL));
    env.set_undefined_behavior(undefined);
    env.add_filter("date", date);
    env.add_filter("amount", amount);
    // What could build a value far larger than its inputs is gone or capped: with no
    // `+ ~ * **` and no `set`/`with`/macros (see `check_language`), every value is at
    // most the size of the variables, the source, or MAX_OUTPUT.
    for f in ["indent", "format", "pprint", "batch", "tojson"] {
        env.remove_filter(f);
    }
    for g in ["namespace", "debug", "dict"] {
        env.remove_global(g);
    }
    env.add_filter("join", capped_join);
    env.add_filter("replace", capped_replace);
    env
}

/// Operators that concatenate or repeat (strings and lists), refused in templates.
pub(super) const FORBIDDEN_OPERATORS: &str = "+ ~ * **";
/// Tags that bind or reuse values (a value doubled in each of 40 `set`s is a terabyte).
pub(super) const FORBIDDEN_TAGS: [&str; 11] = [
    "set", "with", "macro", "call", "import", "include", "from", "extends", "block", "filter", "do",
];

/// Refuses the constructs that could grow a value without bound in a few steps.
/// Message templates format variables: arithmetic and joining belong in the variables.
pub(super) fn check_language(src: &str) -> Result<(), String> {
    use minijinja::machinery::{Token, tokenize};
    let mut after_block_start = false;
    for t in tokenize(src, false, minijinja::syntax::SyntaxConfig::default()) {
        // A syntax error is reported by the compiler, with its position.
        let Ok((t, _)) = t else { return Ok(()) };
        match t {
            Token::Plus | Token::Tilde | Token::Mul | Token::Pow => {
                return Err(format!(
                    "uses an operator templates do not have ({FORBIDDEN_OPERATORS}): put the \
                     computed value in the variables"
                ));
            }
            Token::Ident(tag) if after_block_start && FORBIDDEN_TAGS.contains(&tag) => {
                return Err(format!(
                    "uses {{% {tag} %}}, which templates do not have (only if, for and raw)"
                ));
            }
            _ => {}
        }
        after_block_start = matches!(t, Token::BlockStart);
    }
    Ok(())
}

/// `join`, refusing results over MAX_OUTPUT before building them.
pub(super) fn capped_join(v: minijinja::Value, sep: Option<String>) -> Result<String, MjError> {
    let sep = sep.unwrap_or_default();
    let mut out = String::new();
    let iter = v.try_iter()?;
    for (i, item) in iter.enumerate() {
        if i > 0 {
            out.push_str(&sep);
        }
        match item.as_str() {
            Some(s) => out.push_str(s),
            None => out.push_str(&item.to_string()),
        }
        if out.len() > MAX_OUTPUT {
            return Err(MjError::new(
                ErrorKind::InvalidOperation,
                format!("join: the result is over {MAX_OUTPUT} bytes"),
            ));
        }
    }
    Ok(out)
}

/// `replace`, refusing results over MAX_OUTPUT before building them.
pub(super) fn capped_replace(
    s: String,
    from: String,
    to: String,
    count: Option<usize>,
) -> Result<String, MjError> {
    let hits = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from.as_str()).count()
    };
    let hits = count.map_or(hits, |c| c.min(hits));
    let len = s.len() - hits * from.len() + hits.saturating_mul(to.len());
    if len > MAX_OUTPUT.max(s.len()) {
        return Err(MjError::new(
            ErrorKind::InvalidOperation,
            format!("replace: the result is over {MAX_OUTPUT} bytes"),
        ));
    }
    Ok(match count {
        Some(c) => s.replacen(from.as_str(), &to, c),
        None => s.replace(from.as_str(), &to),
    })
}

/// Rendering: a variable that is not there is an error.
pub(super) static STRICT: LazyLock<Environment<'static>> =
    LazyLock::new(|| environment(UndefinedBehavior::Strict));
/// Checking at creation: variables are absent and print as a placeholder.
pub(super) static LENIENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = environment(UndefinedBehavior::Chainable);
    env.set_formatter(|out, state, value| {
        if value.is_undefined() {
            out.write_str(PLACEHOLDER).map_err(MjError::from)
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
});

/// Collects output up to [`MAX_OUTPUT`] bytes, then refuses more.
#[derive(Default)]
pub(super) struct Capped {
    buf: Vec<u8>,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > MAX_OUTPUT {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders one string within the fuel and output limits.
pub(super) fn render_capped(
    env: &Environment<'static>,
    src: &str,
    ctx: minijinja::Value,
) -> Result<String, String> {
    if src.len() > MAX_SOURCE {
        return Err(format!(
            "must be at most {MAX_SOURCE} bytes of template source"
        ));
    }
    check_language(src)?;
    let t = env.template_from_str(src).map_err(|e| mj_message(&e))?;
    let mut out = Capped::default();
    match t.render_captured_to(ctx, &mut out) {
        Ok(_) => String::from_utf8(out.buf).map_err(|e| e.to_string()),
        Err(_) if out.over => Err(format!("renders to more than {MAX_OUTPUT} bytes")),
        Err(e) if e.kind() == ErrorKind::OutOfFuel => Err(format!(
            "takes more than {FUEL} steps to render (a loop too large?)"
        )),
        Err(e) => Err(mj_message(&e)),
    }
}

pub(super) fn mj_message(e: &MjError) -> String {
    let mut m = e.to_string();
    if let Some(line) = e.line() {
        m = format!("{m} (line {line})");
    }
    m
}

pub(super) fn invalid(msg: impl Into<String>) -> MjError {
    MjError::new(ErrorKind::InvalidOperation, msg.into())
}

pub(super) fn state_str(state: &State, key: &str) -> Option<String> {
    state
        .lookup(key)
        .filter(|v| v.kind() == ValueKind::String)
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// `{{ t | date }}`, `{{ t | date("long") }}`, `{{ t | date("%d.%m.%Y %H:%M", tz="Europe/Berlin") }}`.
/// The value is an RFC 3339 time, a `YYYY-MM-DD` date or Unix seconds; it is shown in
/// `tz`, else the recipient's time zone, else UTC. Named formats: `short`
/// (2026-11-22), `medium` (22 Nov 2026), `long` (22 November 2026), `time` (14:05),
/// `datetime` (2026-11-22 14:05).
pub(super) fn date(
    state: &State,
    value: Value,
    format: Option<String>,
    kwargs: Kwargs,
) -> Result<String, MjError> {
    let tz_arg: Option<String> = kwargs.get("tz")?;
    kwargs.assert_all_used()?;
    if value.is_undefined() || value.is_none() {
        return Ok(PLACEHOLDER.into());
    }
    let tz_name = tz_arg.or_else(|| state_str(state, TZ_KEY));
    let tz = match &tz_name {
        Some(n) => {
            jiff::tz::TimeZone::get(n).map_err(|_| invalid(format!("unknown time zone '{n}'")))?
        }
        None => jiff::tz::TimeZone::UTC,
    };
    let zoned = if let Some(s) = value.as_str() {
        if let Ok(ts) = s.parse::<jiff::Timestamp>() {
            ts.to_zoned(tz)
        } else if let Ok(d) = s.parse::<jiff::civil::Date>() {
            d.to_zoned(tz).map_err(|e| invalid(e.to_string()))?
        } else {
            return Err(invalid(format!(
                "date: '{s}' is not an RFC 3339 time or a YYYY-MM-DD date"
            )));
        }
    } else if let Some(secs) = value.as_i64() {
        jiff::Timestamp::from_second(secs)
            .map_err(|e| invalid(e.to_string()))?
            .to_zoned(tz)
    } else {
        return Err(invalid("date: expects a time string or Unix seconds"));
    };
    let fmt = match format.as_deref() {
        None | Some("medium") => "%-d %b %Y",
        Some("short") => "%Y-%m-%d",
        Some("long") => "%-d %B %Y",
        Some("time") => "%H:%M",
        Some("datetime") => "%Y-%m-%d %H:%M",
        Some(f) => f,
    };
    jiff::fmt::strtime::format(fmt, &zoned).map_err(|e| invalid(format!("date: {e}")))
}

/// `{{ total | amount("EUR") }}`: a number (or numeric string) with the currency's
/// decimals and the locale's separators: `€1,234.50` in English, `1.234,50 €` in
/// German, `1 234,50 €` in French. `decimals=` overrides.
pub(super) fn amount(
    state: &State,
    value: Value,
    currency: Option<String>,
    kwargs: Kwargs,
) -> Result<String, MjError> {
    let decimals: Option<u32> = kwargs.get("decimals")?;
    kwargs.assert_all_used()?;
    if value.is_undefined() || value.is_none() {
        return Ok(PLACEHOLDER.into());
    }
    let n: f64 = if let Some(s) = value.as_str() {
        s.trim()
            .parse()
            .map_err(|_| invalid(format!("amount: '{s}' is not a number")))?
    } else {
        f64::try_from(value.clone()).map_err(|_| invalid("amount: expects a number"))?
    };
    let locale = state_str(state, LOCALE_KEY).unwrap_or_else(|| "en".into());
    Ok(format_amount(n, currency.as_deref(), decimals, &locale))
}

/// The number formatting `amount` uses.
pub fn format_amount(
    n: f64,
    currency: Option<&str>,
    decimals: Option<u32>,
    locale: &str,
) -> String {
    let cur = currency.map(|c| c.to_ascii_uppercase());
    let (symbol, default_dec) = match cur.as_deref() {
        Some("EUR") => ("€".to_owned(), 2),
        Some("USD") => ("$".to_owned(), 2),
        Some("GBP") => ("£".to_owned(), 2),
        Some("JPY") => ("¥".to_owned(), 0),
        Some("INR") => ("₹".to_owned(), 2),
        Some("KRW") => ("₩".to_owned(), 0),
        Some(c) => (c.to_owned(), 2),
        None => (String::new(), 2),
    };
    let dec = decimals.unwrap_or(default_dec).min(6) as usize;
    let lang = locale.split('-').next().unwrap_or("en");
    // (group, decimal, symbol after the number)
    let (group, point, after) = match lang {
        "de" | "es" | "it" | "nl" | "pt" | "da" | "id" | "tr" | "el" | "ro" | "hr" | "sl" => {
            (".", ",", true)
        }
        "fr" | "sv" | "nb" | "no" | "fi" | "pl" | "cs" | "sk" | "ru" | "uk" | "hu" | "et"
        | "lt" | "lv" | "bg" => (" ", ",", true),
        "de-CH" => ("'", ".", false),
        _ => (",", ".", false),
    };
    let fixed = format!("{:.*}", dec, n.abs());
    let (int, frac) = fixed.split_once('.').unwrap_or((&fixed, ""));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push_str(group);
        }
        grouped.push(ch);
    }
    let mut num = grouped;
    if !frac.is_empty() {
        num.push_str(point);
        num.push_str(frac);
    }
    let sign = if n < 0.0 && n.abs() >= 0.5 * 10f64.powi(-(dec as i32)) {
        "-"
    } else {
        ""
    };
    match (symbol.is_empty(), after, symbol.chars().count() > 1) {
        (true, _, _) => format!("{sign}{num}"),
        (false, true, _) | (false, false, true) => format!("{sign}{num} {symbol}"),
        (false, false, false) => format!("{sign}{symbol}{num}"),
    }
}
