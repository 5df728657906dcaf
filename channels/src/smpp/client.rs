use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use hermod_core::model::{ChannelKind, Outgoing, Receipt};
use hermod_core::ports::{Channel, ReceiptSink, SendError};
use rusmpp::pdus::{BindTransceiver, DeliverSm, DeliverSmResp, SubmitSm};
use rusmpp::tlvs::{MessageSubmissionRequestTlvValue, TlvValue};
use rusmpp::types::{COctetString, OctetString};
use rusmpp::values::{
    DataCoding, EsmClass, InterfaceVersion, MessageType, Npi, RegisteredDelivery, Ton,
    UserMessageReference,
};
use rusmpp::{CommandStatus, Pdu};
use rusmppc::{Client, ConnectionBuilder, Event};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use super::{dlr, gsm, status};

/// Where and how to bind. `url` is `smpp://system_id:password@host:port` (`smpps://`
/// for TLS).
#[derive(Clone, Debug)]
pub struct SmppSettings {
    pub url: String,
    pub system_type: String,
    /// Outstanding submit_sm per bind.
    pub window: usize,
    pub enquire_link: Duration,
    pub response_timeout: Duration,
    pub reconnect_max: Duration,
    /// Sender when a message names none.
    pub default_source: Option<String>,
}

impl Default for SmppSettings {
    fn default() -> Self {
        Self {
            url: "smpp://hermod:secret@127.0.0.1:2775".into(),
            system_type: String::new(),
            window: 32,
            enquire_link: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            reconnect_max: Duration::from_secs(30),
            default_source: None,
        }
    }
}

struct Target {
    connect_url: String,
    system_id: String,
    password: String,
}

fn parse_url(raw: &str) -> Result<Target, String> {
    let u = url::Url::parse(raw).map_err(|e| format!("invalid SMPP URL: {e}"))?;
    if !matches!(u.scheme(), "smpp" | "smpps" | "ssmpp") {
        return Err("SMPP URL scheme must be smpp:// or smpps://".into());
    }
    let host = u.host_str().ok_or("SMPP URL has no host")?;
    let port = u.port().unwrap_or(2775);
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Target {
        connect_url: format!("{}://{host}:{port}", u.scheme()),
        system_id: decode(u.username()),
        password: decode(u.password().unwrap_or("")),
    })
}

/// The SMS channel: one transceiver bind kept alive by a supervisor task.
pub struct SmppChannel {
    settings: SmppSettings,
    client: watch::Receiver<Option<Client>>,
    window: Arc<Semaphore>,
    reference: std::sync::atomic::AtomicU8,
}

impl SmppChannel {
    /// Starts the bind supervisor; receipts go to `sink` and are acknowledged to the
    /// SMSC only once the sink has stored them.
    pub fn start(
        settings: SmppSettings,
        sink: Arc<dyn ReceiptSink>,
        cancel: CancellationToken,
    ) -> Result<Arc<Self>, String> {
        let target = parse_url(&settings.url)?;
        let (tx, rx) = watch::channel(None);
        let ch = Arc::new(Self {
            window: Arc::new(Semaphore::new(settings.window.max(1))),
            settings: settings.clone(),
            client: rx,
            reference: std::sync::atomic::AtomicU8::new(1),
        });
        tokio::spawn(supervise(settings, target, tx, sink, cancel));
        Ok(ch)
    }

    /// True while a bind is up.
    pub fn is_bound(&self) -> bool {
        self.client.borrow().as_ref().is_some_and(|c| c.is_active())
    }

