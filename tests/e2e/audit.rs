//! The audit chain against an independent implementation: a chain built with Hermod's
//! SHA-256 chain and Ed25519 checkpoints is exported as JSON Lines and checked by
//! `scripts/audit_verify.py` (Python `hashlib` + `cryptography`), which must accept it
//! and name the first broken sequence number of a tampered copy.

use std::process::Command;

use base64::Engine;
use hermod_core::audit::*;
use hermod_crypto::audit::{CheckpointSigner, GENESIS, entry_hash, verify_checkpoint};
use serde_json::{Value, json};

const TENANT: &str = "ten_0123456789abcdef0123456789abcdef";

fn build(n: i64, signer: &CheckpointSigner) -> (Vec<AuditEntry>, Vec<Checkpoint>) {
    let mut entries: Vec<AuditEntry> = Vec::new();
    let mut checkpoints = Vec::new();
    let mut prev = GENESIS.to_owned();
    for seq in 1..=n {
        let mut e = AuditEntry {
            tenant: TENANT.into(),
            seq,
            at: 1_700_000_000_000 + seq,
            kind: ["message.accepted", "message.sent", "message.delivered"][(seq % 3) as usize]
                .into(),
            subject: Some(format!("msg_{seq:032x}")),
            // Digests only; a non-ASCII key id checks the UTF-8 handling on both sides.
            data: json!({"body_sha256": hermod_crypto::sha256_hex(format!("body {seq}").as_bytes()),
                          "key_id": "clé-1", "attempt": seq % 4}),
            prev_hash: prev.clone(),
            hash: String::new(),
        };
        e.hash = entry_hash(&prev, e.canonical().as_bytes());
        prev = e.hash.clone();
        if seq % 1000 == 0 {
            checkpoints.push(Checkpoint {
                tenant: TENANT.into(),
                seq,
                head_hash: e.hash.clone(),
                at: e.at,
                key_id: signer.key_id(),
                signature: signer.sign(TENANT, seq, &e.hash, e.at),
            });
        }
        entries.push(e);
    }
    (entries, checkpoints)
}

fn lines(
    entries: &[AuditEntry],
    checkpoints: &[Checkpoint],
    signer: &CheckpointSigner,
) -> Vec<Value> {
    let pk = base64::engine::general_purpose::STANDARD.encode(signer.public_key());
    let mut out = vec![export_header(TENANT, &pk, &signer.key_id())];
    out.extend(entries.iter().map(export_entry));
    out.extend(checkpoints.iter().map(export_checkpoint));
    out
}

/// Runs the Python verifier; None (loudly) where Python or `cryptography` is missing
/// outside CI.
pub(crate) fn python_verify(lines: &[Value], public_key: &[u8]) -> Option<(bool, String)> {
    let ok = Command::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("python3 with the cryptography package is required in CI");
        }
        eprintln!(
            "\n!!! SKIPPED the independent audit verifier: python3 + cryptography missing !!!\n"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("export.jsonl");
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/audit_verify.py"
        ))
        .arg(&path)
        .arg("--public-key")
        .arg(base64::engine::general_purpose::STANDARD.encode(public_key))
        .output()
        .unwrap();
    Some((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    ))
}

fn rust_verify(
    entries: &[AuditEntry],
    checkpoints: &[Checkpoint],
    pk: &[u8],
) -> Result<(), ChainBreak> {
    verify_chain(entries, checkpoints, GENESIS, entry_hash, |c| {
        verify_checkpoint(pk, &c.tenant, c.seq, &c.head_hash, c.at, &c.signature)
    })
}

#[test]
fn the_independent_verifier_accepts_a_chain_and_finds_tampering() {
    let signer =
        CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().unwrap()).unwrap();
    let pk = signer.public_key();
    let (entries, checkpoints) = build(3000, &signer);
    assert_eq!(rust_verify(&entries, &checkpoints, &pk), Ok(()));
    let Some((ok, out)) = python_verify(&lines(&entries, &checkpoints, &signer), &pk) else {
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("3000 entries, 3 checkpoints"), "{out}");

    // A changed row.
    let mut changed = entries.clone();
    changed[1233].data["body_sha256"] = json!("00");
    assert_eq!(
        rust_verify(&changed, &checkpoints, &pk).unwrap_err(),
        ChainBreak {
            seq: 1234,
            reason: BreakReason::Changed
        }
    );
    let (ok, out) = python_verify(&lines(&changed, &checkpoints, &signer), &pk).unwrap();
    assert!(!ok && out.contains("seq 1234: changed"), "{out}");

    // A deleted row.
    let mut deleted = entries.clone();
    deleted.remove(699);
    assert_eq!(
        rust_verify(&deleted, &checkpoints, &pk).unwrap_err(),
        ChainBreak {
            seq: 700,
            reason: BreakReason::Deleted
        }
    );
    let (ok, out) = python_verify(&lines(&deleted, &checkpoints, &signer), &pk).unwrap();
    assert!(!ok && out.contains("seq 700: deleted"), "{out}");

    // Two rows that swapped places.
    let mut swapped = entries.clone();
    swapped.swap(1999, 2000);
    swapped[1999].seq = 2000;
    swapped[2000].seq = 2001;
    assert_eq!(
        rust_verify(&swapped, &checkpoints, &pk).unwrap_err(),
        ChainBreak {
            seq: 2000,
            reason: BreakReason::Reordered
        }
    );
    let (ok, out) = python_verify(&lines(&swapped, &checkpoints, &signer), &pk).unwrap();
    assert!(!ok && out.contains("seq 2000: reordered"), "{out}");

    // A checkpoint signed with another key.
    let other = CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().unwrap()).unwrap();
    let mut forged = checkpoints.clone();
    forged[1].signature = other.sign(TENANT, forged[1].seq, &forged[1].head_hash, forged[1].at);
    assert_eq!(
        rust_verify(&entries, &forged, &pk).unwrap_err(),
        ChainBreak {
            seq: 2000,
            reason: BreakReason::BadSignature
        }
    );
    let (ok, out) = python_verify(&lines(&entries, &forged, &signer), &pk).unwrap();
    assert!(!ok && out.contains("seq 2000: bad_signature"), "{out}");
}
