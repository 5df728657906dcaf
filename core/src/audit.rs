//! The tamper-evident audit log's model: entries, their canonical encoding, and the
//! verification that finds the first broken sequence number and why. The hashing and
//! signatures themselves are `hermod_crypto::audit` (passed in, so this crate stays
//! free of I/O and cryptography crates).
//!
//! Canonical encoding of an entry: the JSON object
//! `{"at": ms, "data": {...}, "kind": "...", "seq": n, "subject": "..." | null,
//! "tenant": "..."}` with object keys sorted (bytewise, at every level), no
//! whitespace, strings escaped as JSON requires and non-ASCII left as UTF-8, integers
//! only (no floats). That is what Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes.

use serde_json::Value;

use crate::error::PortResult;

/// One entry of a tenant's chain.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    pub tenant: String,
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    /// What it is about (a message id, an API key id ...), if anything.
    pub subject: Option<String>,
    /// Digests and ids only, never plaintext.
    pub data: Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEntry {
    /// The canonical bytes that are hashed.
    pub fn canonical(&self) -> String {
        canonical_json(&serde_json::json!({
            "tenant": self.tenant,
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "subject": self.subject,
            "data": self.data,
        }))
    }
}

/// A signed checkpoint of a tenant's chain head.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Checkpoint {
    pub tenant: String,
    pub seq: i64,
    pub head_hash: String,
    pub at: i64,
    pub key_id: String,
    pub signature: String,
}

/// Export lines (JSON Lines, `hermod-audit-export-v1`): a header, then each entry and
/// checkpoint as one object with a `type`. `scripts/audit_verify.py` checks them with
/// nothing but the published public key.
pub fn export_header(tenant: &str, public_key_b64: &str, key_id: &str) -> Value {
    serde_json::json!({
        "type": "header", "format": "hermod-audit-export-v1",
        "tenant": tenant, "public_key": public_key_b64, "key_id": key_id,
    })
}

pub fn export_entry(e: &AuditEntry) -> Value {
    serde_json::json!({
        "type": "entry", "tenant": e.tenant, "seq": e.seq, "at": e.at, "kind": e.kind,
        "subject": e.subject, "data": e.data, "prev_hash": e.prev_hash, "hash": e.hash,
    })
}

pub fn export_checkpoint(c: &Checkpoint) -> Value {
    serde_json::json!({
        "type": "checkpoint", "tenant": c.tenant, "seq": c.seq, "head_hash": c.head_hash,
        "at": c.at, "key_id": c.key_id, "signature": c.signature,
    })
}

/// JSON with sorted keys and no whitespace (see the module docs).
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Why a chain does not verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakReason {
    /// The entry's content no longer matches its hash, or a hash was recomputed.
    Changed,
    /// An entry is missing.
    Deleted,
    /// An entry that was not appended by Hermod sits here.
    Inserted,
    /// Entries are out of their original order.
    Reordered,
    /// A checkpoint's signature is not the configured key's.
    BadSignature,
    /// A checkpoint's head does not match the chain at its sequence number.
    CheckpointMismatch,
}

impl BreakReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BreakReason::Changed => "changed",
            BreakReason::Deleted => "deleted",
            BreakReason::Inserted => "inserted",
            BreakReason::Reordered => "reordered",
            BreakReason::BadSignature => "bad_signature",
            BreakReason::CheckpointMismatch => "checkpoint_mismatch",
        }
    }
}

/// The first place a chain breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainBreak {
    pub seq: i64,
    pub reason: BreakReason,
}

/// Verifies a chain page by page, so that a tenant's whole history need not fit in
/// memory: feed each page (ordered by `seq`) with the page after it as look-ahead, then
/// `finish` with the checkpoints.
pub struct ChainVerifier<H: Fn(&str, &[u8]) -> String> {
    hash: H,
    prev: String,
    /// The hash of the entry before the current page's first one.
    before_prev: Option<String>,
    expected: i64,
    /// Hashes at the sequence numbers checkpoints name.
    wanted: std::collections::HashMap<i64, Option<String>>,
    pub entries: i64,
}

impl<H: Fn(&str, &[u8]) -> String> ChainVerifier<H> {
    /// `genesis` is the first entry's `prev_hash`; `checkpoint_seqs` are the sequence
    /// numbers whose hashes `finish` compares with signed heads.
    pub fn new(genesis: &str, first_seq: i64, checkpoint_seqs: &[i64], hash: H) -> Self {
        Self {
            hash,
            prev: genesis.to_owned(),
            before_prev: None,
            expected: first_seq,
            wanted: checkpoint_seqs.iter().map(|s| (*s, None)).collect(),
            entries: 0,
        }
    }

