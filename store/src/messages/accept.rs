//! Group commit for accepted messages. Every `accept` goes to one committer task,
//! which takes whatever requests are waiting and stores them in one transaction, so
//! many concurrent single-message requests cost one commit instead of one each. If
//! that transaction fails, each request is retried alone, so one bad request cannot
//! fail the others.

use std::collections::HashMap;

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use diesel_async::RunQueryDsl;
use hermod_core::model::*;
use hermod_core::ports::{PortError, PortResult};
use hermod_core::{Status, TenantId, now_ms};
use tokio::sync::{mpsc, oneshot};

use std::sync::Arc;

use hermod_crypto::sha256_hex;
use hermod_crypto::vault::Vault;

use super::to_idem;
use crate::sql::batch::BatchInsert as _;
use crate::sql::chain::fact;
use crate::sql::common::{event_row, is_unique_violation};
use crate::sql::rows::*;
use crate::sql::schema::*;
use crate::sql::seal::{SubjectKeys as _, message_subject, open_idem_row, seal_idem, seal_message};
use crate::{Db, backend, write_op};

/// Requests taken into one transaction at most.
const MAX_REQUESTS: usize = 256;

struct Request {
    tenant: TenantId,
    msgs: Vec<NewMessage>,
    idem: Option<IdempotencyRecord>,
    done: oneshot::Sender<PortResult<AcceptOutcome>>,
}

/// Handle to the committer task; cheap to clone.
#[derive(Clone)]
pub(crate) struct Committer {
    tx: mpsc::Sender<Request>,
}

impl Committer {
    pub(crate) fn start(db: Db, vault: Arc<Vault>) -> Self {
        let (tx, rx) = mpsc::channel(MAX_REQUESTS * 4);
        tokio::spawn(run(db, vault, rx));
        Self { tx }
    }
}

pub(crate) async fn submit(
    c: &Committer,
    tenant: &TenantId,
    msgs: &[NewMessage],
    idem: Option<&IdempotencyRecord>,
) -> PortResult<AcceptOutcome> {
    let (done, rx) = oneshot::channel();
    let req = Request {
        tenant: tenant.clone(),
        msgs: msgs.to_vec(),
        idem: idem.cloned(),
        done,
    };
    let gone = || PortError::Unavailable("the accept committer stopped".into());
    c.tx.send(req).await.map_err(|_| gone())?;
    rx.await.map_err(|_| gone())?
}

async fn run(db: Db, vault: Arc<Vault>, mut rx: mpsc::Receiver<Request>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_REQUESTS {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        match commit(&db, &vault, &batch).await {
            Ok(outcomes) => {
                for (req, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = req.done.send(Ok(outcome));
                }
            }
            Err(_) if batch.len() > 1 => {
                for req in batch {
                    let res = commit(&db, &vault, std::slice::from_ref(&req)).await;
                    let _ = req.done.send(res.map(|mut v| v.remove(0)));
                }
            }
            Err(e) => {
                if let Some(req) = batch.pop() {
                    let _ = req.done.send(Err(e));
                }
            }
        }
    }
}

fn port_error(e: DieselError) -> PortError {
    if is_unique_violation(&e) {
        PortError::Conflict("a message id or idempotency key is already stored".into())
    } else {
        backend(e)
    }
}

