//! PDU helpers: command statuses, field conversions, the user data of a submit
//! (short_message or message_payload, UDH or SAR concatenation) and deliver_sm.

use std::str::FromStr;

use hermod_core::inbound::Concat;
use hermod_core::smpp::{MoNotice, Notice, ReceiptNotice, receipt_text};
use rusmpp::CommandStatus;
use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::{MessageDeliveryRequestTlvValue as Dv, Tlv, TlvValue};
use rusmpp::types::{AnyOctetString, COctetString, OctetString};
use rusmpp::values::{DataCoding, EsmClass, MessagePayload, MessageState, Npi, Ton};

/// Command statuses (SMPP 3.4 §5.1.3, 5.0 §4.7.6) the server answers with.
pub(crate) mod status {
    pub const OK: u32 = 0x00;
    pub const INVCMDLEN: u32 = 0x02;
    pub const INVCMDID: u32 = 0x03;
    pub const INVBNDSTS: u32 = 0x04;
    pub const ALYBND: u32 = 0x05;
    pub const SYSERR: u32 = 0x08;
    pub const INVSRCADR: u32 = 0x0A;
    pub const INVDSTADR: u32 = 0x0B;
    pub const INVMSGID: u32 = 0x0C;
    pub const BINDFAIL: u32 = 0x0D;
    pub const CANCELFAIL: u32 = 0x11;
    pub const REPLACEFAIL: u32 = 0x13;
    pub const MSGQFUL: u32 = 0x14;
    pub const INVNUMDESTS: u32 = 0x33;
    pub const INVESMCLASS: u32 = 0x43;
    pub const SUBMITFAIL: u32 = 0x45;
    pub const THROTTLED: u32 = 0x58;
    pub const INVSCHED: u32 = 0x61;
    pub const INVEXPIRY: u32 = 0x62;
    pub const QUERYFAIL: u32 = 0x67;
    pub const INVOPTPARAMVAL: u32 = 0xC4;
    pub const INVDCS: u32 = 0x104;
    /// Vendor-specific (0x400–0x4FF are the MC vendor's): the recipient opted out
    /// (STOP) of this tenant's messages.
    pub const OPTED_OUT: u32 = 0x400;
    /// Vendor-specific: the tenant is suspended by its operator.
    pub const SUSPENDED: u32 = 0x401;
}

pub(crate) fn st(code: u32) -> CommandStatus {
    CommandStatus::from(code)
}

/// A C-octet string field; what does not fit (or is not ASCII) becomes empty.
pub(crate) fn cstr<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    COctetString::from_str(s).unwrap_or_else(|_| COctetString::empty())
}

/// A Hermod message id as SMPP carries it: its 32 hex digits, without `msg_` (ids in
/// receipts' text are read in the default alphabet, where `_` is another character).
pub(crate) fn wire_id(id: &str) -> &str {
    id.strip_prefix("msg_").unwrap_or(id)
}

/// A message id from a client: the 32 hex digits (or the whole Hermod id).
pub(crate) fn hermod_id(s: &str) -> Option<hermod_core::MessageId> {
    hermod_core::MessageId::parse(&format!("msg_{}", wire_id(s)))
}

/// The user data of a submit: the text's bytes, its data_coding and concatenation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserData {
    pub data_coding: u8,
    pub bytes: Vec<u8>,
    pub concat: Option<Concat>,
}

/// Reads a submit's user data: `message_payload` or `short_message` (both set is
/// an error, §4.4.1), the UDH when esm_class has UDHI, SAR TLVs otherwise.
pub(crate) fn user_data(
    esm_class: u8,
    data_coding: u8,
    short: &[u8],
    tlvs: &[Tlv],
) -> Result<UserData, u32> {
    let mut payload: Option<Vec<u8>> = None;
    let (mut sar_ref, mut sar_total, mut sar_seq) = (None, None, None);
    for t in tlvs {
        match t.value() {
            Some(TlvValue::MessagePayload(p)) => payload = Some(p.value.as_ref().to_vec()),
            Some(TlvValue::SarMsgRefNum(r)) => sar_ref = Some(*r),
            Some(TlvValue::SarTotalSegments(n)) => sar_total = Some(*n),
            Some(TlvValue::SarSegmentSeqnum(n)) => sar_seq = Some(*n),
            _ => {}
        }
    }
    if payload.is_some() && !short.is_empty() {
        return Err(status::INVOPTPARAMVAL);
    }
    let data = payload.unwrap_or_else(|| short.to_vec());
    let (mut concat, body) = if esm_class & 0x40 != 0 {
        let (c, b) = hermod_core::gsm::split_udh(&data);
        (c, b.to_vec())
    } else {
        (None, data)
    };
    match (sar_ref, sar_total, sar_seq) {
        (Some(reference), Some(total), Some(seq)) => {
            concat = Some(Concat {
                reference,
                total,
                seq,
            })
        }
        (None, None, None) => {}
        _ => return Err(status::INVOPTPARAMVAL),
    }
    if let Some(c) = concat
        && (c.seq == 0 || c.seq > c.total)
    {
        return Err(status::INVOPTPARAMVAL);
    }
    Ok(UserData {
        data_coding,
        bytes: body,
        concat: concat.filter(|c| c.total > 1),
    })
}

