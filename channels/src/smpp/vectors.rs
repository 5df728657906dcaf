//! Our PDUs against SMPP 3.4 PDUs encoded by an independent implementation
//! (python-smpplib 2.2.4, checked by hand against SMPP 3.4 §4; the project's shared
//! test data `smpp/pdu_vectors.json`).

use hermod_core::model::Outgoing;
use hermod_core::{AttemptId, MessageId, Msisdn};
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::{Command, CommandStatus, Pdu};
use tokio_util::bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use super::bind::bind_transceiver_pdu;
use super::config::ConnectorConfig;
use super::connector::build_submits;
use hermod_core::Secret;

const BIND_TRANSCEIVER: &str = "000000210000000900000000000000017465737400736563726574000034000000";
const SUBMIT_SM: &str = "0000003c00000004000000000000000200010131353535313233303030300001013135353539383736353433000000000000010000000568656c6c6f";
const ENQUIRE_LINK: &str = "00000010000000150000000000000003";

fn encode(seq: u32, pdu: impl Into<Pdu>) -> String {
    let mut buf = BytesMut::new();
    CommandCodec::new()
        .encode(
            Command::new(CommandStatus::EsmeRok, seq, pdu.into()),
            &mut buf,
        )
        .unwrap();
    hex::encode(&buf)
}

fn decode(h: &str) -> Command {
    let mut buf = BytesMut::from(&hex::decode(h).unwrap()[..]);
    CommandCodec::new().decode(&mut buf).unwrap().unwrap()
}

#[test]
fn our_bind_transceiver_matches_the_vector() {
    let cfg = ConnectorConfig {
        system_id: "test".into(),
        password: Secret("secret".into()),
        ..Default::default()
    };
    assert_eq!(encode(1, bind_transceiver_pdu(&cfg)), BIND_TRANSCEIVER);
}

#[test]
fn our_submit_sm_is_the_vector_plus_our_reference_tlv() {
    let cfg = ConnectorConfig::default();
    let msg = Outgoing {
        attempt_id: AttemptId::generate(),
        tenant_id: hermod_core::TenantId::from_trusted("ten_test".into()),
        message_id: MessageId::generate(),
        to: Msisdn::parse("+15559876543").unwrap(),
        // International sender → TON 1 / NPI 1, as in the vector.
        from: Some("+15551230000".into()),
        text: "hello".into(),
        user_ref: 0x1234,
        expires_at: None,
        content: None,
        user_id: None,
        traffic_type: None,
        binary: None,
    };
    let pdus = build_submits(&cfg, 1, &msg).unwrap();
    assert_eq!(pdus.len(), 1);
    let ours = encode(2, pdus[0].clone());
    // command_length grows by the 6-octet user_message_reference TLV (0x0204).
    let body = &SUBMIT_SM[8..];
    assert_eq!(&ours[..8], format!("{:08x}", 0x3c + 6));
    assert_eq!(&ours[8..8 + body.len()], body);
    assert_eq!(&ours[8 + body.len()..], "020400021234");
}

#[test]
fn the_vectors_decode_to_their_fields() {
    let bind = decode(BIND_TRANSCEIVER);
    let Some(Pdu::BindTransceiver(b)) = bind.pdu() else {
        panic!("{bind:?}")
    };
    assert_eq!(
        (b.system_id.as_str(), b.password.as_str()),
        ("test", "secret")
    );
    assert_eq!(bind.sequence_number(), 1);
    let sm = decode(SUBMIT_SM);
    let Some(Pdu::SubmitSm(s)) = sm.pdu() else {
        panic!("{sm:?}")
    };
    assert_eq!(s.source_addr.as_str(), "15551230000");
    assert_eq!(s.destination_addr.as_str(), "15559876543");
    assert_eq!(s.short_message().as_ref(), b"hello");
    assert_eq!(u8::from(s.registered_delivery), 1);
    let el = decode(ENQUIRE_LINK);
    assert!(matches!(el.pdu(), Some(Pdu::EnquireLink)));
    assert_eq!(el.sequence_number(), 3);
    assert_eq!(encode(3, Pdu::EnquireLink), ENQUIRE_LINK);
}
