//! Delivery receipts as real SMSCs send them.
//!
//! The `receipted_message_id` / `message_state` TLVs win; then the SMPP 3.4
//! Appendix B text (`id: sub: dlvrd: submit date: done date: stat: err: text:`); then
//! a loose key search (`=` for `:`, keys in any case and order, `submit_date`,
//! `status`, `error`, commas between fields). Ids may be hex in the submit response
//! and decimal in the receipt (or the other way round) — a per-connector setting says
//! which, like Kannel's `msg-id-type`; case and leading zeros never matter.

use std::str::FromStr;

use hermod_core::Status;
use hermod_core::model::{ChannelKind, Receipt, SubmitEcho};
use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::TlvValue;
use rusmpp::values::MessageType;
use serde::{Deserialize, Serialize};

/// What a receipt says, whichever way it said it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ParsedDlr {
    pub id: Option<String>,
    pub stat: Option<String>,
    pub err: Option<String>,
    /// `YYMMDDhhmm[ss]` as Unix milliseconds (UTC), when valid.
    pub submit_date: Option<i64>,
    pub done_date: Option<i64>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Key {
    Id,
    Sub,
    Dlvrd,
    SubmitDate,
    DoneDate,
    Stat,
    Err,
    Text,
}

/// Spellings seen in the wild, longest first where one is a prefix of another.
const ALIASES: [(&str, Key); 19] = [
    ("receipted_message_id", Key::Id),
    ("message_id", Key::Id),
    ("msgid", Key::Id),
    ("id", Key::Id),
    ("sub", Key::Sub),
    ("dlvrd", Key::Dlvrd),
    ("submit date", Key::SubmitDate),
    ("submit_date", Key::SubmitDate),
    ("submitdate", Key::SubmitDate),
    ("done date", Key::DoneDate),
    ("done_date", Key::DoneDate),
    ("donedate", Key::DoneDate),
    ("status", Key::Stat),
    ("state", Key::Stat),
    ("stat", Key::Stat),
    ("error", Key::Err),
    ("err", Key::Err),
    ("text", Key::Text),
    ("txt", Key::Text),
];

fn is_boundary(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b',' | b';' | b'{' | b'(' | b'|')
}

/// `(start, value start, key)` of every `key:` / `key=` that starts a field.
fn fields(s: &str) -> Vec<(usize, usize, Key)> {
    let lower = s.to_ascii_lowercase();
    let b = lower.as_bytes();
    let mut found: Vec<(usize, usize, Key)> = Vec::new();
    let mut seen_text = false;
    let mut i = 0;
    while i < b.len() && !seen_text {
        if i > 0 && !is_boundary(b[i - 1]) {
            i += 1;
            continue;
        }
        let hit = ALIASES.iter().find_map(|(alias, key)| {
            if !lower[i..].starts_with(alias) {
                return None;
            }
            let mut j = i + alias.len();
            while j < b.len() && b[j] == b' ' {
                j += 1;
            }
            (j < b.len() && (b[j] == b':' || b[j] == b'=')).then_some((j + 1, *key))
        });
        match hit {
            // The first occurrence of a key wins; `text:` ends the search.
            Some((v, key)) if !found.iter().any(|(_, _, k)| *k == key) => {
                found.push((i, v, key));
                seen_text = key == Key::Text;
                i = v;
            }
            _ => i += 1,
        }
    }
    found
}

/// Where the value of `text:` starts in the receipt text, if it has one.
fn text_value_at(s: &str) -> Option<usize> {
    fields(s)
        .into_iter()
        .find(|(_, _, k)| *k == Key::Text)
        .map(|(_, v, _)| v)
}

/// The normal form in which a receipt's `text:` and a submitted part are compared:
/// the ASCII letters and digits of the bytes, in order, after a concatenation UDH.
/// SMSCs repeat the first 20 characters in their own way (raw octets, decoded,
/// non-printables as `.` or `?`, with or without the UDH); letters and digits are
/// what they agree on.
pub fn text_key(bytes: &[u8]) -> String {
    let body = match bytes {
        [0x05, 0x00, 0x03, ..] => bytes.get(6..).unwrap_or_default(),
        [0x06, 0x08, 0x04, ..] => bytes.get(7..).unwrap_or_default(),
        _ => bytes,
    };
    body.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(|&b| char::from(b))
        .collect()
}

