//! Alert hooks: Prometheus Alertmanager webhooks (payload version 4) and plain JSON
//! from devices, turned into messages; repeats inside a window are sent once.

use serde::{Deserialize, Serialize};

use crate::model::ChannelKind;

/// A rotation: `numbers[k]` is on call during the k-th shift after `starts_at`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnCall {
    pub numbers: Vec<String>,
    /// Length of a shift in hours (default a week).
    #[serde(default = "week")]
    pub shift_hours: u32,
    /// When the first number's first shift began (Unix ms).
    #[serde(default)]
    pub starts_at: i64,
}

fn week() -> u32 {
    168
}

impl OnCall {
    /// Who is on call at `now` (Unix ms).
    pub fn current(&self, now: i64) -> Option<&str> {
        let n = i64::try_from(self.numbers.len()).ok().filter(|n| *n > 0)?;
        let shift = i64::from(self.shift_hours.max(1)) * 3_600_000;
        let k = (now - self.starts_at).div_euclid(shift).rem_euclid(n);
        self.numbers
            .get(usize::try_from(k).ok()?)
            .map(String::as_str)
    }
}

/// What a hook does with the alerts posted to it (stored sealed: it names people's
/// numbers).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HookConfig {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_call: Option<OnCall>,
    /// A template id; without one a default text names the alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<ChannelKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Alerts travel in the fast lane (and ignore quiet hours).
    pub fast_lane: bool,
    /// Send a message when an alert resolves.
    pub send_resolved: bool,
    /// A repeat of an alert (same fingerprint and status) within this many seconds
    /// of the last one sent is not sent again.
    pub dedupe_window_secs: i64,
}

impl HookConfig {
    /// The numbers an alert goes to now.
    pub fn targets(&self, now: i64) -> Vec<String> {
        let mut out = self.recipients.clone();
        if let Some(n) = self.on_call.as_ref().and_then(|o| o.current(now))
            && !out.iter().any(|r| r == n)
        {
            out.push(n.to_owned());
        }
        out
    }
}

/// A stored hook.
#[derive(Clone, Debug, PartialEq)]
pub struct Hook {
    pub id: String,
    pub tenant_id: crate::TenantId,
    pub config: HookConfig,
    pub created_at: i64,
}

/// One alert out of a posted payload.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertItem {
    pub fingerprint: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// What a template sees.
    pub vars: serde_json::Value,
    /// The message when the hook has no template.
    pub text: String,
}

/// Alertmanager's webhook body, version 4.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AmPayload {
    version: String,
    #[serde(default)]
    group_key: String,
    #[serde(default)]
    truncated_alerts: u64,
    #[serde(default)]
    status: String,
    #[serde(default)]
    receiver: String,
    #[serde(default)]
    group_labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    common_labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    common_annotations: serde_json::Map<String, serde_json::Value>,
    #[serde(default, rename = "externalURL")]
    external_url: String,
    alerts: Vec<AmAlert>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
struct AmAlert {
    status: String,
    #[serde(default)]
    labels: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    annotations: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    ends_at: String,
    #[serde(default, rename = "generatorURL")]
    generator_url: String,
    #[serde(default)]
    fingerprint: String,
}

fn s<'a>(m: &'a serde_json::Map<String, serde_json::Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(|v| v.as_str()).filter(|v| !v.is_empty())
}

fn status_of(v: &str) -> &'static str {
    match v.to_ascii_lowercase().as_str() {
        "resolved" | "ok" | "cleared" | "normal" => "resolved",
        _ => "firing",
    }
}

fn clip(text: String) -> String {
    if text.chars().count() <= 1600 {
        text
    } else {
        text.chars().take(1599).chain(['…']).collect()
    }
}

/// Whether the body is an Alertmanager webhook.
pub fn is_alertmanager(body: &serde_json::Value) -> bool {
    body.get("version").is_some() && body.get("alerts").is_some_and(|a| a.is_array())
}