    async fn bound_client(&self) -> Option<Client> {
        let mut rx = self.client.clone();
        let wait = tokio::time::timeout(self.settings.response_timeout, async {
            loop {
                if let Some(c) = rx.borrow_and_update().clone()
                    && c.is_active()
                {
                    {
                        return Some(c);
                    }
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        });
        wait.await.ok().flatten()
    }

    fn build(&self, msg: &Outgoing) -> Result<Vec<SubmitSm>, SendError> {
        let bad = |what: &str| SendError::Permanent {
            code: format!("invalid_{what}"),
        };
        let source = msg
            .from
            .clone()
            .or_else(|| self.settings.default_source.clone())
            .unwrap_or_default();
        let (ston, snpi, saddr) = source_addr(&source);
        let saddr = COctetString::from_str(&saddr).map_err(|_| bad("from"))?;
        let daddr = COctetString::from_str(msg.to.digits()).map_err(|_| bad("to"))?;
        let seg = gsm::segment(&msg.text);
        let total = seg.parts.len();
        if total > 255 {
            return Err(bad("text_length"));
        }
        let reference = self
            .reference
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut out = Vec::with_capacity(total);
        for (i, part) in seg.parts.iter().enumerate() {
            let (esm, payload) = if total == 1 {
                (0u8, part.clone())
            } else {
                let mut p = gsm::udh(reference, total as u8, (i + 1) as u8).to_vec();
                p.extend_from_slice(part);
                (0x40u8, p)
            };
            let sm = SubmitSm::builder()
                .source_addr_ton(ston)
                .source_addr_npi(snpi)
                .source_addr(saddr.clone())
                .dest_addr_ton(Ton::International)
                .dest_addr_npi(Npi::Isdn)
                .destination_addr(daddr.clone())
                // EsmClass::default() is 0x08 in rusmpp 0.4: build it from the byte.
                .esm_class(EsmClass::from(esm))
                // Final receipt only (success or failure).
                .registered_delivery(RegisteredDelivery::from(0x01u8))
                .data_coding(DataCoding::from(seg.coding.data_coding()))
                .short_message(OctetString::from_vec(payload).map_err(|_| bad("text_length"))?)
                .push_tlv(MessageSubmissionRequestTlvValue::UserMessageReference(
                    UserMessageReference::new(msg.user_ref),
                ))
                .build();
            out.push(sm);
        }
        Ok(out)
    }
}

/// Source TON/NPI: `+digits` → international (1/1), other digits → unknown/ISDN (0/1),
/// anything else → alphanumeric (5/0). Per-connector overrides come with issue 3.
fn source_addr(s: &str) -> (Ton, Npi, String) {
    if let Some(d) = s.strip_prefix('+') {
        (Ton::International, Npi::Isdn, d.to_owned())
    } else if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        (Ton::Unknown, Npi::Isdn, s.to_owned())
    } else if s.is_empty() {
        (Ton::Unknown, Npi::Unknown, String::new())
    } else {
        (Ton::Alphanumeric, Npi::Unknown, s.to_owned())
    }
}

#[async_trait]
impl Channel for SmppChannel {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Sms
    }

    async fn send(&self, msg: &Outgoing) -> Result<(Vec<String>, String), SendError> {
        let pdus = self.build(msg)?;
        let client = self.bound_client().await.ok_or(SendError::Transient {
            code: "smpp:not_bound".into(),
            retry_after: Some(Duration::from_secs(1)),
        })?;
        let mut ids = Vec::with_capacity(pdus.len());
        for sm in pdus {
            let _permit = self
                .window
                .acquire()
                .await
                .map_err(|_| SendError::Transient {
                    code: "smpp:closing".into(),
                    retry_after: None,
                })?;
            metrics::gauge!("hermod_smpp_inflight").increment(1.0);
            let started = std::time::Instant::now();
            // Our own deadline too: a request in flight when the connection drops may
            // never be answered or failed by the client library.
            let deadline = self.settings.response_timeout + Duration::from_secs(1);
            let res = match tokio::time::timeout(deadline, client.submit_sm(sm)).await {
                Ok(r) => r,
                Err(_) => Err(rusmppc::error::Error::ConnectionClosed),
            };
            metrics::gauge!("hermod_smpp_inflight").decrement(1.0);
            metrics::histogram!("hermod_smpp_submit_seconds")
                .record(started.elapsed().as_secs_f64());
            match res {
                Ok(resp) => ids.push(resp.message_id().as_str().to_owned()),
                Err(rusmppc::error::Error::UnexpectedResponse { response }) => {
                    return Err(status::classify(u32::from(response.status())));
                }
                Err(e) => {
                    // Written but unanswered: the SMSC may have accepted it.
                    tracing::warn!(error = %e, attempt = %msg.attempt_id, "submit_sm unanswered");
                    return Err(SendError::InDoubt {
                        code: "smpp:no_response".into(),
                    });
                }
            }
        }
        Ok((ids, "ESME_ROK".into()))
    }
}