    pub fn feed(
        &mut self,
        page: &[AuditEntry],
        lookahead: &[AuditEntry],
    ) -> Result<(), ChainBreak> {
        let brk = |seq, reason| Err(ChainBreak { seq, reason });
        for (i, e) in page.iter().enumerate() {
            if e.seq > self.expected {
                return brk(self.expected, BreakReason::Deleted);
            }
            if e.seq < self.expected {
                return brk(e.seq, BreakReason::Reordered);
            }
            if e.prev_hash != self.prev {
                let later = page[i + 1..]
                    .iter()
                    .chain(lookahead)
                    .any(|x| x.hash == e.prev_hash);
                let skips_previous = self.before_prev.as_deref() == Some(e.prev_hash.as_str());
                return if later {
                    brk(e.seq, BreakReason::Reordered)
                } else if skips_previous {
                    // The entry before this one was slipped in between.
                    brk(e.seq - 1, BreakReason::Inserted)
                } else if self.entries > 0 {
                    // The previous entry was rewritten with a fresh hash.
                    brk(e.seq - 1, BreakReason::Changed)
                } else {
                    brk(e.seq, BreakReason::Changed)
                };
            }
            if (self.hash)(&e.prev_hash, e.canonical().as_bytes()) != e.hash {
                return brk(e.seq, BreakReason::Changed);
            }
            if let Some(w) = self.wanted.get_mut(&e.seq) {
                *w = Some(e.hash.clone());
            }
            self.before_prev = Some(std::mem::replace(&mut self.prev, e.hash.clone()));
            self.expected += 1;
            self.entries += 1;
        }
        Ok(())
    }

    /// Checks each checkpoint's signature and that its head is the chain's hash there.
    pub fn finish(
        self,
        checkpoints: &[Checkpoint],
        signed: impl Fn(&Checkpoint) -> bool,
    ) -> Result<(), ChainBreak> {
        let brk = |seq, reason| Err(ChainBreak { seq, reason });
        for c in checkpoints {
            if !signed(c) {
                return brk(c.seq, BreakReason::BadSignature);
            }
            match self.wanted.get(&c.seq) {
                Some(Some(h)) if *h == c.head_hash => {}
                // The chain is shorter than a signed head: entries were cut off the end.
                _ if c.seq >= self.expected => return brk(self.expected, BreakReason::Deleted),
                _ => return brk(c.seq, BreakReason::CheckpointMismatch),
            }
        }
        Ok(())
    }
}

/// Verifies a tenant's entries (as read, ordered by `seq`) and its checkpoints.
/// `hash(prev_hash, canonical)` recomputes an entry's hash; `signed(checkpoint)` checks
/// a checkpoint's signature. `genesis` is the first entry's `prev_hash`.
pub fn verify_chain(
    entries: &[AuditEntry],
    checkpoints: &[Checkpoint],
    genesis: &str,
    hash: impl Fn(&str, &[u8]) -> String,
    signed: impl Fn(&Checkpoint) -> bool,
) -> Result<(), ChainBreak> {
    let seqs: Vec<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut v = ChainVerifier::new(genesis, 1, &seqs, hash);
    v.feed(entries, &[])?;
    v.finish(checkpoints, signed)
}

/// What a verification found for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub tenant: String,
    pub entries: i64,
    pub checkpoints: i64,
    pub broken: Option<ChainBreak>,
}

/// Entries read per page when verifying or exporting.
pub const PAGE: usize = 2000;

/// Reads a tenant's chain from `log` page by page and verifies it.
pub async fn verify_log(
    log: &dyn AuditLog,
    tenant: &str,
    genesis: &str,
    hash: &(dyn Fn(&str, &[u8]) -> String + Sync),
    signed: &(dyn Fn(&Checkpoint) -> bool + Sync),
) -> PortResult<VerifyReport> {
    let checkpoints = log.audit_checkpoints(tenant, 0, i64::MAX).await?;
    let seqs: Vec<i64> = checkpoints.iter().map(|c| c.seq).collect();
    let mut v = ChainVerifier::new(genesis, 1, &seqs, hash);
    let mut page = log.audit_entries(tenant, 0, i64::MAX, PAGE).await?;
    let mut broken = None;
    while !page.is_empty() {
        let after = page.last().map_or(0, |e| e.seq);
        let next = log.audit_entries(tenant, after + 1, i64::MAX, PAGE).await?;
        if let Err(b) = v.feed(&page, &next) {
            broken = Some(b);
            break;
        }
        page = next;
    }
    let entries = v.entries;
    if broken.is_none() {
        broken = v.finish(&checkpoints, signed).err();
    }
    Ok(VerifyReport {
        tenant: tenant.to_owned(),
        entries,
        checkpoints: i64::try_from(checkpoints.len()).unwrap_or(i64::MAX),
        broken,
    })
}