/// The alerts of a posted body. Alertmanager payloads must be version 4; anything
/// else that is a JSON object is a device's alert. `hash` fingerprints a device alert
/// that names none (its whole body). Errors name the field.
pub fn parse(
    body: &serde_json::Value,
    hook_name: &str,
    hash: &dyn Fn(&[u8]) -> String,
) -> Result<Vec<AlertItem>, (String, String)> {
    if is_alertmanager(body) {
        let p: AmPayload = serde_json::from_value(body.clone())
            .map_err(|e| ("alerts".to_owned(), e.to_string()))?;
        if p.version != "4" {
            return Err((
                "version".into(),
                format!(
                    "Alertmanager payload version {} is not supported (4 is)",
                    p.version
                ),
            ));
        }
        let n = p.alerts.len();
        let mut out = Vec::with_capacity(n);
        for (i, a) in p.alerts.into_iter().enumerate() {
            let status = status_of(&a.status).to_owned();
            let fingerprint = if a.fingerprint.is_empty() {
                // Alertmanager always sends one; a hand-made payload may not.
                hash(
                    serde_json::Value::Object(a.labels.clone())
                        .to_string()
                        .as_bytes(),
                )
            } else {
                a.fingerprint.clone()
            };
            let name = s(&a.labels, "alertname").unwrap_or("alert");
            let mut text = format!("[{}] {name}", status.to_ascii_uppercase());
            if let Some(inst) = s(&a.labels, "instance") {
                text.push_str(&format!(" on {inst}"));
            }
            if let Some(sev) = s(&a.labels, "severity") {
                text.push_str(&format!(" ({sev})"));
            }
            if let Some(sum) = s(&a.annotations, "summary").or(s(&a.annotations, "description")) {
                text.push_str(&format!(": {sum}"));
            }
            if i + 1 == n && p.truncated_alerts > 0 {
                text.push_str(&format!(" (+{} more alerts not shown)", p.truncated_alerts));
            }
            let mut vars = serde_json::to_value(&a).unwrap_or_default();
            if let Some(o) = vars.as_object_mut() {
                o.insert("status".into(), status.clone().into());
                o.insert("fingerprint".into(), fingerprint.clone().into());
                o.insert("receiver".into(), p.receiver.clone().into());
                o.insert("groupKey".into(), p.group_key.clone().into());
                o.insert("groupStatus".into(), p.status.clone().into());
                o.insert("groupLabels".into(), p.group_labels.clone().into());
                o.insert("commonLabels".into(), p.common_labels.clone().into());
                o.insert(
                    "commonAnnotations".into(),
                    p.common_annotations.clone().into(),
                );
                o.insert("externalURL".into(), p.external_url.clone().into());
                o.insert("truncatedAlerts".into(), p.truncated_alerts.into());
            }
            out.push(AlertItem {
                fingerprint,
                status,
                vars,
                text: clip(text),
            });
        }
        return Ok(out);
    }
    let Some(obj) = body.as_object() else {
        return Err((
            "body".into(),
            "expected an Alertmanager payload or a JSON object".into(),
        ));
    };
    let status = status_of(s(obj, "status").unwrap_or("firing")).to_owned();
    let fingerprint = match ["fingerprint", "alert_id", "id"]
        .iter()
        .find_map(|k| obj.get(*k).filter(|v| !v.is_null()))
    {
        Some(serde_json::Value::String(v)) => v.clone(),
        Some(v) => v.to_string(),
        None => {
            // The body without its status: the firing and resolved forms match.
            let mut rest = obj.clone();
            rest.remove("status");
            hash(serde_json::Value::Object(rest).to_string().as_bytes())
        }
    };
    let who = s(obj, "device")
        .or(s(obj, "device_id"))
        .or(s(obj, "source"))
        .unwrap_or(hook_name);
    let what = s(obj, "message")
        .or(s(obj, "text"))
        .or(s(obj, "summary"))
        .or(s(obj, "alert"))
        .map(str::to_owned)
        .unwrap_or_else(|| {
            let mut c = body.to_string();
            if c.chars().count() > 300 {
                c = c.chars().take(299).chain(['…']).collect();
            }
            c
        });
    let mut vars = serde_json::Value::Object(obj.clone());
    if let Some(o) = vars.as_object_mut() {
        o.insert("status".into(), status.clone().into());
        o.insert("fingerprint".into(), fingerprint.clone().into());
        o.insert("payload".into(), body.clone());
    }
    Ok(vec![AlertItem {
        text: clip(format!("[{}] {who}: {what}", status.to_ascii_uppercase())),
        fingerprint,
        status,
        vars,
    }])
}