async fn supervise(
    settings: SmppSettings,
    target: Target,
    tx: watch::Sender<Option<Client>>,
    sink: Arc<dyn ReceiptSink>,
    cancel: CancellationToken,
) {
    let mut backoff = Duration::from_millis(200);
    while !cancel.is_cancelled() {
        match bind(&settings, &target).await {
            Ok((client, events)) => {
                tracing::info!(url = %target.connect_url, "SMPP bound");
                metrics::gauge!("hermod_smpp_bound").set(1.0);
                backoff = Duration::from_millis(200);
                let _ = tx.send(Some(client.clone()));
                serve(&client, events, &sink, &cancel).await;
                let _ = tx.send(None);
                metrics::gauge!("hermod_smpp_bound").set(0.0);
                if cancel.is_cancelled() {
                    let _ = tokio::time::timeout(Duration::from_secs(2), client.unbind()).await;
                    let _ = client.close().await;
                    break;
                }
                tracing::warn!("SMPP connection lost; reconnecting");
            }
            Err(e) => tracing::warn!(error = %e, "SMPP bind failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(settings.reconnect_max);
    }
}

async fn bind(
    settings: &SmppSettings,
    target: &Target,
) -> Result<(Client, impl futures::Stream<Item = Event> + Unpin + 'static), rusmppc::error::Error> {
    let (client, events, connection) = ConnectionBuilder::new()
        .enquire_link_interval(settings.enquire_link)
        .enquire_link_response_timeout(settings.response_timeout)
        .response_timeout(settings.response_timeout)
        .disable_interface_version_check()
        .no_spawn()
        .connect(&target.connect_url)
        .await?;
    tokio::spawn(drive(connection));
    client
        .bind_transceiver(
            BindTransceiver::builder()
                .system_id(cstr(&target.system_id))
                .password(cstr(&target.password))
                .system_type(cstr(&settings.system_type))
                .interface_version(InterfaceVersion::Smpp3_4)
                .addr_ton(Ton::Unknown)
                .addr_npi(Npi::Unknown)
                .address_range(COctetString::empty())
                .build(),
        )
        .await?;
    Ok((client, events))
}

/// Drives rusmppc's connection future, polling it again on a short tick.
///
/// rusmppc 0.4 handles at most 5 client requests and 5 writes per poll and then
/// returns `Pending` without re-arming a waker for the rest, so a burst of submits
/// with no incoming traffic after it would wait for the next enquire_link (seen as
/// submits stalling for tens of seconds). The tick bounds that wait to 2 ms.
async fn drive(connection: impl std::future::Future<Output = ()>) {
    let mut connection = std::pin::pin!(connection);
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            biased;
            () = &mut connection => return,
            _ = tick.tick() => {}
        }
    }
}

fn cstr<const MIN: usize, const MAX: usize>(s: &str) -> COctetString<MIN, MAX> {
    COctetString::from_str(s).unwrap_or_else(|_| COctetString::empty())
}

async fn serve(
    client: &Client,
    mut events: impl futures::Stream<Item = Event> + Unpin,
    sink: &Arc<dyn ReceiptSink>,
    cancel: &CancellationToken,
) {
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => return,
            ev = events.next() => ev,
        };
        let Some(ev) = ev else { return };
        let cmd = match ev {
            Event::Incoming(cmd) => cmd,
            Event::Error(e) => {
                tracing::warn!(error = %e, "SMPP connection error");
                continue;
            }
        };
        let seq = cmd.sequence_number();
        match cmd.pdu() {
            Some(Pdu::DeliverSm(d)) => match receipt_from(d) {
                Some(r) => {
                    let sink = sink.clone();
                    let c = client.clone();
                    // Acknowledge only once stored: a crash before that makes the SMSC
                    // deliver the receipt again.
                    tokio::spawn(async move {
                        let ok = sink.deliver(r).await;
                        let status = if ok {
                            CommandStatus::EsmeRok
                        } else {
                            CommandStatus::EsmeRxTAppn
                        };
                        let _ = c
                            .status(status)
                            .deliver_sm_resp(seq, DeliverSmResp::default())
                            .await;
                    });
                }
                None => {
                    // Inbound (MO) messages come with the SMPP production issue.
                    tracing::info!("inbound deliver_sm ignored");
                    let _ = client.deliver_sm_resp(seq, DeliverSmResp::default()).await;
                }
            },
            Some(Pdu::Unbind) => {
                let _ = client.unbind_resp(seq).await;
                return;
            }
            _ => {}
        }
    }
}

