//! Any bytes from an SMSC: the PDU decoder, then what we make of a deliver_sm (a
//! receipt in every id form, or an inbound part).
#![no_main]

use hermod_channels::smpp::dlr::{ReceiptIds, receipt_from};
use hermod_channels::smpp::mo::{part_from, split_udh};
use libfuzzer_sys::fuzz_target;
use rusmpp::Pdu;
use rusmpp::tokio_codec::CommandCodec;
use tokio_util::bytes::BytesMut;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    let mut codec = CommandCodec::new();
    for _ in 0..16 {
        let Ok(Some(cmd)) = codec.decode(&mut buf) else {
            return;
        };
        if let Some(Pdu::DeliverSm(d)) = cmd.pdu() {
            for ids in [
                ReceiptIds::Same,
                ReceiptIds::SubmitHexReceiptDecimal,
                ReceiptIds::SubmitDecimalReceiptHex,
            ] {
                let _ = receipt_from(d, ids);
            }
            let _ = part_from(d, "fuzz");
            let _ = split_udh(d.short_message().as_ref());
        }
    }
});