/// Facts chained per round when catching up.
pub const CHAIN_BATCH: usize = 5000;

/// Chains every pending fact.
pub async fn chain_all(log: &dyn AuditLog) -> PortResult<()> {
    while log.chain_pending(CHAIN_BATCH).await? == CHAIN_BATCH {}
    Ok(())
}

/// Signs every head that moved since its last checkpoint; returns how many.
pub async fn checkpoint_all(
    log: &dyn AuditLog,
    signer: &dyn CheckpointSigning,
) -> PortResult<usize> {
    let heads = log.heads_to_checkpoint().await?;
    for (tenant, seq, hash) in &heads {
        log.add_checkpoint(&signer.sign(tenant, *seq, hash, crate::now_ms()))
            .await?;
    }
    Ok(heads.len())
}

/// Signs checkpoints with the operator's Ed25519 key.
pub trait CheckpointSigning: Send + Sync {
    fn key_id(&self) -> String;
    /// Raw 32-byte public key, base64.
    fn public_key(&self) -> String;
    fn sign(&self, tenant: &str, seq: i64, head_hash: &str, at: i64) -> Checkpoint;
    fn verify(&self, c: &Checkpoint) -> bool;
}

/// What an erasure did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Erasure {
    /// The number's keyed hash (what the `erasure` entry names).
    pub subject: String,
    /// Whether a data key existed and was destroyed.
    pub key_destroyed: bool,
    pub messages: i64,
    /// Messages still on their way that were canceled.
    pub canceled: i64,
}

/// The audit chain, checkpoints, erasure and retention.
#[async_trait::async_trait]
pub trait AuditLog: Send + Sync {
    /// Chains up to `max` pending facts; returns how many (0 = none, or another
    /// process is chaining).
    async fn chain_pending(&self, max: usize) -> PortResult<usize>;
    /// Tenants that have a chain.
    async fn audit_tenants(&self) -> PortResult<Vec<String>>;
    /// `(seq, hash)` of a tenant's head.
    async fn audit_head(&self, tenant: &str) -> PortResult<Option<(i64, String)>>;
    /// Heads that moved since their last checkpoint: `(tenant, seq, hash)`.
    async fn heads_to_checkpoint(&self) -> PortResult<Vec<(String, i64, String)>>;
    async fn add_checkpoint(&self, c: &Checkpoint) -> PortResult<()>;
    /// Entries with `from <= seq <= to`, at most `limit`, in order.
    async fn audit_entries(
        &self,
        tenant: &str,
        from: i64,
        to: i64,
        limit: usize,
    ) -> PortResult<Vec<AuditEntry>>;
    async fn audit_checkpoints(
        &self,
        tenant: &str,
        from: i64,
        to: i64,
    ) -> PortResult<Vec<Checkpoint>>;
    /// Destroys the tenant's data key for `number`, cancels its messages in flight,
    /// removes what is not sealed under the key (parts of its replies to `ours`, the
    /// tenant's numbers, among them) and records an `erasure` fact.
    async fn erase_subject(
        &self,
        tenant: &str,
        number: &str,
        ours: &[String],
    ) -> PortResult<Erasure>;
    /// Sets (or clears) a tenant's retention period in days.
    async fn set_retention(&self, tenant: &str, days: Option<i64>) -> PortResult<()>;
    async fn retention(&self, tenant: &str) -> PortResult<Option<i64>>;
    /// Shreds the content of ended messages older than their tenant's retention;
    /// returns how many.
    async fn shred_expired(&self, max: usize) -> PortResult<usize>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // A stand-in hash for the chain logic (the real one is SHA-256 in crypto).
    fn h(prev: &str, body: &[u8]) -> String {
        let mut x: u64 = 1469598103934665603;
        for b in prev.as_bytes().iter().chain(body) {
            x = (x ^ u64::from(*b)).wrapping_mul(1099511628211);
        }
        format!("{x:016x}")
    }

    const G: &str = "genesis";

    fn chain(n: i64) -> Vec<AuditEntry> {
        let mut out: Vec<AuditEntry> = Vec::new();
        let mut prev = G.to_owned();
        for seq in 1..=n {
            let mut e = AuditEntry {
                tenant: "ten_1".into(),
                seq,
                at: 1000 + seq,
                kind: "message.sent".into(),
                subject: Some(format!("msg_{seq}")),
                data: json!({"digest": format!("d{seq}")}),
                prev_hash: prev.clone(),
                hash: String::new(),
            };
            e.hash = h(&prev, e.canonical().as_bytes());
            prev = e.hash.clone();
            out.push(e);
        }
        out
    }

    fn verify(e: &[AuditEntry]) -> Result<(), ChainBreak> {
        verify_chain(e, &[], G, h, |_| true)
    }

