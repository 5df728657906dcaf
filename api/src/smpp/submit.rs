//! submit_sm, data_sm and submit_multi as Hermod messages (concatenated parts stored
//! until the last one, then one message); query_sm, cancel_sm and replace_sm on them.
//! A submit is answered with the message id only once the message is committed.

use hermod_core::smpp::{PartKey, PartOutcome, SmppOrigin, SubmitPart, parse_smpp_time};
use hermod_core::{MessageId, Status, now_ms};
use rusmpp::Pdu;
use rusmpp::pdus::{
    CancelSm, DataSm, QuerySm, QuerySmResp, ReplaceSm, SubmitMulti, SubmitMultiResp, SubmitSm,
};
use rusmpp::tlvs::{Tlv, TlvValue};
use rusmpp::values::{DestAddress, MessageState, Npi, Ton, UnsuccessSme};

use super::Shared;
use super::pdu::{body, cstr, decode_text, is_binary, msisdn, sender, st, status, user_data};
use super::session::Bound;
use crate::ApiError;
use crate::messages::{Prep, SendMessage, rate_limit};

/// The fields a submit_sm, data_sm or one destination of a submit_multi carry.
pub(crate) struct Submission {
    source: String,
    source_ton: u8,
    source_npi: u8,
    dest: String,
    dest_ton: u8,
    esm_class: u8,
    registered_delivery: u8,
    priority_flag: u8,
    schedule: String,
    validity: String,
    data_coding: u8,
    short: Vec<u8>,
    tlvs: Vec<Tlv>,
}

impl Submission {
    pub(crate) fn of_submit_sm(sm: &SubmitSm) -> Self {
        Self {
            source: sm.source_addr.to_string(),
            source_ton: u8::from(sm.source_addr_ton),
            source_npi: u8::from(sm.source_addr_npi),
            dest: sm.destination_addr.to_string(),
            dest_ton: u8::from(sm.dest_addr_ton),
            esm_class: u8::from(sm.esm_class),
            registered_delivery: u8::from(sm.registered_delivery),
            priority_flag: u8::from(sm.priority_flag),
            schedule: sm.schedule_delivery_time.to_string(),
            validity: sm.validity_period.to_string(),
            data_coding: u8::from(sm.data_coding),
            short: sm.short_message().as_ref().to_vec(),
            tlvs: sm.tlvs().to_vec(),
        }
    }

    /// data_sm: no schedule or validity fields (a `qos_time_to_live` TLV gives the
    /// validity in seconds), the text in message_payload.
    pub(crate) fn of_data_sm(d: &DataSm) -> Self {
        let ttl = d.tlvs().iter().find_map(|t| match t.value() {
            Some(TlvValue::QosTimeToLive(s)) => Some(*s),
            _ => None,
        });
        Self {
            source: d.source_addr.to_string(),
            source_ton: u8::from(d.source_addr_ton),
            source_npi: u8::from(d.source_addr_npi),
            dest: d.destination_addr.to_string(),
            dest_ton: u8::from(d.dest_addr_ton),
            esm_class: u8::from(d.esm_class),
            registered_delivery: u8::from(d.registered_delivery),
            priority_flag: 0,
            schedule: String::new(),
            validity: ttl.map(|s| relative(i64::from(s))).unwrap_or_default(),
            data_coding: u8::from(d.data_coding),
            short: Vec::new(),
            tlvs: d.tlvs().to_vec(),
        }
    }
}

