//! The delivery receipt of a submit: `deliver_sm` with the receipt's TLVs and the
//! SMPP 3.4 Appendix B text, in the variants real SMSCs use.

#[allow(unused_imports)]
use super::*;

pub(super) fn yymmddhhmm() -> String {
    hermod_core::smpp::receipt_date(hermod_core::now_ms())
}

pub(super) fn receipt(
    style: ReceiptStyle,
    n: u64,
    id: &str,
    sm: &SubmitSm,
    short: &[u8],
    user_ref: Option<u16>,
    undeliv: bool,
) -> DeliverSm {
    let (stat, state, err) = if undeliv {
        ("UNDELIV", MessageState::Undeliverable, "001")
    } else {
        ("DELIVRD", MessageState::Delivered, "000")
    };
    // Appendix B: the first 20 characters of the original text (when it is text).
    let body = if u8::from(sm.esm_class) & 0x40 != 0 && short.len() > 6 {
        &short[6..]
    } else {
        short
    };
    let text: String = if u8::from(sm.data_coding) == 0 {
        body.iter()
            .take(20)
            .map(|&b| {
                if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                }
            })
            .collect()
    } else {
        String::new()
    };
    let now = yymmddhhmm();
    let dlvrd = if undeliv { "000" } else { "001" };
    let msg = match style {
        ReceiptStyle::Standard | ReceiptStyle::TextOnly | ReceiptStyle::NoUserRef => format!(
            "id:{id} sub:001 dlvrd:{dlvrd} submit date:{now} done date:{now} stat:{stat} err:{err} text:{text}"
        ),
        ReceiptStyle::DecimalIds => format!(
            "id:{n} sub:001 dlvrd:{dlvrd} submit date:{now} done date:{now} stat:{stat} err:{err} text:{text}"
        ),
        ReceiptStyle::Loose => format!(
            "id={} sub=001 dlvrd={dlvrd} submit_date={now}00 done_date={now}00 stat={} err=0{err} Text={text}",
            id.to_ascii_lowercase(),
            stat.to_ascii_lowercase()
        ),
    };
    let mut tlvs = Vec::new();
    if matches!(style, ReceiptStyle::Standard | ReceiptStyle::NoUserRef) {
        tlvs.push(MessageDeliveryRequestTlvValue::ReceiptedMessageId(
            COctetString::from_str_lossy(id),
        ));
        tlvs.push(MessageDeliveryRequestTlvValue::MessageState(state));
    }
    if let (ReceiptStyle::Standard, Some(u)) = (style, user_ref) {
        tlvs.push(MessageDeliveryRequestTlvValue::UserMessageReference(
            UserMessageReference::new(u),
        ));
    }
    DeliverSm::builder()
        .source_addr_ton(sm.dest_addr_ton)
        .source_addr_npi(sm.dest_addr_npi)
        .source_addr(sm.destination_addr.clone())
        .dest_addr_ton(Ton::from(u8::from(sm.source_addr_ton)))
        .dest_addr_npi(Npi::from(u8::from(sm.source_addr_npi)))
        .destination_addr(sm.source_addr.clone())
        .esm_class(EsmClass::from(0x04u8))
        .data_coding(DataCoding::from(0u8))
        .short_message(
            OctetString::from_vec(msg.into_bytes()).unwrap_or_else(|_| OctetString::empty()),
        )
        .tlvs(tlvs)
        .build()
}

/// `COctetString::from_str` that cannot fail for our short ASCII values.
pub(super) trait Lossy {
    fn from_str_lossy(s: &str) -> Self;
}

impl<const MIN: usize, const MAX: usize> Lossy for COctetString<MIN, MAX> {
    fn from_str_lossy(s: &str) -> Self {
        use std::str::FromStr;
        COctetString::from_str(s).unwrap_or_else(|_| COctetString::empty())
    }
}
