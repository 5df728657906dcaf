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
#[derive(Clone, Debug, PartialEq)]
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
    let brk = |seq, reason| Err(ChainBreak { seq, reason });
    let mut prev = genesis.to_owned();
    let mut expected = 1;
    for (i, e) in entries.iter().enumerate() {
        if e.seq > expected {
            return brk(expected, BreakReason::Deleted);
        }
        if e.seq < expected {
            return brk(e.seq, BreakReason::Reordered);
        }
        if e.prev_hash != prev {
            let later = entries[i + 1..].iter().any(|x| x.hash == e.prev_hash);
            let skips_previous = i > 0 && entries[i - 1].prev_hash == e.prev_hash;
            return if later {
                brk(e.seq, BreakReason::Reordered)
            } else if skips_previous {
                // The entry before this one was slipped in between.
                brk(e.seq - 1, BreakReason::Inserted)
            } else if i > 0 {
                // The previous entry was rewritten with a fresh hash.
                brk(e.seq - 1, BreakReason::Changed)
            } else {
                brk(e.seq, BreakReason::Changed)
            };
        }
        if hash(&e.prev_hash, e.canonical().as_bytes()) != e.hash {
            return brk(e.seq, BreakReason::Changed);
        }
        prev = e.hash.clone();
        expected += 1;
    }
    for c in checkpoints {
        if !signed(c) {
            return brk(c.seq, BreakReason::BadSignature);
        }
        let at = usize::try_from(c.seq - 1).ok().and_then(|i| entries.get(i));
        match at {
            Some(e) if e.hash == c.head_hash => {}
            // The chain is shorter than a signed head: entries were cut off the end.
            None if c.seq > 0 => return brk(expected, BreakReason::Deleted),
            _ => return brk(c.seq, BreakReason::CheckpointMismatch),
        }
    }
    Ok(())
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
