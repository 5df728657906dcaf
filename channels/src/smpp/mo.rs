//! Inbound (MO) deliver_sm → [`InboundPart`]: concatenation from the UDH (8- or 16-bit
//! reference) or the SAR TLVs, text from `short_message` or `message_payload`, decoded
//! by data_coding.

use hermod_core::inbound::{Concat, InboundPart};
use hermod_core::model::ChannelKind;
use hermod_core::now_ms;
use rusmpp::pdus::DeliverSm;
use rusmpp::tlvs::TlvValue;

use super::gsm;

pub use hermod_core::gsm::split_udh;

/// The inbound part a deliver_sm carries (call only when it is not a receipt).
pub fn part_from(d: &DeliverSm, connector: &str) -> InboundPart {
    let mut payload: Option<Vec<u8>> = None;
    let (mut sar_ref, mut sar_total, mut sar_seq) = (None, None, None);
    for t in d.tlvs() {
        match t.value() {
            Some(TlvValue::MessagePayload(p)) => payload = Some(p.value.as_ref().to_vec()),
            Some(TlvValue::SarMsgRefNum(r)) => sar_ref = Some(*r),
            Some(TlvValue::SarTotalSegments(n)) => sar_total = Some(*n),
            Some(TlvValue::SarSegmentSeqnum(n)) => sar_seq = Some(*n),
            _ => {}
        }
    }
    let data = payload.unwrap_or_else(|| d.short_message().as_ref().to_vec());
    let udhi = u8::from(d.esm_class) & 0x40 != 0;
    let (mut concat, body) = if udhi {
        split_udh(&data)
    } else {
        (None, &data[..])
    };
    if let (Some(reference), Some(total), Some(seq)) = (sar_ref, sar_total, sar_seq) {
        concat = Some(Concat {
            reference,
            total,
            seq,
        });
    }
    // A "concatenated" message of one part is just a message.
    let concat = concat.filter(|c| c.total > 1 && c.seq >= 1 && c.seq <= c.total);
    InboundPart {
        channel: ChannelKind::Sms,
        payload: None,
        connector: connector.to_owned(),
        from: d.source_addr.as_str().trim_start_matches('+').to_owned(),
        to: d
            .destination_addr
            .as_str()
            .trim_start_matches('+')
            .to_owned(),
        concat,
        text: gsm::decode(u8::from(d.data_coding), body),
        received_at: now_ms(),
        tenant: None,
        event: None,
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use rusmpp::tlvs::MessageDeliveryRequestTlvValue as V;
    use rusmpp::types::{AnyOctetString, COctetString, OctetString};
    use rusmpp::values::{DataCoding, EsmClass, MessagePayload};

    fn mo(esm: u8, dcs: u8, sm: Vec<u8>, tlvs: Vec<V>) -> DeliverSm {
        DeliverSm::builder()
            .source_addr(COctetString::from_str("447911123456").unwrap())
            .destination_addr(COctetString::from_str("447700900123").unwrap())
            .esm_class(EsmClass::from(esm))
            .data_coding(DataCoding::from(dcs))
            .short_message(OctetString::from_vec(sm).unwrap())
            .tlvs(tlvs)
            .build()
    }

    #[test]
    fn plain_gsm() {
        let p = part_from(&mo(0, 0, gsm::encode_gsm7("STOP").unwrap(), vec![]), "c1");
        assert_eq!((p.text.as_str(), p.concat), ("STOP", None));
        assert_eq!(
            (p.from.as_str(), p.to.as_str()),
            ("447911123456", "447700900123")
        );
    }

    #[test]
    fn udh_8_and_16_bit() {
        let mut sm = vec![0x05, 0x00, 0x03, 0x2A, 0x02, 0x01];
        sm.extend(gsm::encode_gsm7("Hello ").unwrap());
        let p = part_from(&mo(0x40, 0, sm, vec![]), "c1");
        assert_eq!(
            p.concat,
            Some(Concat {
                reference: 42,
                total: 2,
                seq: 1
            })
        );
        assert_eq!(p.text, "Hello ");
        let mut sm = vec![0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x03];
        sm.extend([0x00, 0x21]);
        let p = part_from(&mo(0x40, 8, sm, vec![]), "c1");
        assert_eq!(
            p.concat,
            Some(Concat {
                reference: 0x1234,
                total: 3,
                seq: 3
            })
        );
        assert_eq!(p.text, "!");
    }

    #[test]
    fn sar_tlvs_and_payload() {
        let p = part_from(
            &mo(
                0,
                3,
                vec![],
                vec![
                    V::MessagePayload(MessagePayload::new(AnyOctetString::from_slice(&[
                        0x47, 0xFC,
                    ]))),
                    V::SarMsgRefNum(7),
                    V::SarTotalSegments(2),
                    V::SarSegmentSeqnum(2),
                ],
            ),
            "c1",
        );
        assert_eq!(
            p.concat,
            Some(Concat {
                reference: 7,
                total: 2,
                seq: 2
            })
        );
        assert_eq!(p.text, "Gü");
    }

    #[test]
    fn malformed_udh_is_text() {
        let p = part_from(&mo(0x40, 0, vec![0x09, 0x00], vec![]), "c1");
        assert_eq!(p.concat, None);
    }
}