/// 8-bit data codings (0x02, 0x04, 0xF4–0xF7): carried as bytes, over SMS only.
pub(crate) fn is_binary(data_coding: u8) -> bool {
    matches!(data_coding, 0x02 | 0x04 | 0xF4..=0xF7)
}

/// A submit's body as Hermod stores it: decoded text, or a binary message's bytes in hex
/// with its data_coding.
pub(crate) fn body(data_coding: u8, bytes: &[u8]) -> Result<(String, Option<u8>), u32> {
    if is_binary(data_coding) {
        return Ok((hex::encode(bytes), Some(data_coding)));
    }
    decode_text(data_coding, bytes).map(|t| (t, None))
}

/// Decodes text by data_coding: GSM 03.38 (0x00, and the 0xF0–0xF3 class codings),
/// IA5 (0x01), Latin-1 (0x03), UCS-2 (0x08); anything else (binary: see [`body`]) is
/// `ESME_RINVDCS`.
pub(crate) fn decode_text(data_coding: u8, bytes: &[u8]) -> Result<String, u32> {
    let dcs = match data_coding {
        0x00 | 0x01 | 0x03 | 0x08 => data_coding,
        0xF0..=0xF3 => 0x00,
        0x18 => 0x08,
        _ => return Err(status::INVDCS),
    };
    Ok(hermod_core::gsm::decode(dcs, bytes))
}

/// A number as Hermod stores it: `+` and the digits of an international number
/// (TON 1, or unknown with what looks like one).
pub(crate) fn msisdn(addr: &str, ton: u8) -> Option<String> {
    let digits = addr.trim_start_matches('+');
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match ton {
        0 | 1 => Some(format!("+{digits}")),
        _ => None,
    }
}

/// A sender as Hermod knows it: alphanumeric (TON 5) as written, numbers with `+`,
/// short codes (TON 3, or unknown and at most 8 digits) as written.
pub(crate) fn sender(addr: &str, ton: u8) -> Option<String> {
    if addr.is_empty() {
        return None;
    }
    let digits = addr.trim_start_matches('+');
    let numeric = digits.bytes().all(|b| b.is_ascii_digit());
    Some(match ton {
        5 => addr.to_owned(),
        3 | 6 => digits.to_owned(),
        _ if numeric && digits.len() <= 8 => digits.to_owned(),
        _ if numeric => format!("+{digits}"),
        _ => addr.to_owned(),
    })
}

/// Text as a deliver_sm carries it: GSM 03.38 when every character fits, else UCS-2.
fn encode_text(text: &str) -> (u8, Vec<u8>) {
    match hermod_core::gsm::encode_gsm7(text) {
        Some(b) => (0x00, b),
        None => (
            0x08,
            text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
        ),
    }
}

/// The deliver_sm of a notice; `tlvs`: the client bound with interface_version 0x34
/// or later (a 3.3 client gets no TLVs, and long inbound text is cut at 254 octets).
pub(crate) fn deliver_sm(n: &Notice, tlvs: bool) -> DeliverSm {
    match n {
        Notice::Receipt(r) => receipt(r, tlvs),
        Notice::Mo(m) => mo(m, tlvs),
    }
}

fn receipt(r: &ReceiptNotice, tlvs: bool) -> DeliverSm {
    let r = &ReceiptNotice {
        message_id: wire_id(&r.message_id).to_owned(),
        ..r.clone()
    };
    let text = receipt_text(r);
    let mut v = Vec::new();
    if tlvs {
        v.push(Dv::ReceiptedMessageId(cstr(&r.message_id)));
        v.push(Dv::MessageState(MessageState::from(r.state)));
    }
    DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(cstr(&r.recipient))
        .dest_addr_ton(Ton::from(r.source_ton))
        .dest_addr_npi(Npi::from(r.source_npi))
        .destination_addr(cstr(&r.source))
        .esm_class(EsmClass::from(0x04u8))
        // Letters, digits, spaces and colons: the same in GSM 03.38 and ASCII.
        .data_coding(DataCoding::from(0u8))
        .short_message(OctetString::from_vec(text.into_bytes()).unwrap_or_default())
        .tlvs(v)
        .build()
}

