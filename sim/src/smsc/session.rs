//! One ESME's session: binds (credentials, versions), submit_sm answered with an id
//! (or throttled, lost, dropped), receipts pumped to receiver binds and kept until
//! acknowledged, inbound messages injected.

#[allow(unused_imports)]
use super::*;

impl Smsc {
    pub(super) fn push_receipt(&self, system_id: &str, dlr: DeliverSm, front: bool) {
        if let Ok(mut p) = self.state.pending.lock() {
            let q = p.entry(system_id.to_owned()).or_default();
            if front {
                q.push_front(dlr)
            } else {
                q.push_back(dlr)
            }
        }
        self.state.pending_notify.notify_waiters();
    }

    pub(super) fn pop_receipt(&self, system_id: &str) -> Option<DeliverSm> {
        self.state
            .pending
            .lock()
            .ok()?
            .get_mut(system_id)?
            .pop_front()
    }

    pub(super) async fn session<S>(self, sock: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let dropped = match self.drop_all.lock() {
            Ok(t) => t.clone(),
            Err(_) => return,
        };
        let (mut sink, mut stream) = Framed::new(sock, CommandCodec::new()).split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Command>();
        // Dropping connections, the simulator writes like a busy SMSC: responses are
        // flushed every few milliseconds, so a drop loses the ones not yet written.
        let batch_writes = self.cfg.drop_every > 0;
        let writer = tokio::spawn(async move {
            if !batch_writes {
                while let Some(cmd) = out_rx.recv().await {
                    if sink.send(cmd).await.is_err() {
                        break;
                    }
                }
                return;
            }
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    cmd = out_rx.recv() => match cmd {
                        Some(cmd) => if sink.feed(cmd).await.is_err() { break },
                        None => {
                            let _ = sink.flush().await;
                            break;
                        }
                    },
                    _ = tick.tick() => if sink.flush().await.is_err() { break },
                }
            }
        });
        let session_end = CancellationToken::new();
        let waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<CommandStatus>>>> = Arc::default();
        let seq = Arc::new(AtomicU32::new(1));
        let mut bound: Option<(String, bool)> = None; // (system_id, may submit)
        let mut abandon = false;
        loop {
            let next = tokio::select! {
                _ = dropped.cancelled() => break,
                n = stream.next() => n,
            };
            let Some(Ok(cmd)) = next else { break };
            let s = cmd.sequence_number();
            let reply = |status: CommandStatus, pdu: Pdu| {
                let _ = out_tx.send(Command::new(status, s, pdu));
            };
            match cmd.pdu() {
                Some(
                    p @ (Pdu::BindTransmitter(_) | Pdu::BindReceiver(_) | Pdu::BindTransceiver(_)),
                ) => {
                    let (sid, pw, tx, rx) = match p {
                        Pdu::BindTransmitter(b) => {
                            (b.system_id.as_str(), b.password.as_str(), true, false)
                        }
                        Pdu::BindReceiver(b) => {
                            (b.system_id.as_str(), b.password.as_str(), false, true)
                        }
                        Pdu::BindTransceiver(b) => {
                            (b.system_id.as_str(), b.password.as_str(), true, true)
                        }
                        _ => continue,
                    };
                    let sid = sid.to_owned();
                    let ok = self
                        .cfg
                        .credentials
                        .as_ref()
                        .is_none_or(|(u, w)| u == &sid && w == pw);
                    let status = if bound.is_some() {
                        CommandStatus::EsmeRalybnd
                    } else if self.state.refuse_binds.load(Ordering::Relaxed) {
                        CommandStatus::EsmeRbindfail
                    } else if ok {
                        CommandStatus::EsmeRok
                    } else {
                        CommandStatus::EsmeRbindfail
                    };
                    let me: COctetString<1, 16> = COctetString::from_str_lossy("hermod-sim");
                    let pdu = match p {
                        Pdu::BindTransmitter(_) => Pdu::BindTransmitterResp(
                            BindTransmitterResp::builder().system_id(me).build(),
                        ),
                        Pdu::BindReceiver(_) => {
                            Pdu::BindReceiverResp(BindReceiverResp::builder().system_id(me).build())
                        }
                        _ => Pdu::BindTransceiverResp(
                            BindTransceiverResp::builder().system_id(me).build(),
                        ),
                    };
                    reply(status, pdu);
                    if status == CommandStatus::EsmeRok {
                        self.state.binds.fetch_add(1, Ordering::Relaxed);
                        bound = Some((sid.clone(), tx));
                        if rx {
                            tokio::spawn(self.clone().pump(
                                sid,
                                out_tx.clone(),
                                waiting.clone(),
                                seq.clone(),
                                session_end.clone(),
                            ));
                        }
                    }
                }
                Some(Pdu::SubmitSm(sm)) => match &bound {
                    Some((sid, true)) => {
                        let sid = sid.clone();
                        if !self.cfg.submit_delay.is_zero() {
                            tokio::time::sleep(self.cfg.submit_delay).await;
                        }
                        match self.on_submit(&sid, sm, s, &out_tx) {
                            Answer::Sent => {}
                            Answer::Lost => break,
                            Answer::Dropped => {
                                abandon = true;
                                break;
                            }
                        }
                    }
                    _ => reply(CommandStatus::EsmeRinvbndsts, Pdu::GenericNack),
                },
                Some(Pdu::DeliverSmResp(_)) => {
                    if let Some(w) = waiting.lock().ok().and_then(|mut m| m.remove(&s)) {
                        let _ = w.send(cmd.status());
                    }
                }
                Some(Pdu::EnquireLink) => reply(CommandStatus::EsmeRok, Pdu::EnquireLinkResp),
                Some(Pdu::Unbind) => {
                    reply(CommandStatus::EsmeRok, Pdu::UnbindResp);
                    break;
                }
                Some(Pdu::EnquireLinkResp) | Some(Pdu::GenericNack) | Some(Pdu::UnbindResp) => {}
                _ => reply(CommandStatus::EsmeRinvcmdid, Pdu::GenericNack),
            }
        }
        // Receipts sent on this connection but not acknowledged go back to the queue
        // (their waiters watch this token).
        session_end.cancel();
        drop(out_tx);
        let mut writer = writer;
        if abandon {
            writer.abort();
            return;
        }
        if tokio::time::timeout(Duration::from_secs(1), &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    }

    pub(super) fn on_submit(
        &self,
        system_id: &str,
        sm: &SubmitSm,
        seq: u32,
        out: &mpsc::UnboundedSender<Command>,
    ) -> Answer {
        let seen = self.state.submits_seen.fetch_add(1, Ordering::Relaxed) + 1;
        if self.cfg.drop_every > 0 && seen.is_multiple_of(self.cfg.drop_every) {
            self.state.dropped.fetch_add(1, Ordering::Relaxed);
            return Answer::Dropped;
        }
        let permille = self.state.throttle_permille.load(Ordering::Relaxed);
        if permille > 0 && rand::random_range(0..1000) < permille {
            self.state.throttled.fetch_add(1, Ordering::Relaxed);
            let _ = out.send(Command::new(
                CommandStatus::EsmeRthrottled,
                seq,
                Pdu::GenericNack,
            ));
            return Answer::Sent;
        }
        let fail = self.state.fail_status.load(Ordering::Relaxed);
        if fail != 0 {
            let _ = out.send(Command::new(
                CommandStatus::from(fail),
                seq,
                SubmitSmResp::builder().build(),
            ));
            return Answer::Sent;
        }
        let dest = sm.destination_addr.as_str().to_owned();
        if dest.is_empty() {
            let _ = out.send(Command::new(
                CommandStatus::EsmeRinvdstadr,
                seq,
                SubmitSmResp::builder().build(),
            ));
            return Answer::Sent;
        }
        let n = self.state.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let message_id = format!("{n:010X}");
        let user_ref = sm.tlvs().iter().find_map(|t| match t.value() {
            Some(TlvValue::UserMessageReference(u)) => Some(u.value),
            _ => None,
        });
        let short: Vec<u8> = sm.short_message().as_ref().to_vec();
        let rec = Submitted {
            system_id: system_id.to_owned(),
            message_id: message_id.clone(),
            source: sm.source_addr.as_str().to_owned(),
            destination: dest.clone(),
            data_coding: u8::from(sm.data_coding),
            esm_class: u8::from(sm.esm_class),
            short_message: short.clone(),
            user_ref,
            validity_period: sm.validity_period.as_str().to_owned(),
            source_ton: u8::from(sm.source_addr_ton),
            source_npi: u8::from(sm.source_addr_npi),
        };
        if let Ok(mut v) = self.state.submitted.lock() {
            v.push(rec);
        }
        let lose = self
            .state
            .lose_responses
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !lose {
            let resp = SubmitSmResp::builder()
                .message_id(COctetString::from_str_lossy(&message_id))
                .build();
            let _ = out.send(Command::new(CommandStatus::EsmeRok, seq, resp));
        }
        let answer = if lose { Answer::Lost } else { Answer::Sent };
        if u8::from(sm.registered_delivery) & 0x03 == 0 {
            return answer;
        }
        let undeliv = self
            .cfg
            .undeliverable_prefix
            .as_ref()
            .is_some_and(|p| dest.starts_with(p.as_str()));
        let dlr = receipt(
            self.cfg.receipt_style,
            n,
            &message_id,
            sm,
            &short,
            user_ref,
            undeliv,
        );
        let me = self.clone();
        let sid = system_id.to_owned();
        let delay = self.cfg.dlr_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            me.push_receipt(&sid, dlr, false);
        });
        answer
    }

    /// Sends waiting receipts to one receiver bind, `dlr_window` at a time.
    pub(super) async fn pump(
        self,
        system_id: String,
        out: mpsc::UnboundedSender<Command>,
        waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<CommandStatus>>>>,
        seq: Arc<AtomicU32>,
        end: CancellationToken,
    ) {
        let window = Arc::new(tokio::sync::Semaphore::new(self.cfg.dlr_window.max(1)));
        loop {
            let permit = tokio::select! {
                _ = end.cancelled() => return,
                p = window.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            let dlr = loop {
                let notified = self.state.pending_notify.notified();
                if let Some(d) = self.pop_receipt(&system_id) {
                    break d;
                }
                tokio::select! {
                    _ = end.cancelled() => return,
                    _ = notified => {}
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            };
            let s = seq.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            if let Ok(mut m) = waiting.lock() {
                m.insert(s, tx);
            }
            if out
                .send(Command::new(CommandStatus::EsmeRok, s, dlr.clone()))
                .is_err()
            {
                self.push_receipt(&system_id, dlr, true);
                return;
            }
            let me = self.clone();
            let sid = system_id.clone();
            let end = end.clone();
            let waiting = waiting.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // Acknowledged OK, or back to the queue: on an error status, after 30 s
                // without an answer, or when the session ends first.
                let ok = tokio::select! {
                    biased;
                    r = rx => matches!(r, Ok(CommandStatus::EsmeRok)),
                    _ = end.cancelled() => false,
                    _ = tokio::time::sleep(Duration::from_secs(30)) => false,
                };
                if let Ok(mut m) = waiting.lock() {
                    m.remove(&s);
                }
                if !ok {
                    me.push_receipt(&sid, dlr, true);
                }
            });
        }
    }
}
