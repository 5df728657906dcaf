//! Which HERMOD_* variables are settings (the others are not ours: Kubernetes sets
//! HERMOD_SERVICE_HOST for a service named hermod), near misses warned about, and a bad
//! setting explained in one line that names it and where it came from.

#[allow(unused_imports)]
use super::*;

/// The variables (of `vars`) that name settings, each with its dotted key, and a
/// warning for each one that only looks like one.
pub fn env_settings(vars: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let known = crate::config_doc::env_keys(&super::schema());
    let env_of = |key: &str| format!("HERMOD_{}", key.replace('.', "__").to_ascii_uppercase());
    let mut read = Vec::new();
    let mut warnings = Vec::new();
    for var in vars {
        let Some(rest) = var.strip_prefix("HERMOD_") else {
            continue;
        };
        let lower = rest.to_ascii_lowercase();
        let key = match lower.as_str() {
            "smpp_url" => "smpp.url".to_owned(),
            other => other.replace("__", "."),
        };
        if known.contains(&key) {
            read.push((var.clone(), key));
            continue;
        }
        if NOT_SETTINGS.contains(&var.as_str()) {
            continue;
        }
        let squash = |s: &str| s.replace(['_', '.'], "").to_ascii_lowercase();
        if let Some(near) = known
            .iter()
            .find(|k| squash(k) == squash(&lower) || edit_distance(&env_of(k), var) <= 2)
        {
            warnings.push(format!(
                "ignoring {var}: not a setting; did you mean {}?",
                env_of(near)
            ));
        }
    }
    (read, warnings)
}

/// `HERMOD_*` variables that commands read and that are not settings.
pub(super) const NOT_SETTINGS: &[&str] = &[
    "HERMOD_LOG",
    "HERMOD_CONFIG",
    "HERMOD_URL",
    "HERMOD_API_KEY",
    "HERMOD_SMSC_ADMIN",
    "HERMOD_RBM_SIM",
];

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A configuration error in one line per bad setting, naming it and where it came
/// from (the variable or the file).
pub(super) fn explain(
    e: figment::Error,
    file: Option<&Path>,
    var_of: &HashMap<&str, &str>,
) -> String {
    let mut lines = Vec::new();
    for e in e {
        let mut path = e.path.clone();
        let what = match &e.kind {
            figment::error::Kind::UnknownField(found, expected) => {
                if path.last() != Some(found) {
                    path.push(found.clone());
                }
                let expected: Vec<String> = expected.iter().map(|k| format!("`{k}`")).collect();
                format!("unknown key (expected one of {})", expected.join(", "))
            }
            other => other.to_string(),
        };
        let key = path.join(".");
        let from_env = e
            .metadata
            .as_ref()
            .is_some_and(|m| m.name.contains("environment"));
        let source = if from_env {
            match var_of
                .get(key.as_str())
                .or_else(|| var_of.get(e.path.join(".").as_str()))
            {
                Some(var) => format!("environment variable {var}"),
                None => "environment".to_owned(),
            }
        } else {
            match (e.metadata.as_ref().and_then(|m| m.source.as_ref()), file) {
                (Some(figment::Source::File(p)), _) => p.display().to_string(),
                (_, Some(p)) => p.display().to_string(),
                _ => "defaults".to_owned(),
            }
        };
        lines.push(format!("setting {key} ({source}): {what}"));
    }
    lines.join("\n")
}
