//! The audit log (public key, verification, on-demand checkpoints, JSON Lines export),
//! erasure of a subject, and the tenant's retention period.

use actix_web::{delete, get, post, put};
use std::collections::HashMap;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use hermod_core::audit::*;
use hermod_core::msisdn::Msisdn;
use hermod_core::now_ms;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::Tenant;
use crate::json::parse_json;
use crate::{ApiError, AppState};

pub use hermod_crypto::audit::verify_tenant;

/// Verifying a chain and signing a head read the whole log: a tenant's own budget.
fn spend(state: &AppState, tenant: &Tenant) -> Result<(), ApiError> {
    state
        .budgets
        .audit
        .check(tenant.0.as_str(), 1)
        .map_err(ApiError::RateLimited)
}

/// The audit log and the checkpoint signer of this process.
type Parts<'a> = (&'a Arc<dyn AuditLog>, &'a Arc<dyn CheckpointSigning>);

pub(crate) fn parts(state: &AppState) -> Result<Parts<'_>, ApiError> {
    match (&state.audit, &state.signer) {
        (Some(a), Some(s)) => Ok((a, s)),
        _ => Err(ApiError::NotFound(
            "the audit log is not available here".into(),
        )),
    }
}

#[derive(Serialize, ToSchema)]
pub struct PublicKeyResource {
    /// Always `Ed25519`.
    pub algorithm: String,
    pub key_id: String,
    /// The raw 32-byte public key, base64.
    pub public_key: String,
    /// What a checkpoint signature covers.
    pub signed_message: String,
}

/// `GET /v1/audit/public-key` (no API key needed).
#[utoipa::path(tag = "audit", security(()),
    responses((status = 200, body = PublicKeyResource, description = "the checkpoint signing key"), (status = 503, description = "no audit log on this server")))]
#[get("/v1/audit/public-key")]
pub async fn public_key(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let (_, signer) = parts(&state)?;
    Ok(HttpResponse::Ok().json(PublicKeyResource {
        algorithm: "Ed25519".into(),
        key_id: signer.key_id(),
        public_key: signer.public_key(),
        signed_message: "hermod-audit-checkpoint-v1\\n{tenant}\\n{seq}\\n{head_hash}\\n{at}".into(),
    }))
}

#[derive(Serialize, ToSchema)]
pub struct BreakResource {
    pub seq: i64,
    /// `changed`, `deleted`, `inserted`, `reordered`, `bad_signature` or
    /// `checkpoint_mismatch`.
    pub reason: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifyResource {
    pub tenant: String,
    pub ok: bool,
    pub entries: i64,
    pub checkpoints: i64,
    pub head_seq: i64,
    /// The first broken sequence number and why.
    pub broken: Option<BreakResource>,
}

pub fn verify_resource(r: &VerifyReport, head_seq: i64) -> VerifyResource {
    VerifyResource {
        tenant: r.tenant.clone(),
        ok: r.broken.is_none(),
        entries: r.entries,
        checkpoints: r.checkpoints,
        head_seq,
        broken: r.broken.map(|b| BreakResource {
            seq: b.seq,
            reason: b.reason.as_str().to_owned(),
        }),
    }
}

/// `GET /v1/audit/verify`: recomputes the caller's chain and checks every checkpoint.
#[utoipa::path(tag = "audit",
    responses((status = 200, body = VerifyResource, description = "the chain's state and its first break, if any"), (status = 401, description = "no valid API key"), (status = 429, description = "over `audit_rate_per_sec`")))]
#[get("/v1/audit/verify")]
pub async fn verify(state: web::Data<AppState>, tenant: Tenant) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(verify_chain(&state, &tenant).await?))
}

/// The tenant's chain recomputed (within its audit budget): the API's and the console's.
pub(crate) async fn verify_chain(
    state: &AppState,
    tenant: &Tenant,
) -> Result<VerifyResource, ApiError> {
    spend(state, tenant)?;
    let (log, signer) = parts(state)?;
    chain_all(log.as_ref()).await?;
    let t = tenant.0.to_string();
    let report = verify_tenant(log.as_ref(), signer.as_ref(), &t).await?;
    let head = log.audit_head(&t).await?.map_or(0, |h| h.0);
    Ok(verify_resource(&report, head))
}

