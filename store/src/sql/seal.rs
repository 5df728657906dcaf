//! Content at rest: recipient numbers and bodies are sealed under their subject's
//! data key (`subject_keys`, one per tenant and number, wrapped by a master key) and
//! found by the number's HMAC. Rows whose key was destroyed read back empty.

use std::collections::HashMap;

use diesel::QueryResult;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hermod_crypto::vault::{DataKey, Vault, WrappedKey, is_sealed};

use super::batch::BatchInsert as _;
use super::conn::Lite;
use super::rows::*;
use super::schema::*;

/// Unwrapped data keys (with the id of the master key that wraps them) by
/// (tenant, subject hash).
pub(crate) type Keys = HashMap<(String, String), (String, DataKey)>;

pub(crate) const TO: &str = "messages.to_number";
pub(crate) const BODY: &str = "messages.body";
pub(crate) const CONTENT: &str = "messages.content";
pub(crate) const IN_FROM: &str = "inbound.from_number";
pub(crate) const IN_BODY: &str = "inbound.body";
pub(crate) const IN_PAYLOAD: &str = "inbound.payload";
pub(crate) const OPT_NUMBER: &str = "opt_outs.number";

/// The tenant scope of inbound messages no tenant could be found for.
pub(crate) const NO_TENANT: &str = "";

pub(crate) trait SubjectKeys {
    /// The stored keys of these subjects (missing = never created, or erased).
    async fn load_keys(&mut self, vault: &Vault, pairs: &[(String, String)]) -> QueryResult<Keys>;
    /// The keys of these subjects, creating the missing ones.
    async fn ensure_keys(
        &mut self,
        vault: &Vault,
        pairs: &[(String, String)],
        now: i64,
    ) -> QueryResult<Keys>;
}

fn unwrap_rows(vault: &Vault, rows: Vec<SubjectKeyRow>, keys: &mut Keys) {
    for r in rows {
        let w = WrappedKey {
            key_id: r.key_id,
            wrapped: r.wrapped,
        };
        match vault.unwrap(&w) {
            Ok(k) => {
                keys.insert((r.tenant_id, r.subject), (w.key_id, k));
            }
            // A key wrapped by a master key no longer configured: its content reads
            // back empty, like an erased one; say so once per batch.
            Err(e) => tracing::error!(error = %e, key_id = %w.key_id, "cannot unwrap a data key"),
        }
    }
}

macro_rules! subject_keys_impl {
    () => {
        async fn load_keys(
            &mut self,
            vault: &Vault,
            pairs: &[(String, String)],
        ) -> QueryResult<Keys> {
            let mut keys = Keys::new();
            if pairs.is_empty() {
                return Ok(keys);
            }
            let mut tenants: Vec<&str> = pairs.iter().map(|p| p.0.as_str()).collect();
            tenants.sort_unstable();
            tenants.dedup();
            let subjects: Vec<&str> = pairs.iter().map(|p| p.1.as_str()).collect();
            for chunk in subjects.chunks(500) {
                let rows: Vec<SubjectKeyRow> = subject_keys::table
                    .filter(subject_keys::tenant_id.eq_any(&tenants))
                    .filter(subject_keys::subject.eq_any(chunk))
                    .select(SubjectKeyRow::as_select())
                    .load(self)
                    .await?;
                unwrap_rows(vault, rows, &mut keys);
            }
            Ok(keys)
        }

        async fn ensure_keys(
            &mut self,
            vault: &Vault,
            pairs: &[(String, String)],
            now: i64,
        ) -> QueryResult<Keys> {
            let mut keys = self.load_keys(vault, pairs).await?;
            let mut missing: Vec<(String, String)> = pairs
                .iter()
                .filter(|p| !keys.contains_key(*p))
                .cloned()
                .collect();
            missing.sort_unstable();
            missing.dedup();
            if missing.is_empty() {
                return Ok(keys);
            }
            let mut rows = Vec::with_capacity(missing.len());
            let mut fresh = Vec::with_capacity(missing.len());
            for (t, s) in &missing {
                let (w, k) = vault
                    .new_data_key()
                    .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
                fresh.push(((t.clone(), s.clone()), (w.key_id.clone(), k)));
                rows.push(SubjectKeyRow {
                    tenant_id: t.clone(),
                    subject: s.clone(),
                    key_id: w.key_id,
                    wrapped: w.wrapped,
                    created_at: now,
                });
            }
            // Another transaction may have created some meanwhile: theirs win, and
            // then everyone reads back the stored ones.
            let n = rows.len();
            if self.insert_subject_keys(rows).await? == n {
                keys.extend(fresh);
            } else {
                keys.extend(self.load_keys(vault, &missing).await?);
            }
            Ok(keys)
        }
    };
}

impl SubjectKeys for AsyncPgConnection {
    subject_keys_impl!();
}

impl SubjectKeys for Lite {
    subject_keys_impl!();
}

/// The (tenant, subject) of a message row, if its content is sealed.
pub(crate) fn message_subject(m: &MessageRow) -> Option<(String, String)> {
    m.to_hash.clone().map(|h| (m.tenant_id.clone(), h))
}

/// A row's sealed fields, each with its name (the AAD): a number, a text, and an
/// optional payload.
struct Fields<'a> {
    number: (&'static str, &'a mut String),
    text: (&'static str, &'a mut String),
    extra: (&'static str, &'a mut Option<String>),
}

fn seal_fields(vault: &Vault, key: &DataKey, f: Fields<'_>) -> QueryResult<()> {
    let err = |e| diesel::result::Error::QueryBuilderError(Box::new(e));
    *f.number.1 = vault.seal(key, f.number.0, f.number.1).map_err(err)?;
    *f.text.1 = vault.seal(key, f.text.0, f.text.1).map_err(err)?;
    if let Some(x) = f.extra.1.as_deref() {
        *f.extra.1 = Some(vault.seal(key, f.extra.0, x).map_err(err)?);
    }
    Ok(())
}