/// Stores the requests in one transaction: messages, `accepted` events, dispatch jobs
/// and idempotency records; a key seen before (stored, or earlier in this batch)
/// answers `Replay` and stores nothing.
async fn commit(db: &Db, vault: &Arc<Vault>, reqs: &[Request]) -> PortResult<Vec<AcceptOutcome>> {
    let now = now_ms();
    let heads: Vec<(TenantId, Option<IdempotencyRecord>)> = reqs
        .iter()
        .map(|r| (r.tenant.clone(), r.idem.clone()))
        .collect();
    let vault = vault.clone();
    let mut per_req = Vec::with_capacity(reqs.len());
    for req in reqs {
        let (mut rows, mut evs, mut jobs_rows) = (Vec::new(), Vec::new(), Vec::new());
        for m in &req.msgs {
            let scheduled = m.send_at.is_some_and(|t| t > now);
            rows.push(MessageRow {
                id: m.id.to_string(),
                tenant_id: req.tenant.to_string(),
                to_number: m.to.as_str().to_owned(),
                from_addr: m.from.clone(),
                body: m.text.clone(),
                channels: serde_json::to_string(&m.channels).map_err(backend)?,
                ttl_secs: m.ttl_secs,
                metadata: m.metadata.as_ref().map(|v| v.to_string()),
                callback_url: m.callback_url.clone(),
                status: if scheduled {
                    Status::Scheduled
                } else {
                    Status::Accepted
                }
                .as_str()
                .to_owned(),
                created_at: m.created_at,
                updated_at: m.created_at,
                send_at: m.send_at,
                reason: None,
                content: m
                    .content
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(backend)?,
                user_id: m.user_id.clone(),
                plan: None,
                to_hash: Some(vault.lookup(m.to.as_str())),
                shredded_at: None,
                priority: i32::from(m.priority.is_high()),
                alert_key: m.alert.as_ref().map(|a| a.key.clone()),
                alert_status: m.alert.as_ref().map(|a| a.status.clone()),
                traffic_type: m.traffic_type.map(|t| t.as_str().to_owned()),
                twilio: m
                    .twilio
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(backend)?,
                smpp: m
                    .smpp
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(backend)?,
                callback_events: m
                    .callback_events
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(backend)?,
                fallback: m
                    .fallback
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(backend)?,
            });
            evs.push(event_row(
                m.id.as_str(),
                req.tenant.as_str(),
                Status::Accepted,
                None,
                None,
                m.created_at,
            ));
            if scheduled {
                evs.push(event_row(
                    m.id.as_str(),
                    req.tenant.as_str(),
                    Status::Scheduled,
                    None,
                    Some(match &m.deferred {
                        Some(reason) => {
                            serde_json::json!({ "send_at": m.send_at, "reason": reason })
                        }
                        None => serde_json::json!({ "send_at": m.send_at }),
                    }),
                    m.created_at,
                ));
            }
            let job = Job::DispatchV1 {
                message_id: m.id.to_string(),
                high: m.priority.is_high(),
            };
            // A scheduled message's dispatch job waits in the queue until its time.
            let at = m.send_at.map_or(now, |t| t.max(now));
            jobs_rows.push(NewJobRow::new(queues::DISPATCH, &job, at, now).map_err(backend)?);
        }
        per_req.push((rows, evs, jobs_rows));
    }
    write_op!(db, move |c| {
        let reqs = &heads;
        let vault: &Vault = &vault;
        // Numbers and bodies are sealed under their subject's data key.
        let pairs: Vec<(String, String)> = per_req
            .iter()
            .flat_map(|(rows, _, _)| rows.iter().filter_map(message_subject))
            .collect();
        let keys = c.ensure_keys(vault, &pairs, now).await?;
        let mut outcomes = Vec::with_capacity(reqs.len());
        let mut seen: HashMap<(&str, &str), &IdempotencyRecord> = HashMap::new();
        // Which requests' rows to keep: a replayed one stores nothing.
        let mut keep = Vec::with_capacity(reqs.len());
        for (i, (tenant, idem)) in reqs.iter().enumerate() {
            let Some(ir) = idem else {
                outcomes.push(AcceptOutcome::Accepted);
                keep.push(true);
                continue;
            };
            if let Some(first) = seen.get(&(tenant.as_str(), ir.key.as_str())) {
                outcomes.push(AcceptOutcome::Replay((*first).clone()));
                keep.push(false);
                continue;
            }
            let prior: Option<IdempotencyRow> = idempotency_keys::table
                .filter(idempotency_keys::tenant_id.eq(tenant.as_str()))
                .filter(idempotency_keys::key.eq(&ir.key))
                .select(IdempotencyRow::as_select())
                .first(c)
                .await
                .optional()?;
            if let Some(mut p) = prior {
                open_idem_row!(c, vault, p);
                outcomes.push(AcceptOutcome::Replay(to_idem(p)));
                keep.push(false);
                continue;
            }
            diesel::insert_into(idempotency_keys::table)
                .values(IdempotencyRow {
                    tenant_id: tenant.to_string(),
                    key: ir.key.clone(),
                    request_hash: ir.request_hash.clone(),
                    status_code: i32::from(ir.status_code),
                    // The response names recipients and bodies: sealed under the
                    // first recipient's key, naming every recipient for erasure.
                    body: match <[MessageRow]>::first(&per_req[i].0).and_then(message_subject) {
                        Some(pair) => match keys.get(&pair) {
                            Some((_, k)) => {
                                let mut subjects: Vec<&str> = per_req[i]
                                    .0
                                    .iter()
                                    .filter_map(|m| m.to_hash.as_deref())
                                    .collect();
                                subjects.dedup();
                                seal_idem(vault, &subjects, k, &ir.body)?
                            }
                            None => ir.body.clone(),
                        },
                        None => ir.body.clone(),
                    },
                    created_at: now,
                })
                .execute(c)
                .await?;
            seen.insert((tenant.as_str(), ir.key.as_str()), ir);
            outcomes.push(AcceptOutcome::Accepted);
            keep.push(true);
        }
        let (mut rows, mut evs, mut jobs_rows) = (Vec::new(), Vec::new(), Vec::new());
        for ((r, e, j), k) in per_req.into_iter().zip(&keep) {
            if *k {
                rows.extend(r);
                evs.extend(e);
                jobs_rows.extend(j);
            }
        }
        // The accepted fact carries digests of the ciphertext, never the plaintext.
        let mut facts = Vec::with_capacity(evs.len());
        for r in rows.iter_mut() {
            let pair = message_subject(r).unwrap_or_default();
            let (key_id, key) = keys
                .get(&pair)
                .ok_or_else(|| DieselError::QueryBuilderError("a data key is missing".into()))?;
            seal_message(vault, key, r)?;
            facts.push(fact(
                &r.tenant_id,
                r.created_at,
                "message.accepted",
                Some(&r.id),
                serde_json::json!({
                    "status": r.status,
                    "to": pair.1,
                    "key_id": key_id,
                    "body_sealed_sha256": sha256_hex(r.body.as_bytes()),
                    "content_sealed_sha256": r.content.as_deref().map(|c| sha256_hex(c.as_bytes())),
                    "channels": r.channels,
                }),
            ));
        }
        let others: Vec<NewEventRow> = evs
            .iter()
            .filter(|e| e.kind != "message.accepted")
            .cloned()
            .collect();
        facts.extend(crate::sql::chain::event_facts(&others));
        c.insert_messages(rows).await?;
        c.insert_events_audited(evs, facts).await?;
        c.insert_jobs(jobs_rows).await?;
        Ok::<_, DieselError>(outcomes)
    })
    .map_err(port_error)
}