/// `POST /v1/audit/checkpoints`: chains what is pending and signs the head now.
#[utoipa::path(tag = "audit",
    responses((status = 201, description = "the signed checkpoint: `{tenant, seq, head_hash, at, key_id, signature}`"), (status = 401, description = "no valid API key"), (status = 429, description = "over `audit_rate_per_sec`")))]
#[post("/v1/audit/checkpoints")]
pub async fn checkpoint(
    state: web::Data<AppState>,
    tenant: Tenant,
) -> Result<HttpResponse, ApiError> {
    spend(&state, &tenant)?;
    let (log, signer) = parts(&state)?;
    chain_all(log.as_ref()).await?;
    let t = tenant.0.to_string();
    let Some((seq, hash)) = log.audit_head(&t).await? else {
        return Err(ApiError::NotFound(
            "this tenant's audit log is empty".into(),
        ));
    };
    let c = signer.sign(&t, seq, &hash, now_ms());
    log.add_checkpoint(&c).await?;
    Ok(HttpResponse::Created().json(&c))
}

fn parse_seq(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().ok().filter(|n| *n >= 1).ok_or_else(|| {
        ApiError::field(
            name,
            format!("{name} must be a sequence number (1 or more)"),
        )
    })
}

/// `GET /v1/audit/export?from=&to=`: the caller's entries with sequence numbers in
/// `[from, to]` (default: all) and the checkpoints among them, as JSON Lines
/// (`hermod-audit-export-v1`), streamed page by page.
#[utoipa::path(tag = "audit",
    params(("from" = Option<i64>, Query, description = "first sequence number (default 1)"), ("to" = Option<i64>, Query, description = "last sequence number (default: the head)")),
    responses((status = 200, content_type = "application/x-ndjson", description = "JSON Lines: the entries and the checkpoints among them"), (status = 400, description = "`from` or `to` is not a sequence number"), (status = 401, description = "no valid API key")))]
#[get("/v1/audit/export")]
pub async fn export(
    state: web::Data<AppState>,
    tenant: Tenant,
    query: web::Query<HashMap<String, String>>,
) -> Result<HttpResponse, ApiError> {
    let (mut from, mut to) = (1i64, i64::MAX);
    for (k, v) in query.iter() {
        match k.as_str() {
            "from" => from = parse_seq("from", v)?,
            "to" => to = parse_seq("to", v)?,
            other => return Err(ApiError::unknown_param(other)),
        }
    }
    if to < from {
        return Err(ApiError::field("to", "to must not be below from"));
    }
    export_stream(&state, &tenant.0, from, to).await
}

/// The export of `tenant`'s entries `[from, to]` as a streamed JSON Lines response.
pub(crate) async fn export_stream(
    state: &AppState,
    tenant: &hermod_core::TenantId,
    from: i64,
    to: i64,
) -> Result<HttpResponse, ApiError> {
    let (log, signer) = parts(state)?;
    chain_all(log.as_ref()).await?;
    let t = tenant.to_string();
    let checkpoints = log.audit_checkpoints(&t, from, to).await?;
    let mut header = export_header(&t, &signer.public_key(), &signer.key_id());
    header["from"] = from.into();
    let log = log.clone();
    // State: the next sequence number to read, and whether the checkpoints went out.
    let body = futures::stream::unfold(
        (Some(header), from, Some(checkpoints)),
        move |(header, next, cps)| {
            let log = log.clone();
            let t = t.clone();
            async move {
                if let Some(h) = header {
                    return Some((Ok(line(&h)), (None, next, cps)));
                }
                if next <= to {
                    match log.audit_entries(&t, next, to, PAGE).await {
                        Ok(page) if !page.is_empty() => {
                            let last = page.last().map_or(next, |e| e.seq);
                            let mut buf = String::new();
                            for e in &page {
                                buf.push_str(&line(&export_entry(e)));
                            }
                            return Some((Ok(buf), (None, last.saturating_add(1), cps)));
                        }
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "audit export failed");
                            return Some((Err(ApiError::Internal(e)), (None, i64::MAX, None)));
                        }
                    }
                }
                let cps = cps?;
                let buf: String = cps.iter().map(|c| line(&export_checkpoint(c))).collect();
                Some((Ok(buf), (None, i64::MAX, None)))
            }
        },
    );
    let body = futures::StreamExt::map(body, |r: Result<String, ApiError>| {
        r.map(actix_web::web::Bytes::from)
    });
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(body))
}