/// What a receipt repeats of its submit: its `submit date` and the key of its
/// `text:` (`None` when it repeats neither).
fn echo_of(raw: &[u8], lossy: &str, parsed: &ParsedDlr) -> Option<SubmitEcho> {
    // The fields before `text:` are ASCII, so the offset is the same in the bytes.
    let text_key = text_value_at(lossy)
        .filter(|&v| raw.get(..v).is_some_and(<[u8]>::is_ascii))
        .and_then(|v| raw.get(v..))
        .map(text_key)
        .unwrap_or_default();
    (parsed.submit_date.is_some() || !text_key.is_empty()).then_some(SubmitEcho {
        submitted_at: parsed.submit_date,
        text_key,
    })
}

/// Parses receipt text loosely.
pub fn parse_text(s: &str) -> ParsedDlr {
    let found = fields(s);
    let mut out = ParsedDlr::default();
    for (n, (_, vstart, key)) in found.iter().enumerate() {
        let end = found.get(n + 1).map_or(s.len(), |(p, _, _)| *p);
        let raw = s.get(*vstart..end).unwrap_or("");
        // One token: up to whitespace or a field separator.
        let token = raw
            .trim()
            .split(|c: char| c.is_whitespace() || c == ',' || c == ';')
            .next()
            .unwrap_or("")
            .trim_matches(|c| c == '"' || c == '\'');
        let value = (!token.is_empty()).then(|| token.to_owned());
        match key {
            Key::Id => out.id = value,
            Key::Stat => out.stat = value.map(|v| v.to_ascii_uppercase()),
            Key::Err => out.err = value,
            Key::SubmitDate => out.submit_date = value.as_deref().and_then(parse_date),
            Key::DoneDate => out.done_date = value.as_deref().and_then(parse_date),
            Key::Sub | Key::Dlvrd | Key::Text => {}
        }
    }
    out
}