fn mo(m: &MoNotice, tlvs: bool) -> DeliverSm {
    let (dcs, mut bytes) = encode_text(&m.text);
    let b = DeliverSm::builder()
        .source_addr_ton(Ton::International)
        .source_addr_npi(Npi::Isdn)
        .source_addr(cstr(&m.from))
        .dest_addr_ton(if m.to.bytes().all(|b| b.is_ascii_digit()) {
            Ton::International
        } else {
            Ton::Alphanumeric
        })
        .dest_addr_npi(Npi::Isdn)
        .destination_addr(cstr(&m.to))
        .esm_class(EsmClass::from(0u8))
        .data_coding(DataCoding::from(dcs));
    if bytes.len() > 254 && tlvs {
        return b
            .tlvs(vec![Dv::MessagePayload(MessagePayload::new(
                AnyOctetString::from_vec(bytes),
            ))])
            .build();
    }
    bytes.truncate(254);
    b.short_message(OctetString::from_vec(bytes).unwrap_or_default())
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusmpp::tlvs::MessageSubmissionRequestTlvValue as V;

    fn tlvs(v: Vec<V>) -> Vec<Tlv> {
        v.into_iter().map(Tlv::from).collect()
    }

    #[test]
    fn udh_sar_and_payload() {
        let mut sm = vec![0x05, 0x00, 0x03, 0x2A, 0x02, 0x01];
        sm.extend(b"Hello ");
        let u = user_data(0x40, 0, &sm, &[]).unwrap();
        assert_eq!(u.bytes, b"Hello ");
        assert_eq!(
            u.concat,
            Some(Concat {
                reference: 42,
                total: 2,
                seq: 1
            })
        );
        let t = tlvs(vec![
            V::SarMsgRefNum(7),
            V::SarTotalSegments(3),
            V::SarSegmentSeqnum(3),
        ]);
        let u = user_data(0, 8, &[0, 0x41], &t).unwrap();
        assert_eq!(
            (u.bytes.as_slice(), u.concat.map(|c| c.seq)),
            (&[0, 0x41][..], Some(3))
        );
        let t = tlvs(vec![V::MessagePayload(MessagePayload::new(
            AnyOctetString::from_vec(b"long".to_vec()),
        ))]);
        assert_eq!(user_data(0, 0, &[], &t).unwrap().bytes, b"long");
        assert_eq!(user_data(0, 0, b"x", &t), Err(status::INVOPTPARAMVAL));
        let t = tlvs(vec![V::SarMsgRefNum(7)]);
        assert_eq!(user_data(0, 0, b"x", &t), Err(status::INVOPTPARAMVAL));
    }

    #[test]
    fn codings() {
        assert_eq!(decode_text(0, &[0x48, 0x00, 0x1B, 0x65]).unwrap(), "H@€");
        assert_eq!(decode_text(3, &[0x47, 0xFC]).unwrap(), "Gü");
        assert_eq!(decode_text(8, &[0x04, 0x1F]).unwrap(), "П");
        assert_eq!(decode_text(0xF1, b"A").unwrap(), "A");
        assert_eq!(decode_text(4, b"A"), Err(status::INVDCS));
        assert_eq!(decode_text(0x05, b"A"), Err(status::INVDCS));
        assert_eq!(body(4, &[1, 0xFF]).unwrap(), ("01ff".to_owned(), Some(4)));
        assert_eq!(body(0xF5, &[7]).unwrap(), ("07".to_owned(), Some(0xF5)));
        assert_eq!(body(3, &[0x47]).unwrap(), ("G".to_owned(), None));
    }

    #[test]
    fn ids_on_the_wire() {
        let id = "msg_01a24ef63e7775e1aa9f6cb55b013c1d";
        assert_eq!(wire_id(id), "01a24ef63e7775e1aa9f6cb55b013c1d");
        assert_eq!(hermod_id(wire_id(id)).unwrap().as_str(), id);
        assert_eq!(hermod_id(id).unwrap().as_str(), id);
        assert!(hermod_id("12345").is_none());
    }

    #[test]
    fn addresses() {
        assert_eq!(msisdn("447700900001", 1).as_deref(), Some("+447700900001"));
        assert_eq!(msisdn("+447700900001", 0).as_deref(), Some("+447700900001"));
        assert_eq!(msisdn("07700900001", 2), None);
        assert_eq!(msisdn("abc", 1), None);
        assert_eq!(sender("Hermod", 5).as_deref(), Some("Hermod"));
        assert_eq!(sender("447700900123", 1).as_deref(), Some("+447700900123"));
        assert_eq!(sender("12345", 0).as_deref(), Some("12345"));
        assert_eq!(sender("", 0), None);
    }
}