/// Whether an alert is sent, given the last one sent for its fingerprint
/// (`(status, at)`).
pub fn should_send(cfg: &HookConfig, status: &str, last: Option<(&str, i64)>, now: i64) -> bool {
    if status == "resolved" && !cfg.send_resolved {
        return false;
    }
    match last {
        Some((s, at)) => s != status || now - at >= cfg.dedupe_window_secs * 1000,
        // A resolution of an alert never sent as firing says nothing new.
        None => status == "firing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> HookConfig {
        HookConfig {
            name: "ops".into(),
            recipients: vec!["+447700900001".into()],
            on_call: None,
            template: None,
            locale: None,
            channels: None,
            from: None,
            fast_lane: true,
            send_resolved: true,
            dedupe_window_secs: 300,
        }
    }

    fn hash(b: &[u8]) -> String {
        format!("h{}", b.len())
    }

    /// A payload as Alertmanager 0.27 sends it (docs: configuration, webhook_config).
    fn alertmanager(status: &str) -> serde_json::Value {
        serde_json::json!({
          "version": "4",
          "groupKey": "{}:{alertname=\"HighLatency\"}",
          "truncatedAlerts": 2,
          "status": status,
          "receiver": "hermod",
          "groupLabels": {"alertname": "HighLatency"},
          "commonLabels": {"alertname": "HighLatency", "severity": "page"},
          "commonAnnotations": {},
          "externalURL": "http://alertmanager:9093",
          "alerts": [{
              "status": status,
              "labels": {"alertname": "HighLatency", "instance": "api-1:9100", "severity": "page"},
              "annotations": {"summary": "p99 latency above 2s"},
              "startsAt": "2026-11-22T10:00:00.000Z",
              "endsAt": if status == "resolved" { "2026-11-22T10:05:00.000Z" } else { "0001-01-01T00:00:00Z" },
              "generatorURL": "http://prometheus:9090/graph?g0.expr=latency",
              "fingerprint": "c2a5f3b1e4d60f17"
          }]
        })
    }

    #[test]
    fn alertmanager_v4() {
        let a = parse(&alertmanager("firing"), "ops", &hash).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].fingerprint, "c2a5f3b1e4d60f17");
        assert_eq!(a[0].status, "firing");
        assert_eq!(
            a[0].text,
            "[FIRING] HighLatency on api-1:9100 (page): p99 latency above 2s (+2 more alerts not shown)"
        );
        assert_eq!(a[0].vars["labels"]["instance"], "api-1:9100");
        assert_eq!(a[0].vars["truncatedAlerts"], 2);
        assert_eq!(
            a[0].vars["generatorURL"],
            "http://prometheus:9090/graph?g0.expr=latency"
        );
        let r = parse(&alertmanager("resolved"), "ops", &hash).unwrap();
        assert_eq!(r[0].status, "resolved");
        assert!(r[0].text.starts_with("[RESOLVED] HighLatency"));
        let mut v3 = alertmanager("firing");
        v3["version"] = "3".into();
        assert_eq!(parse(&v3, "ops", &hash).unwrap_err().0, "version");
    }

    #[test]
    fn device_json() {
        let a = parse(
            &serde_json::json!({"device": "freezer-7", "message": "temperature -2°C", "id": 17}),
            "ops",
            &hash,
        )
        .unwrap();
        assert_eq!(a[0].text, "[FIRING] freezer-7: temperature -2°C");
        assert_eq!(a[0].fingerprint, "17");
        let b = parse(
            &serde_json::json!({"temp": 9, "status": "ok"}),
            "cold room",
            &hash,
        )
        .unwrap();
        assert_eq!(b[0].status, "resolved");
        assert_eq!(
            b[0].text,
            "[RESOLVED] cold room: {\"status\":\"ok\",\"temp\":9}"
        );
        // Fingerprint of the body without its status: firing and resolved match.
        let c = parse(&serde_json::json!({"temp": 9}), "x", &hash).unwrap();
        assert_eq!(b[0].fingerprint, c[0].fingerprint);
        assert!(parse(&serde_json::json!([1]), "x", &hash).is_err());
    }

    #[test]
    fn repeats_within_the_window_are_sent_once() {
        let c = cfg();
        assert!(should_send(&c, "firing", None, 0));
        assert!(!should_send(&c, "firing", Some(("firing", 0)), 299_999));
        assert!(should_send(&c, "firing", Some(("firing", 0)), 300_000));
        assert!(should_send(&c, "resolved", Some(("firing", 0)), 1));
        assert!(!should_send(&c, "resolved", Some(("resolved", 0)), 1));
        assert!(!should_send(&c, "resolved", None, 1));
        let quiet = HookConfig {
            send_resolved: false,
            ..cfg()
        };
        assert!(!should_send(&quiet, "resolved", Some(("firing", 0)), 1));
    }

    #[test]
    fn on_call_rotation() {
        let o = OnCall {
            numbers: vec!["+1".into(), "+2".into(), "+3".into()],
            shift_hours: 24,
            starts_at: 0,
        };
        assert_eq!(o.current(0), Some("+1"));
        assert_eq!(o.current(86_400_000), Some("+2"));
        assert_eq!(o.current(3 * 86_400_000 + 5), Some("+1"));
        assert_eq!(o.current(-1), Some("+3"));
        let mut c = cfg();
        c.on_call = Some(o);
        assert_eq!(c.targets(86_400_000), vec!["+447700900001", "+2"]);
    }
}