/// Opens every field, or blanks every one when there is no key (erased, shredded) or
/// one does not open.
fn open_fields(key: Option<&DataKey>, f: Fields<'_>) {
    let opened = key.and_then(|k| {
        let number = k.open(f.number.0, f.number.1).ok()?;
        let text = k.open(f.text.0, f.text.1).ok()?;
        let extra = match f.extra.1.as_deref() {
            Some(x) => Some(k.open(f.extra.0, x).ok()?),
            None => None,
        };
        Some((number, text, extra))
    });
    let (number, text, extra) = opened.unwrap_or_default();
    *f.number.1 = number;
    *f.text.1 = text;
    *f.extra.1 = extra;
}

fn message_fields(m: &mut MessageRow) -> Fields<'_> {
    Fields {
        number: (TO, &mut m.to_number),
        text: (BODY, &mut m.body),
        extra: (CONTENT, &mut m.content),
    }
}

fn inbound_fields(r: &mut InboundRow) -> Fields<'_> {
    Fields {
        number: (IN_FROM, &mut r.from_number),
        text: (IN_BODY, &mut r.body),
        extra: (IN_PAYLOAD, &mut r.payload),
    }
}

/// Opens a message row's sealed fields in place. Without its key (erased, shredded)
/// they read back empty.
pub(crate) fn open_message(keys: &Keys, m: &mut MessageRow) {
    let Some(pair) = message_subject(m) else {
        return;
    };
    if !is_sealed(&m.to_number) && !is_sealed(&m.body) {
        return;
    }
    open_fields(keys.get(&pair).map(|(_, k)| k), message_fields(m));
}

/// Seals a new message row's number, body and rich content.
pub(crate) fn seal_message(vault: &Vault, key: &DataKey, m: &mut MessageRow) -> QueryResult<()> {
    seal_fields(vault, key, message_fields(m))
}

/// Loads the keys of the message rows `$rows` yields (`&mut MessageRow`, an
/// expression evaluated twice) and opens them: one query for the batch. `$map` turns
/// the query error into the caller's error type.
macro_rules! open_messages {
    ($c:expr, $vault:expr, $rows:expr) => {
        open_messages!($c, $vault, $rows, |e| e)
    };
    ($c:expr, $vault:expr, $rows:expr, $map:expr) => {{
        use $crate::sql::seal::SubjectKeys as _;
        let pairs: Vec<(String, String)> = $rows
            .filter_map(|m: &mut $crate::sql::rows::MessageRow| {
                $crate::sql::seal::message_subject(m)
            })
            .collect();
        let keys = $c.load_keys($vault, &pairs).await.map_err($map)?;
        for m in $rows {
            $crate::sql::seal::open_message(&keys, m);
        }
    }};
}
pub(crate) use open_messages;

/// The subject of an inbound row.
pub(crate) fn inbound_subject(r: &InboundRow) -> Option<(String, String)> {
    r.from_hash.clone().map(|h| {
        (
            r.tenant_id.clone().unwrap_or_else(|| NO_TENANT.to_owned()),
            h,
        )
    })
}

pub(crate) fn seal_inbound(vault: &Vault, key: &DataKey, r: &mut InboundRow) -> QueryResult<()> {
    seal_fields(vault, key, inbound_fields(r))
}

pub(crate) fn open_inbound(keys: &Keys, r: &mut InboundRow) {
    let Some(pair) = inbound_subject(r) else {
        return;
    };
    open_fields(keys.get(&pair).map(|(_, k)| k), inbound_fields(r));
}

pub(crate) const IDEM: &str = "idempotency.body";

/// A stored idempotent response: `<subject>[,<subject>…]:<sealed>`, sealed under the
/// first subject's key (so it is shredded with it) and naming every recipient's
/// subject, so that erasing any of them finds it.
pub(crate) fn seal_idem(
    vault: &Vault,
    subjects: &[&str],
    key: &DataKey,
    body: &str,
) -> QueryResult<String> {
    let sealed = vault
        .seal(key, IDEM, body)
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    Ok(format!("{}:{sealed}", subjects.join(",")))
}

/// The subject whose key seals a stored idempotent response, and the sealed part, if
/// it is sealed.
pub(crate) fn idem_parts(stored: &str) -> Option<(&str, &str)> {
    let (subjects, rest) = stored.split_once(':')?;
    let first = subjects.split(',').next()?;
    (first.len() == 64 && is_sealed(rest)).then_some((first, rest))
}

/// The body a replay answers with once the subject was erased.
pub(crate) const ERASED_BODY: &str = r#"{"erased":true}"#;

/// Opens an idempotency row's body in place (`$c` a connection, `$row` mutable).
macro_rules! open_idem_row {
    ($c:expr, $vault:expr, $row:expr) => {
        open_idem_row!($c, $vault, $row, |e| e)
    };
    ($c:expr, $vault:expr, $row:expr, $map:expr) => {{
        use $crate::sql::seal::SubjectKeys as _;
        if let Some((subject, sealed)) = $crate::sql::seal::idem_parts(&$row.body) {
            let pair = ($row.tenant_id.clone(), subject.to_owned());
            let keys = $c
                .load_keys($vault, std::slice::from_ref(&pair))
                .await
                .map_err($map)?;
            let opened = keys
                .get(&pair)
                .and_then(|(_, k)| k.open($crate::sql::seal::IDEM, sealed).ok());
            $row.body = opened.unwrap_or_else(|| $crate::sql::seal::ERASED_BODY.to_owned());
        }
    }};
}
pub(crate) use open_idem_row;