/// A delivery receipt from a deliver_sm, or `None` for an ordinary inbound message.
pub(crate) fn receipt_from(d: &DeliverSm) -> Option<Receipt> {
    let is_receipt = matches!(
        d.esm_class.message_type,
        MessageType::ShortMessageContainsMCDeliveryReceipt
            | MessageType::ShortMessageContainsIntermediateDeliveryNotification
    );
    if !is_receipt {
        return None;
    }
    let mut id = None;
    let mut state = None;
    let mut user_ref = None;
    for t in d.tlvs() {
        match t.value() {
            Some(TlvValue::ReceiptedMessageId(v)) => id = Some(v.as_str().to_owned()),
            Some(TlvValue::MessageState(s)) => state = Some(u8::from(*s)),
            Some(TlvValue::UserMessageReference(u)) => user_ref = Some(u.value),
            _ => {}
        }
    }
    let text = dlr::parse_text(&String::from_utf8_lossy(d.short_message().as_ref()));
    let id = id.or(text.id)?;
    let (status, raw) = match (state, &text.stat) {
        // The raw status comes from the same field as the decision.
        (Some(s), _) => {
            let (st, raw) = dlr::message_state_to_status(s);
            (st, raw.to_owned())
        }
        (None, Some(stat)) => (dlr::stat_to_status(stat), stat.clone()),
        (None, None) => return None,
    };
    Some(Receipt {
        channel: ChannelKind::Sms,
        provider_id: id,
        status,
        raw_status: raw,
        error_code: text.err,
        user_ref,
        recipient: Some(d.source_addr.as_str().to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smpp_url_carries_credentials() {
        let t = parse_url("smpps://acme%40eu:p%3Ass@smsc.example:3550").unwrap();
        assert_eq!(t.connect_url, "smpps://smsc.example:3550");
        assert_eq!(
            (t.system_id.as_str(), t.password.as_str()),
            ("acme@eu", "p:ss")
        );
        assert_eq!(
            parse_url("smpp://u:p@h").unwrap().connect_url,
            "smpp://h:2775"
        );
        assert!(parse_url("http://u:p@h").is_err());
    }

    fn dlr(text: &str, tlvs: Vec<rusmpp::tlvs::MessageDeliveryRequestTlvValue>) -> DeliverSm {
        DeliverSm::builder()
            .source_addr(COctetString::from_str("447911123456").unwrap())
            .esm_class(EsmClass::from(0x04u8))
            .short_message(OctetString::from_vec(text.as_bytes().to_vec()).unwrap())
            .tlvs(tlvs)
            .build()
    }

    #[test]
    fn receipt_from_text_only() {
        let r = receipt_from(&dlr(
            "id:7F3A sub:001 dlvrd:000 submit date:2311221200 done date:2311221205 stat:UNDELIV err:012 text:hi",
            vec![],
        ))
        .unwrap();
        assert_eq!(
            (r.provider_id.as_str(), r.status, r.raw_status.as_str()),
            ("7F3A", hermod_core::Status::Failed, "UNDELIV")
        );
        assert_eq!(r.error_code.as_deref(), Some("012"));
        assert_eq!(r.recipient.as_deref(), Some("447911123456"));
    }

    #[test]
    fn receipt_tlvs_win_over_text() {
        use rusmpp::tlvs::MessageDeliveryRequestTlvValue as V;
        let r = receipt_from(&dlr(
            "id:WRONG stat:ENROUTE",
            vec![
                V::ReceiptedMessageId(COctetString::from_str("abc").unwrap()),
                V::MessageState(rusmpp::values::MessageState::Delivered),
                V::UserMessageReference(UserMessageReference::new(77)),
            ],
        ))
        .unwrap();
        assert_eq!(
            (r.provider_id.as_str(), r.status, r.user_ref),
            ("abc", hermod_core::Status::Delivered, Some(77))
        );
    }

    #[test]
    fn ordinary_deliver_sm_is_not_a_receipt() {
        let mut d = dlr("id:1 stat:DELIVRD", vec![]);
        d.esm_class = EsmClass::from(0u8);
        assert!(receipt_from(&d).is_none());
    }

    #[test]
    fn source_address_types() {
        assert_eq!(source_addr("+4479").0, Ton::International);
        assert_eq!(source_addr("+4479").2, "4479");
        assert_eq!(source_addr("12345").0, Ton::Unknown);
        assert_eq!(source_addr("Hermod").0, Ton::Alphanumeric);
    }
}