/// `YYMMDDhhmm` or `YYMMDDhhmmss` (UTC) → Unix milliseconds.
pub fn parse_date(s: &str) -> Option<i64> {
    if !(s.len() == 10 || s.len() == 12) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| s.get(i..i + 2).and_then(|v| v.parse::<u8>().ok());
    let date = time::Date::from_calendar_date(
        2000 + i32::from(n(0)?),
        time::Month::try_from(n(2)?).ok()?,
        n(4)?,
    )
    .ok()?;
    let sec = if s.len() == 12 { n(10)? } else { 0 };
    let t = time::Time::from_hms(n(6)?, n(8)?, sec).ok()?;
    let at = time::PrimitiveDateTime::new(date, t).assume_utc();
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Maps a `stat:` word onto the unified status. Intermediate or non-standard states
/// (ENROUTE, ACCEPTD, ACKED, BUFFRED, UNKNOWN, ...) count as `sent`.
pub fn stat_to_status(stat: &str) -> Status {
    match stat.to_ascii_uppercase().as_str() {
        "DELIVRD" | "DELIVERED" | "DELIVERD" => Status::Delivered,
        "EXPIRED" => Status::Expired,
        "DELETED" | "UNDELIV" | "UNDELIVERABLE" | "UNDELIVERED" | "SKIPPED" | "FAILED" => {
            Status::Failed
        }
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

/// How a connector's SMSC writes message ids (Kannel's `msg-id-type`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptIds {
    /// The same form in submit_sm_resp and in the receipt.
    #[default]
    Same,
    /// Hex in submit_sm_resp, decimal in the receipt.
    SubmitHexReceiptDecimal,
    /// Decimal in submit_sm_resp, hex in the receipt.
    SubmitDecimalReceiptHex,
}

impl ReceiptIds {
    /// The receipt's id written the way the submit response wrote it.
    pub fn to_submit_form(self, id: &str) -> String {
        let id = id.trim();
        let converted = match self {
            ReceiptIds::Same => None,
            ReceiptIds::SubmitHexReceiptDecimal => {
                u128::from_str(id).ok().map(|n| format!("{n:x}"))
            }
            ReceiptIds::SubmitDecimalReceiptHex => {
                u128::from_str_radix(id, 16).ok().map(|n| n.to_string())
            }
        };
        converted.unwrap_or_else(|| id.to_owned())
    }
}

/// True when a deliver_sm without the receipt bits in esm_class still carries an
/// unmistakable receipt (some SMSCs leave esm_class at 0).
fn looks_like_receipt(text: &ParsedDlr, raw: &str) -> bool {
    let lower = raw.to_ascii_lowercase();
    text.id.is_some()
        && text.stat.is_some()
        && (text.done_date.is_some() || lower.contains("dlvrd"))
}

/// A delivery receipt from a deliver_sm, or `None` for an ordinary inbound message.
pub fn receipt_from(d: &DeliverSm, ids: ReceiptIds) -> Option<Receipt> {
    let mut id = None;
    let mut state = None;
    let mut user_ref = None;
    let mut network_error = None;
    for t in d.tlvs() {
        match t.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => {
                let v = v.as_str().trim();
                if !v.is_empty() {
                    id = Some(v.to_owned());
                }
            }
            Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
            Some(TlvValue::UserMessageReference(u)) => user_ref = Some(u.value),
            Some(TlvValue::NetworkErrorCode(e)) => {
                network_error = Some(format!("{:03}", e.error_code));
            }
            _ => {}
        }
    }
    let octets: &[u8] = d.short_message().as_ref();
    let raw_text = String::from_utf8_lossy(octets).into_owned();
    let text = parse_text(&raw_text);
    let flagged = matches!(
        d.esm_class.message_type,
        MessageType::ShortMessageContainsMCDeliveryReceipt
            | MessageType::ShortMessageContainsIntermediateDeliveryNotification
    );
    let tlv_receipt = id.is_some() && state.is_some();
    if !flagged && !tlv_receipt && !looks_like_receipt(&text, &raw_text) {
        return None;
    }
    let echo = echo_of(octets, &raw_text, &text);
    let id = id.or(text.id)?;
    let (status, raw) = match (state, &text.stat) {
        // The raw status comes from the same field as the decision.
        (Some(s), _) => {
            let (st, raw) = message_state_to_status(s);
            (st, raw.to_owned())
        }
        (None, Some(stat)) => (stat_to_status(stat), stat.clone()),
        (None, None) => return None,
    };
    Some(Receipt {
        channel: ChannelKind::Sms,
        provider_id: ids.to_submit_form(&id),
        status,
        raw_status: raw,
        echo,
        error_code: text.err.or(network_error),
        user_ref,
        recipient: Some(d.source_addr.as_str().to_owned()),
        event: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::tlvs::MessageDeliveryRequestTlvValue as V;
    use rusmpp::types::{COctetString, OctetString};
    use rusmpp::values::{EsmClass, MessageState, UserMessageReference};

    fn deliver(esm: u8, text: &str, tlvs: Vec<V>) -> DeliverSm {
        DeliverSm::builder()
            .source_addr(COctetString::from_str("447911123456").unwrap())
            .esm_class(EsmClass::from(esm))
            .short_message(OctetString::from_vec(text.as_bytes().to_vec()).unwrap())
            .tlvs(tlvs)
            .build()
    }

    fn rid(s: &str) -> V {
        V::ReceiptedMessageId(COctetString::from_str(s).unwrap())
    }

    const D: Status = Status::Delivered;
    const F: Status = Status::Failed;
    const S: Status = Status::Sent;
    const E: Status = Status::Expired;
    const R: Status = Status::Rejected;

    /// (what, esm_class, text, tlvs, id format, expected (id, status, raw, err)).
    type Case = (
        &'static str,
        u8,
        &'static str,
        Vec<V>,
        ReceiptIds,
        Option<(&'static str, Status, &'static str, Option<&'static str>)>,
    );

    fn corpus() -> Vec<Case> {
        use ReceiptIds::*;
        vec![
            (
                "appendix B",
                0x04,
                "id:0123456789 sub:001 dlvrd:001 submit date:2311221200 done date:2311221201 stat:DELIVRD err:000 text:Hello",
                vec![],
                Same,
                Some(("0123456789", D, "DELIVRD", Some("000"))),
            ),
            (
                "undeliverable",
                0x04,
                "id:7F3A sub:001 dlvrd:000 submit date:2311221200 done date:2311221205 stat:UNDELIV err:012 text:hi",
                vec![],
                Same,
                Some(("7F3A", F, "UNDELIV", Some("012"))),
            ),
            (
                "expired",
                0x04,
                "id:1 sub:001 dlvrd:000 submit date:2311221200 done date:2311231200 stat:EXPIRED err:000 text:",
                vec![],
                Same,
                Some(("1", E, "EXPIRED", Some("000"))),
            ),
            (
                "rejected",
                0x04,
                "id:2 sub:001 dlvrd:000 submit date:2311221200 done date:2311221200 stat:REJECTD err:069 text:",
                vec![],
                Same,
                Some(("2", R, "REJECTD", Some("069"))),
            ),
            (
                "deleted",
                0x04,
                "id:3 stat:DELETED err:000",
                vec![],
                Same,
                Some(("3", F, "DELETED", Some("000"))),
            ),
            (
                "enroute is intermediate",
                0x04,
                "id:4 stat:ENROUTE err:000",
                vec![],
                Same,
                Some(("4", S, "ENROUTE", Some("000"))),
            ),
            (
                "acceptd is intermediate",
                0x04,
                "id:5 stat:ACCEPTD err:000",
                vec![],
                Same,
                Some(("5", S, "ACCEPTD", Some("000"))),
            ),
            (
                "ACKED is intermediate",
                0x04,
                "id:6 stat:ACKED err:000",
                vec![],
                Same,
                Some(("6", S, "ACKED", Some("000"))),
            ),
            (
                "BUFFRED is intermediate",
                0x04,
                "id:7 stat:BUFFRED err:000",
                vec![],
                Same,
                Some(("7", S, "BUFFRED", Some("000"))),
            ),
            (
                "UNKNOWN is intermediate",
                0x04,
                "id:8 stat:UNKNOWN err:000",
                vec![],
                Same,
                Some(("8", S, "UNKNOWN", Some("000"))),
            ),
            (
                "lower-case keys and state",
                0x04,
                "id:9 sub:001 dlvrd:001 submit date:2311221200 done date:2311221201 stat:delivrd err:000 text:x",
                vec![],
                Same,
                Some(("9", D, "DELIVRD", Some("000"))),
            ),
            (
                "upper-case keys, Text:",
                0x04,
                "ID:10 SUB:001 DLVRD:001 SUBMIT DATE:2311221200 DONE DATE:2311221201 STAT:DELIVRD ERR:000 Text:x",
                vec![],
                Same,
                Some(("10", D, "DELIVRD", Some("000"))),
            ),
            (
                "TEXT: in capitals with key words inside",
                0x04,
                "id:11 stat:DELIVRD err:000 TEXT:stat:UNDELIV id:99",
                vec![],
                Same,
                Some(("11", D, "DELIVRD", Some("000"))),
            ),
            (
                "fields out of order",
                0x04,
                "stat:UNDELIV err:001 id:12 sub:001",
                vec![],
                Same,
                Some(("12", F, "UNDELIV", Some("001"))),
            ),
            (
                "four-digit err",
                0x04,
                "id:13 stat:UNDELIV err:1234 text:",
                vec![],
                Same,
                Some(("13", F, "UNDELIV", Some("1234"))),
            ),
            (
                "one-digit err",
                0x04,
                "id:14 stat:UNDELIV err:1",
                vec![],
                Same,
                Some(("14", F, "UNDELIV", Some("1"))),
            ),
            (
                "12-digit dates",
                0x04,
                "id:15 sub:001 dlvrd:001 submit date:231122120000 done date:231122120130 stat:DELIVRD err:000 text:",
                vec![],
                Same,
                Some(("15", D, "DELIVRD", Some("000"))),
            ),
            (
                "underscored keys and = separators",
                0x04,
                "id=16 submit_date=2311221200 done_date=2311221201 stat=DELIVRD err=000",
                vec![],
                Same,
                Some(("16", D, "DELIVRD", Some("000"))),
            ),
            (
                "comma separated",
                0x04,
                "id:17,stat:UNDELIV,err:005",
                vec![],
                Same,
                Some(("17", F, "UNDELIV", Some("005"))),
            ),
            (
                "status and error spelled out",
                0x04,
                "message_id: 18 status: DELIVERED error: 0",
                vec![],
                Same,
                Some(("18", D, "DELIVERED", Some("0"))),
            ),
            (
                "spaces after colons",
                0x04,
                "id: 19 stat: UNDELIV err: 002",
                vec![],
                Same,
                Some(("19", F, "UNDELIV", Some("002"))),
            ),
            (
                "text empty, trailing spaces",
                0x04,
                "id:20 stat:DELIVRD err:000 text:   ",
                vec![],
                Same,
                Some(("20", D, "DELIVRD", Some("000"))),
            ),
            (
                "TLVs only, empty text",
                0x04,
                "",
                vec![rid("21ab"), V::MessageState(MessageState::Delivered)],
                Same,
                Some(("21ab", D, "DELIVRD", None)),
            ),
            (
                "TLVs win over text",
                0x04,
                "id:WRONG stat:ENROUTE err:000",
                vec![rid("22"), V::MessageState(MessageState::Undeliverable)],
                Same,
                Some(("22", F, "UNDELIV", Some("000"))),
            ),
            (
                "TLV id, text state",
                0x04,
                "id:zzz stat:EXPIRED err:000",
                vec![rid("23")],
                Same,
                Some(("23", E, "EXPIRED", Some("000"))),
            ),
            (
                "TLV state, text id",
                0x04,
                "id:24 stat:garbage",
                vec![V::MessageState(MessageState::Rejected)],
                Same,
                Some(("24", R, "REJECTD", None)),
            ),
            (
                "intermediate notification esm 0x20",
                0x20,
                "id:25 stat:ENROUTE err:000",
                vec![],
                Same,
                Some(("25", S, "ENROUTE", Some("000"))),
            ),
            (
                "esm_class 0 but unmistakable text",
                0x00,
                "id:26 sub:001 dlvrd:001 submit date:2311221200 done date:2311221201 stat:DELIVRD err:000 text:",
                vec![],
                Same,
                Some(("26", D, "DELIVRD", Some("000"))),
            ),
            (
                "esm_class 0 but both TLVs",
                0x00,
                "",
                vec![rid("27"), V::MessageState(MessageState::Delivered)],
                Same,
                Some(("27", D, "DELIVRD", None)),
            ),
            (
                "decimal receipt id for a hex submit id",
                0x04,
                "id:1048575 stat:DELIVRD err:000",
                vec![],
                SubmitHexReceiptDecimal,
                Some(("fffff", D, "DELIVRD", Some("000"))),
            ),
            (
                "hex receipt id for a decimal submit id",
                0x04,
                "id:0FFFFF stat:DELIVRD err:000",
                vec![],
                SubmitDecimalReceiptHex,
                Some(("1048575", D, "DELIVRD", Some("000"))),
            ),
            (
                "hex TLV id converted too",
                0x04,
                "",
                vec![rid("00ff"), V::MessageState(MessageState::Delivered)],
                SubmitDecimalReceiptHex,
                Some(("255", D, "DELIVRD", None)),
            ),
            (
                "leading zeros kept (the store normalises)",
                0x04,
                "id:000042 stat:DELIVRD",
                vec![],
                Same,
                Some(("000042", D, "DELIVRD", None)),
            ),
            (
                "quoted values",
                0x04,
                "id:\"34\" stat:\"DELIVRD\"",
                vec![],
                Same,
                Some(("34", D, "DELIVRD", None)),
            ),
            (
                "network_error_code TLV fills err",
                0x04,
                "",
                vec![
                    rid("35"),
                    V::MessageState(MessageState::Undeliverable),
                    V::NetworkErrorCode(rusmpp::values::NetworkErrorCode::new(
                        rusmpp::values::ErrorCodeNetworkType::Gsm,
                        11,
                    )),
                ],
                Same,
                Some(("35", F, "UNDELIV", Some("011"))),
            ),
            (
                "ordinary MO is not a receipt",
                0x00,
                "Hello, what is my id: 5?",
                vec![],
                Same,
                None,
            ),
            (
                "MO mentioning stat is not a receipt",
                0x00,
                "id:1 stat:DELIVRD",
                vec![],
                Same,
                None,
            ),
            (
                "receipt without any state is dropped",
                0x04,
                "id:38 sub:001",
                vec![],
                Same,
                None,
            ),
            (
                "receipt without any id is dropped",
                0x04,
                "stat:DELIVRD err:000",
                vec![],
                Same,
                None,
            ),
        ]
    }

    #[test]
    fn receipt_corpus() {
        let cases = corpus();
        assert!(cases.len() >= 30, "the corpus keeps at least 30 variants");
        for (what, esm, text, tlvs, ids, want) in cases {
            let got = receipt_from(&deliver(esm, text, tlvs), ids);
            let got = got.map(|r| (r.provider_id, r.status, r.raw_status, r.error_code));
            let want =
                want.map(|(i, s, r, e)| (i.to_owned(), s, r.to_owned(), e.map(str::to_owned)));
            assert_eq!(got, want, "{what}: {text}");
        }
    }

    #[test]
    fn receipt_keeps_user_ref_and_recipient() {
        let r = receipt_from(
            &deliver(
                0x04,
                "",
                vec![
                    rid("abc"),
                    V::MessageState(MessageState::Delivered),
                    V::UserMessageReference(UserMessageReference::new(77)),
                ],
            ),
            ReceiptIds::Same,
        )
        .unwrap();
        assert_eq!(r.user_ref, Some(77));
        assert_eq!(r.recipient.as_deref(), Some("447911123456"));
    }

    /// What receipts repeat of their submit, written as node-smpp's simulator (raw
    /// octets as Latin-1, the UDH included), Hermod's (UDH stripped, `.` for what
    /// is not printable) and loose SMSCs write it.
    #[test]
    fn receipts_repeat_their_submit_date_and_text() {
        let echo = |bytes: &[u8]| {
            let d = DeliverSm::builder()
                .source_addr(COctetString::from_str("447911123456").unwrap())
                .esm_class(EsmClass::from(0x04))
                .short_message(OctetString::from_vec(bytes.to_vec()).unwrap())
                .build();
            receipt_from(&d, ReceiptIds::Same).unwrap().echo
        };
        let head = b"id:1 sub:001 dlvrd:001 submit date:2311221200 done date:2311221201 stat:DELIVRD err:000 text:";
        let with = |text: &[u8]| [head.as_slice(), text].concat();
        let e = echo(&with(b"hello 42")).unwrap();
        assert_eq!(e.submitted_at, Some(1_700_654_400_000));
        assert_eq!(e.text_key, "hello42");
        let udh = with(&[
            0x05, 0x00, 0x03, 0x41, 0x02, 0x01, b'P', b'a', b'r', b't', 0xE9,
        ]);
        assert_eq!(
            echo(&udh).unwrap().text_key,
            "Part",
            "UDH and Latin-1 octets"
        );
        assert_eq!(echo(&with(b"caf. 1")).unwrap().text_key, "caf1");
        let loose =
            b"id=9 submit_date=231122120000 done_date=231122120100 stat=delivrd Text=Hi there";
        let e = echo(loose).unwrap();
        assert_eq!(
            (e.submitted_at, e.text_key.as_str()),
            (Some(1_700_654_400_000), "Hithere")
        );
        let bare = b"id:2 stat:DELIVRD err:000";
        assert_eq!(echo(bare), None, "nothing repeated");
        assert_eq!(text_key("Grüße 7".as_bytes()), "Gre7");
    }

    #[test]
    fn dates_of_both_lengths() {
        let p = parse_text("id:1 submit date:2311221200 done date:231122120130 stat:DELIVRD");
        assert_eq!(p.submit_date, Some(1_700_654_400_000));
        assert_eq!(p.done_date, Some(1_700_654_490_000));
        assert_eq!(parse_date("2313221200"), None, "month 13");
        assert_eq!(parse_date("23112212"), None, "8 digits");
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