    fn rehash(e: &mut AuditEntry) {
        e.hash = h(&e.prev_hash, e.canonical().as_bytes());
    }

    #[test]
    fn canonical_json_sorts_keys_and_has_no_whitespace() {
        let v = json!({"b": [1, {"z": null, "a": "é\n\"x\""}], "a": true});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":true,"b":[1,{"a":"é\n\"x\"","z":null}]}"#
        );
    }

    #[test]
    fn pages_with_look_ahead_find_the_same_breaks() {
        let e = chain(50);
        let by_pages = |e: &[AuditEntry]| {
            let mut v = ChainVerifier::new(G, 1, &[], h);
            for (i, page) in e.chunks(7).enumerate() {
                let next = e.chunks(7).nth(i + 1).unwrap_or(&[]);
                v.feed(page, next)?;
            }
            v.finish(&[], |_| true)
        };
        assert_eq!(by_pages(&e), Ok(()));
        // A swap across a page boundary (entries 14 and 15 are on two pages).
        let mut swapped = e.clone();
        swapped.swap(13, 14);
        swapped[13].seq = 14;
        swapped[14].seq = 15;
        assert_eq!(by_pages(&swapped), verify(&swapped));
        assert_eq!(
            by_pages(&swapped).unwrap_err().reason,
            BreakReason::Reordered
        );
        // An entry deleted as the first of a page.
        let mut cut = e.clone();
        cut.remove(21);
        assert_eq!(by_pages(&cut), verify(&cut));
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(1000)), Ok(()));
        assert_eq!(verify(&[]), Ok(()));
    }

    #[test]
    fn a_changed_entry_is_found() {
        let mut c = chain(50);
        c[19].data = json!({"digest": "forged"});
        assert_eq!(
            verify(&c),
            Err(ChainBreak {
                seq: 20,
                reason: BreakReason::Changed
            })
        );
        // Rewritten with a fresh hash: the next entry's link gives it away.
        rehash(&mut c[19]);
        assert_eq!(
            verify(&c),
            Err(ChainBreak {
                seq: 20,
                reason: BreakReason::Changed
            })
        );
    }

    #[test]
    fn a_deleted_entry_is_found() {
        let mut c = chain(50);
        c.remove(29);
        assert_eq!(
            verify(&c),
            Err(ChainBreak {
                seq: 30,
                reason: BreakReason::Deleted
            })
        );
    }

    #[test]
    fn an_inserted_entry_is_found() {
        let mut c = chain(50);
        // Slipped in as 30, later entries renumbered, its own hash made consistent.
        let mut intruder = c[28].clone();
        intruder.seq = 30;
        intruder.subject = Some("msg_forged".into());
        intruder.prev_hash = c[28].hash.clone();
        rehash(&mut intruder);
        for e in &mut c[29..] {
            e.seq += 1;
        }
        c.insert(29, intruder);
        assert_eq!(
            verify(&c),
            Err(ChainBreak {
                seq: 30,
                reason: BreakReason::Inserted
            })
        );
    }

    #[test]
    fn reordered_entries_are_found() {
        let mut c = chain(50);
        // Two rows swap sequence numbers.
        c.swap(39, 40);
        let (a, b) = (c[39].seq, c[40].seq);
        c[39].seq = b;
        c[40].seq = a;
        assert_eq!(
            verify(&c),
            Err(ChainBreak {
                seq: 40,
                reason: BreakReason::Reordered
            })
        );
    }

    #[test]
    fn checkpoints_must_be_signed_and_match() {
        let c = chain(10);
        let cp = Checkpoint {
            tenant: "ten_1".into(),
            seq: 5,
            head_hash: c[4].hash.clone(),
            at: 0,
            key_id: "k".into(),
            signature: "s".into(),
        };
        assert_eq!(
            verify_chain(&c, std::slice::from_ref(&cp), G, h, |_| true),
            Ok(())
        );
        assert_eq!(
            verify_chain(&c, std::slice::from_ref(&cp), G, h, |_| false),
            Err(ChainBreak {
                seq: 5,
                reason: BreakReason::BadSignature
            })
        );
        let wrong = Checkpoint {
            head_hash: c[3].hash.clone(),
            ..cp.clone()
        };
        assert_eq!(
            verify_chain(&c, &[wrong], G, h, |_| true),
            Err(ChainBreak {
                seq: 5,
                reason: BreakReason::CheckpointMismatch
            })
        );
        // The tail cut off below a signed head.
        assert_eq!(
            verify_chain(&c[..3], &[cp], G, h, |_| true),
            Err(ChainBreak {
                seq: 4,
                reason: BreakReason::Deleted
            })
        );
    }
}