fn line(v: &serde_json::Value) -> String {
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[derive(Serialize, ToSchema)]
pub struct ErasureResource {
    /// The number's keyed hash: what the audit log's `erasure` entry names.
    pub subject: String,
    pub key_destroyed: bool,
    pub messages: i64,
    pub canceled: i64,
}

/// `DELETE /v1/subjects/{number}`: crypto-shreds everything stored for a recipient.
#[utoipa::path(tag = "audit",
    params(("number" = String, Path, description = "the recipient, E.164")),
    responses((status = 200, body = ErasureResource, description = "the subject's key is destroyed"), (status = 400, description = "not a phone number"), (status = 401, description = "no valid API key")))]
#[delete("/v1/subjects/{number}")]
pub async fn erase(
    state: web::Data<AppState>,
    tenant: Tenant,
    number: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (log, _) = parts(&state)?;
    let number =
        Msisdn::parse(&number).map_err(|e| ApiError::field("number", format!("number: {e}")))?;
    // The tenant's numbers: parts of the subject's replies to them are dropped.
    let mut ours: Vec<String> = state
        .senders
        .fixed()
        .iter()
        .filter(|s| s.tenant_id == tenant.0)
        .map(|s| s.sender.clone())
        .collect();
    if let Some(stored) = state.senders.store() {
        ours.extend(
            stored
                .list_senders(Some(&tenant.0))
                .await?
                .into_iter()
                .map(|s| s.sender),
        );
    }
    let out = log
        .erase_subject(tenant.0.as_str(), number.as_str(), &ours)
        .await?;
    Ok(HttpResponse::Ok().json(ErasureResource {
        subject: out.subject,
        key_destroyed: out.key_destroyed,
        messages: out.messages,
        canceled: out.canceled,
    }))
}

/// `PUT /v1/tenant/retention` body.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetentionBody {
    /// Days message content is kept after it was accepted; `null` = forever.
    pub days: Option<i64>,
}

/// `GET /v1/tenant/retention`: how long the caller's message content is kept.
#[utoipa::path(tag = "audit",
    responses((status = 200, body = RetentionBody, description = "the retention period"), (status = 401, description = "no valid API key")))]
#[get("/v1/tenant/retention")]
pub async fn get_retention(
    state: web::Data<AppState>,
    tenant: Tenant,
) -> Result<HttpResponse, ApiError> {
    let (log, _) = parts(&state)?;
    let days = log.retention(tenant.0.as_str()).await?;
    Ok(HttpResponse::Ok().json(RetentionBody { days }))
}

/// `PUT /v1/tenant/retention`: sets it; content of messages past it is shredded.
#[utoipa::path(tag = "audit", request_body = RetentionBody,
    responses((status = 200, body = RetentionBody, description = "the new retention period"), (status = 400, description = "`days` is not 1 to 36500 or null"), (status = 401, description = "no valid API key")))]
#[put("/v1/tenant/retention")]
pub async fn put_retention(
    state: web::Data<AppState>,
    tenant: Tenant,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (log, _) = parts(&state)?;
    let b: RetentionBody = parse_json(&body)?;
    if let Some(d) = b.days
        && !(1..=36_500).contains(&d)
    {
        return Err(ApiError::field("days", "days must be 1 to 36500, or null"));
    }
    log.set_retention(tenant.0.as_str(), b.days).await?;
    Ok(HttpResponse::Ok().json(b))
}