/// Seconds as a relative SMPP time.
fn relative(secs: i64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    format!(
        "0000{:02}{:02}{:02}{:02}000R",
        d.min(99),
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// An API error as the command status an SMPP client understands.
fn smpp_status(e: &ApiError) -> u32 {
    match e {
        ApiError::Invalid { field: Some(f), .. } => match f.as_str() {
            "to" => status::INVDSTADR,
            "from" => status::INVSRCADR,
            "send_at" => status::INVSCHED,
            "ttl" => status::INVEXPIRY,
            "text" => 0x01, // ESME_RINVMSGLEN
            _ => status::SUBMITFAIL,
        },
        ApiError::ForbiddenField { .. } => status::INVSRCADR,
        ApiError::RateLimited(_) | ApiError::QuotaExceeded { .. } => status::THROTTLED,
        ApiError::Suspended => status::SUSPENDED,
        ApiError::Unavailable(_) => status::MSGQFUL,
        _ => status::SUBMITFAIL,
    }
}

pub(crate) async fn submit(shared: &Shared, b: &Bound, s: &Submission) -> Result<String, u32> {
    let now = now_ms();
    // Message types only an SMSC sends (a delivery receipt, an intermediate
    // notification) are not for submitting; ESME acknowledgements are sent as messages.
    if matches!(s.esm_class & 0x3C, 0x04 | 0x20) {
        return Err(status::INVESMCLASS);
    }
    let ud = user_data(s.esm_class, s.data_coding, &s.short, &s.tlvs)?;
    let to = msisdn(&s.dest, s.dest_ton).ok_or(status::INVDSTADR)?;
    let send_at = parse_smpp_time(&s.schedule, now).map_err(|_| status::INVSCHED)?;
    let expires = parse_smpp_time(&s.validity, now).map_err(|_| status::INVEXPIRY)?;
    let ttl = match expires {
        Some(e) => {
            let secs = (e - send_at.unwrap_or(now).max(now)) / 1000;
            if secs <= 0 {
                return Err(status::INVEXPIRY);
            }
            Some(secs)
        }
        None => None,
    };
    let account = &b.target.account;
    let ((text, binary), id, rd, key) = match ud.concat {
        None => (
            body(ud.data_coding, &ud.bytes)?,
            None,
            s.registered_delivery,
            None,
        ),
        Some(c) => {
            // Checked now, decoded whole (a character may span two parts).
            if !is_binary(ud.data_coding) {
                decode_text(ud.data_coding, &[])?;
            }
            let key = PartKey {
                system_id: account.system_id.clone(),
                source: s.source.clone(),
                dest: to.clone(),
                reference: c.reference,
                total: c.total,
            };
            let part = SubmitPart {
                key: key.clone(),
                seq: c.seq,
                data_coding: ud.data_coding,
                bytes: ud.bytes,
                registered_delivery: s.registered_delivery,
                new_id: MessageId::generate().to_string(),
                at: now,
            };
            match shared.store.put_part(&part).await {
                Ok(PartOutcome::Waiting { message_id }) => {
                    return Ok(super::pdu::wire_id(&message_id).to_owned());
                }
                Ok(PartOutcome::Complete {
                    message_id,
                    parts,
                    registered_delivery,
                }) => {
                    let dcs = parts.first().map_or(ud.data_coding, |p| p.0);
                    let bytes: Vec<u8> = parts.into_iter().flat_map(|p| p.1).collect();
                    (
                        body(dcs, &bytes)?,
                        Some(message_id),
                        registered_delivery,
                        Some(key),
                    )
                }
                Err(e) => {
                    tracing::warn!(error = %e, "SMPP submit: parts not stored");
                    return Err(status::MSGQFUL);
                }
            }
        }
    };
    let origin = SmppOrigin {
        system_id: account.system_id.clone(),
        registered_delivery: rd & 0x03,
        source: s.source.clone(),
        source_ton: s.source_ton,
        source_npi: s.source_npi,
        binary,
    };
    let from = sender(&s.source, s.source_ton);
    let made = create(
        shared,
        b,
        &to,
        from,
        text,
        send_at,
        ttl,
        s.priority_flag,
        id,
        origin,
    )
    .await?;
    if let Some(k) = key
        && let Err(e) = shared.store.drop_parts(&k).await
    {
        tracing::warn!(error = %e, "SMPP submit: parts of a stored message not dropped");
    }
    Ok(made)
}

#[allow(clippy::too_many_arguments)]
async fn create(
    shared: &Shared,
    b: &Bound,
    to: &str,
    from: Option<String>,
    text: String,
    send_at: Option<i64>,
    ttl: Option<i64>,
    priority_flag: u8,
    id: Option<String>,
    origin: SmppOrigin,
) -> Result<String, u32> {
    let state = &shared.state;
    let tenant = &b.tenant.0;
    let now = now_ms();
    if text.is_empty() {
        return Err(0x01);
    }
    let mut v = serde_json::json!({ "to": to, "text": text });
    if let Some(f) = from {
        v["from"] = f.into();
    }
    if let Some(at) = send_at.filter(|a| *a > now) {
        v["send_at"] = hermod_core::rfc3339(at).into();
    }
    if let Some(t) = ttl {
        v["ttl"] = t.into();
    }
    if priority_flag >= 2 {
        v["priority"] = "high".into();
    }
    // Binary SMS: RCS and the app cannot carry it.
    if origin.binary.is_some() {
        v["channels"] = serde_json::json!(["sms"]);
    }
    let req: SendMessage = serde_json::from_value(v).map_err(|_| status::SUBMITFAIL)?;
    let mut prep = Prep::load(state, tenant)
        .await
        .map_err(|e| smpp_status(&e))?;
    let mut msg = prep
        .message(state, req, "", now)
        .await
        .map_err(|e| smpp_status(&e))?;
    if let Some(id) = &id {
        msg.id = MessageId::from_trusted(id.clone());
    }
    // Refused now, as SMSCs refuse a barred number, rather than failed later.
    if crate::messages::opted_out(state, &msg)
        .await
        .map_err(|_| status::MSGQFUL)?
    {
        return Err(status::OPTED_OUT);
    }
    msg.smpp = Some(origin);
    rate_limit(state, &b.tenant, 1)
        .await
        .map_err(|e| smpp_status(&e))?;
    match state
        .messages
        .accept(tenant, std::slice::from_ref(&msg), None)
        .await
    {
        Ok(_) => {
            metrics::counter!("hermod_messages_total", "stage" => "smpp", "status" => "accepted")
                .increment(1);
            Ok(super::pdu::wire_id(msg.id.as_str()).to_owned())
        }
        Err(e) => {
            // A last part sent again after a crash: the message may be stored already.
            if id.is_some()
                && let Ok(Some(_)) = state.messages.get_message(tenant, &msg.id).await
            {
                return Ok(super::pdu::wire_id(msg.id.as_str()).to_owned());
            }
            tracing::warn!(error = %e, "SMPP submit not stored");
            Err(status::MSGQFUL)
        }
    }
}

/// submit_multi: one message per SME destination; the response carries the first
/// stored message's id and the destinations that failed with their statuses.
pub(crate) async fn submit_multi(shared: &Shared, b: &Bound, m: &SubmitMulti) -> (u32, Pdu) {
    let mut first: Option<String> = None;
    let mut failed = Vec::new();
    if m.dest_address().is_empty() || m.dest_address().len() > 254 {
        return (
            status::INVNUMDESTS,
            Pdu::SubmitMultiResp(SubmitMultiResp::builder().build()),
        );
    }
    for d in m.dest_address() {
        let (ton, npi, addr) = match d {
            DestAddress::SmeAddress(a) => (
                u8::from(a.dest_addr_ton),
                u8::from(a.dest_addr_npi),
                a.destination_addr.to_string(),
            ),
            DestAddress::DistributionListName(_) => {
                failed.push(UnsuccessSme::new(
                    Ton::Unknown,
                    Npi::Unknown,
                    cstr(""),
                    st(status::INVDSTADR),
                ));
                continue;
            }
        };
        let s = Submission {
            source: m.source_addr.to_string(),
            source_ton: u8::from(m.source_addr_ton),
            source_npi: u8::from(m.source_addr_npi),
            dest: addr.clone(),
            dest_ton: ton,
            esm_class: u8::from(m.esm_class),
            registered_delivery: u8::from(m.registered_delivery),
            priority_flag: u8::from(m.priority_flag),
            schedule: m.schedule_delivery_time.to_string(),
            validity: m.validity_period.to_string(),
            data_coding: u8::from(m.data_coding),
            short: m.short_message().as_ref().to_vec(),
            tlvs: m.tlvs().to_vec(),
        };
        match submit(shared, b, &s).await {
            Ok(id) => {
                first.get_or_insert(id);
            }
            Err(code) => failed.push(UnsuccessSme::new(
                Ton::from(ton),
                Npi::from(npi),
                cstr(&addr),
                st(code),
            )),
        }
    }
    let code = if first.is_some() {
        status::OK
    } else {
        status::SUBMITFAIL
    };
    let resp = SubmitMultiResp::builder()
        .message_id(cstr(first.as_deref().unwrap_or("")))
        .unsuccess_sme(failed)
        .build();
    (code, Pdu::SubmitMultiResp(resp))
}

/// `YYMMDDhhmmss000+` (UTC) of a Unix ms time: query_sm_resp's final_date.
fn smpp_date(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(ms / 1000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:02}{:02}{:02}{:02}{:02}{:02}000+",
        t.year() % 100,
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn message_id(s: &str) -> Option<MessageId> {
    super::pdu::hermod_id(s)
}

pub(crate) async fn query(shared: &Shared, b: &Bound, q: &QuerySm) -> (u32, Pdu) {
    let id = q.message_id.to_string();
    let fail = || {
        (
            status::QUERYFAIL,
            Pdu::QuerySmResp(QuerySmResp::builder().message_id(cstr(&id)).build()),
        )
    };
    let Some(mid) = message_id(&id) else {
        return (
            status::INVMSGID,
            Pdu::QuerySmResp(QuerySmResp::builder().message_id(cstr(&id)).build()),
        );
    };
    let Ok(Some(view)) = shared.state.messages.get_message(&b.tenant.0, &mid).await else {
        return fail();
    };
    let m = &view.message;
    let state = hermod_core::smpp::message_state(m.status);
    let final_date = if m.status.is_final() || m.status == Status::Delivered {
        smpp_date(m.updated_at)
    } else {
        String::new()
    };
    let resp = QuerySmResp::builder()
        .message_id(cstr(&id))
        .final_date(
            rusmpp::types::EmptyOrFullCOctetString::from_string(final_date).unwrap_or_default(),
        )
        .message_state(MessageState::from(state))
        .error_code(u8::from(m.status == Status::Failed))
        .build();
    (status::OK, Pdu::QuerySmResp(resp))
}

pub(crate) async fn cancel(shared: &Shared, b: &Bound, c: &CancelSm) -> u32 {
    let Some(id) = message_id(&c.message_id.to_string()) else {
        // Canceling by source and destination alone is not offered.
        return status::CANCELFAIL;
    };
    match shared.state.messages.cancel_message(&b.tenant.0, &id).await {
        Ok(hermod_core::model::CancelOutcome::Canceled) => status::OK,
        Ok(_) => status::CANCELFAIL,
        Err(_) => status::SYSERR,
    }
}

/// replace_sm: a message still scheduled gets the new text (and times).
pub(crate) async fn replace(shared: &Shared, b: &Bound, r: &ReplaceSm) -> u32 {
    let now = now_ms();
    let Some(id) = message_id(&r.message_id.to_string()) else {
        return status::INVMSGID;
    };
    let bytes = match r.message_payload() {
        Some(p) => p.value.as_ref().to_vec(),
        None => r.short_message().as_ref().to_vec(),
    };
    // replace_sm has no data_coding: the SMSC default alphabet (GSM 03.38).
    let Ok(text) = decode_text(0, &bytes) else {
        return status::REPLACEFAIL;
    };
    if text.is_empty() {
        return status::REPLACEFAIL;
    }
    let Ok(send_at) = parse_smpp_time(&r.schedule_delivery_time.to_string(), now) else {
        return status::INVSCHED;
    };
    let Ok(expires) = parse_smpp_time(&r.validity_period.to_string(), now) else {
        return status::INVEXPIRY;
    };
    let ttl = expires.map(|e| ((e - send_at.unwrap_or(now).max(now)) / 1000).max(1));
    match shared
        .store
        .replace_scheduled(&b.tenant.0, &id, &text, send_at.filter(|a| *a > now), ttl)
        .await
    {
        Ok(true) => status::OK,
        Ok(false) => status::REPLACEFAIL,
        Err(_) => status::SYSERR,
    }
}
