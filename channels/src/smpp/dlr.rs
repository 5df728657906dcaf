//! Delivery receipts: the `message_state` / `receipted_message_id` TLVs first, the
//! SMPP 3.4 Appendix B text (`id: sub: dlvrd: submit date: done date: stat: err: text:`)
//! second; both mapped to the unified status.

use hermod_core::Status;

/// What a receipt says, whichever way it said it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ParsedDlr {
    pub id: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    pub submit_date: Option<String>,
    pub done_date: Option<String>,
}

const KEYS: [&str; 8] = [
    "id",
    "sub",
    "dlvrd",
    "submit date",
    "done date",
    "stat",
    "err",
    "text",
];

/// Parses the Appendix B text loosely: keys in any case and order, values up to the
/// next known key; `text:` takes the rest of the line.
pub fn parse_text(s: &str) -> ParsedDlr {
    let lower = s.to_ascii_lowercase();
    // Positions of every "key:" that starts a word.
    let mut found: Vec<(usize, &str)> = Vec::new();
    for key in KEYS {
        let pat = format!("{key}:");
        let mut from = 0;
        while let Some(i) = lower[from..].find(&pat) {
            let at = from + i;
            let starts_word = at == 0 || lower.as_bytes()[at - 1].is_ascii_whitespace();
            if starts_word && !found.iter().any(|(p, _)| *p == at) {
                found.push((at, key));
                break;
            }
            from = at + pat.len();
        }
    }
    found.sort_by_key(|(p, _)| *p);
    let mut out = ParsedDlr::default();
    for (i, (pos, key)) in found.iter().enumerate() {
        let start = pos + key.len() + 1;
        let end = if *key == "text" {
            s.len()
        } else {
            found.get(i + 1).map_or(s.len(), |(p, _)| *p)
        };
        let value = s.get(start..end).unwrap_or("").trim().to_owned();
        let value = if value.is_empty() { None } else { Some(value) };
        match *key {
            "id" => out.id = value,
            "stat" => out.stat = value.map(|v| v.to_ascii_uppercase()),
            "err" => out.err = value,
            "submit date" => out.submit_date = value,
            "done date" => out.done_date = value,
            _ => {}
        }
    }
    out
}

/// Maps an Appendix B `stat:` word onto the unified status. Intermediate or unknown
/// states (ENROUTE, ACCEPTD, UNKNOWN, ...) count as `sent`.
pub fn stat_to_status(stat: &str) -> Status {
    match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" => Status::Delivered,
        "EXPIRED" => Status::Expired,
        "DELETED" | "UNDELIV" | "UNDELIVERABLE" | "SKIPPED" => Status::Failed,
        "REJECTD" | "REJECTED" => Status::Rejected,
        _ => Status::Sent,
    }
}

/// Maps the `message_state` TLV (SMPP 5.0 §4.8.4.37) onto the unified status.
pub fn message_state_to_status(state: u8) -> (Status, &'static str) {
    match state {
        1 => (Status::Sent, "ENROUTE"),
        2 => (Status::Delivered, "DELIVRD"),
        3 => (Status::Expired, "EXPIRED"),
        4 => (Status::Failed, "DELETED"),
        5 => (Status::Failed, "UNDELIV"),
        6 => (Status::Sent, "ACCEPTD"),
        8 => (Status::Rejected, "REJECTD"),
        9 => (Status::Failed, "SKIPPED"),
        _ => (Status::Sent, "UNKNOWN"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_appendix_b_format() {
        let p = parse_text(
            "id:0123456789 sub:001 dlvrd:001 submit date:2311221200 done date:2311221201 stat:DELIVRD err:000 text:Hello id: world",
        );
        assert_eq!(p.id.as_deref(), Some("0123456789"));
        assert_eq!(p.stat.as_deref(), Some("DELIVRD"));
        assert_eq!(p.err.as_deref(), Some("000"));
        assert_eq!(p.submit_date.as_deref(), Some("2311221200"));
        assert_eq!(p.done_date.as_deref(), Some("2311221201"));
    }

    #[test]
    fn tolerates_case_order_and_missing_fields() {
        let p = parse_text("Stat:undeliv ID:ab12 Err:1 Text:x");
        assert_eq!(p.id.as_deref(), Some("ab12"));
        assert_eq!(p.stat.as_deref(), Some("UNDELIV"));
        assert_eq!(p.err.as_deref(), Some("1"));
        assert_eq!(parse_text("garbage"), ParsedDlr::default());
    }

    #[test]
    fn maps_states() {
        assert_eq!(stat_to_status("DELIVRD"), Status::Delivered);
        assert_eq!(stat_to_status("undeliv"), Status::Failed);
        assert_eq!(stat_to_status("EXPIRED"), Status::Expired);
        assert_eq!(stat_to_status("REJECTD"), Status::Rejected);
        assert_eq!(stat_to_status("ACCEPTD"), Status::Sent);
        assert_eq!(stat_to_status("BUFFRED"), Status::Sent);
        assert_eq!(message_state_to_status(2), (Status::Delivered, "DELIVRD"));
        assert_eq!(message_state_to_status(5).0, Status::Failed);
    }
}
