//! The audit log's primitives: the SHA-256 hash chain and Ed25519-signed checkpoints
//! (ring). The canonical encoding of entries lives in `hermod_core::audit`.
//!
//! - entry hash = lower-case hex SHA-256 of `"hermod-audit-v1\n" + prev_hash + "\n" +
//!   canonical_entry_json`, where the first entry's `prev_hash` is 64 zeros;
//! - checkpoint message = `"hermod-audit-checkpoint-v1\n" + tenant + "\n" + seq + "\n" +
//!   head_hash + "\n" + at_ms`, signed with Ed25519; the signature is base64 (standard).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hermod_core::audit::{AuditLog, Checkpoint, CheckpointSigning, VerifyReport, verify_log};
use hermod_core::ports::PortResult;
use ring::signature::{self, Ed25519KeyPair, KeyPair};
use ring::{digest, rand};

/// The `prev_hash` of a tenant's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry whose canonical encoding is `canonical`, after `prev_hash`.
pub fn entry_hash(prev_hash: &str, canonical: &[u8]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(b"hermod-audit-v1\n");
    ctx.update(prev_hash.as_bytes());
    ctx.update(b"\n");
    ctx.update(canonical);
    hex::encode(ctx.finish().as_ref())
}

/// The bytes a checkpoint signs.
pub fn checkpoint_message(tenant: &str, seq: i64, head_hash: &str, at_ms: i64) -> String {
    format!("hermod-audit-checkpoint-v1\n{tenant}\n{seq}\n{head_hash}\n{at_ms}")
}

#[derive(Debug, thiserror::Error)]
pub enum AuditKeyError {
    #[error("the audit signing key is not an Ed25519 PKCS#8 document")]
    BadKey,
    #[error("no randomness")]
    Rng,
}

/// The operator's checkpoint signing key.
pub struct CheckpointSigner {
    key: Ed25519KeyPair,
}

impl CheckpointSigner {
    /// A new key as PKCS#8 (DER), to be stored by the operator.
    pub fn generate_pkcs8() -> Result<Vec<u8>, AuditKeyError> {
        Ed25519KeyPair::generate_pkcs8(&rand::SystemRandom::new())
            .map(|d| d.as_ref().to_vec())
            .map_err(|_| AuditKeyError::Rng)
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, AuditKeyError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map(|key| Self { key })
            .map_err(|_| AuditKeyError::BadKey)
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    /// A short id of the public key: the first 16 hex digits of its SHA-256.
    pub fn key_id(&self) -> String {
        key_id(self.key.public_key().as_ref())
    }

    /// The base64 signature of a checkpoint.
    pub fn sign(&self, tenant: &str, seq: i64, head_hash: &str, at_ms: i64) -> String {
        let msg = checkpoint_message(tenant, seq, head_hash, at_ms);
        STANDARD.encode(self.key.sign(msg.as_bytes()).as_ref())
    }
}

/// The id of a raw Ed25519 public key.
pub fn key_id(public_key: &[u8]) -> String {
    hex::encode(&digest::digest(&digest::SHA256, public_key).as_ref()[..8])
}

/// Whether `signature_b64` is `public_key`'s signature of the checkpoint.
pub fn verify_checkpoint(
    public_key: &[u8],
    tenant: &str,
    seq: i64,
    head_hash: &str,
    at_ms: i64,
    signature_b64: &str,
) -> bool {
    let Ok(sig) = STANDARD.decode(signature_b64.trim()) else {
        return false;
    };
    let msg = checkpoint_message(tenant, seq, head_hash, at_ms);
    signature::UnparsedPublicKey::new(&signature::ED25519, public_key)
        .verify(msg.as_bytes(), &sig)
        .is_ok()
}

/// The operator's Ed25519 key behind the audit log's [`CheckpointSigning`] port:
/// what the API (on-demand checkpoints, verification) and the audit stage (periodic
/// checkpoints) both use.
pub struct Ed25519Signer(pub CheckpointSigner);

impl CheckpointSigning for Ed25519Signer {
    fn key_id(&self) -> String {
        self.0.key_id()
    }

    fn public_key(&self) -> String {
        STANDARD.encode(self.0.public_key())
    }

    fn sign(&self, tenant: &str, seq: i64, head_hash: &str, at: i64) -> Checkpoint {
        Checkpoint {
            tenant: tenant.to_owned(),
            seq,
            head_hash: head_hash.to_owned(),
            at,
            key_id: self.0.key_id(),
            signature: self.0.sign(tenant, seq, head_hash, at),
        }
    }

    fn verify(&self, c: &Checkpoint) -> bool {
        verify_checkpoint(
            &self.0.public_key(),
            &c.tenant,
            c.seq,
            &c.head_hash,
            c.at,
            &c.signature,
        )
    }
}

/// Verifies one tenant's chain with SHA-256 and `signer`'s public key.
pub async fn verify_tenant(
    log: &dyn AuditLog,
    signer: &dyn CheckpointSigning,
    tenant: &str,
) -> PortResult<VerifyReport> {
    let hash = |prev: &str, canonical: &[u8]| entry_hash(prev, canonical);
    let signed = |c: &Checkpoint| signer.verify(c);
    verify_log(log, tenant, GENESIS, &hash, &signed).await
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 section 7.1, TEST 1: the secret key seed and its public key.
    const RFC8032_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC8032_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const RFC8032_SIG_EMPTY: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    /// A PKCS#8 v1 document around a raw Ed25519 seed (RFC 8410).
    fn pkcs8_from_seed(seed: &[u8]) -> Vec<u8> {
        let mut der = hex::decode("302e020100300506032b657004220420").unwrap();
        der.extend_from_slice(seed);
        der
    }

    #[test]
    fn the_rfc8032_key_signs_as_published() {
        let signer =
            CheckpointSigner::from_pkcs8(&pkcs8_from_seed(&hex::decode(RFC8032_SEED).unwrap()))
                .unwrap();
        assert_eq!(hex::encode(signer.public_key()), RFC8032_PUBLIC);
        // The empty message's signature from the RFC, through ring directly.
        let kp = Ed25519KeyPair::from_seed_unchecked(&hex::decode(RFC8032_SEED).unwrap()).unwrap();
        assert_eq!(hex::encode(kp.sign(b"").as_ref()), RFC8032_SIG_EMPTY);
    }

    #[test]
    fn checkpoints_verify_only_with_their_key_and_content() {
        let signer =
            CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().unwrap()).unwrap();
        let other =
            CheckpointSigner::from_pkcs8(&CheckpointSigner::generate_pkcs8().unwrap()).unwrap();
        let head = entry_hash(GENESIS, b"{}");
        let sig = signer.sign("ten_1", 7, &head, 1_700_000_000_000);
        let pk = signer.public_key();
        assert!(verify_checkpoint(
            &pk,
            "ten_1",
            7,
            &head,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_checkpoint(
            &other.public_key(),
            "ten_1",
            7,
            &head,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_checkpoint(
            &pk,
            "ten_2",
            7,
            &head,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_checkpoint(
            &pk,
            "ten_1",
            8,
            &head,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_checkpoint(
            &pk,
            "ten_1",
            7,
            GENESIS,
            1_700_000_000_000,
            &sig
        ));
        assert!(!verify_checkpoint(&pk, "ten_1", 7, &head, 1, &sig));
        assert!(!verify_checkpoint(
            &pk,
            "ten_1",
            7,
            &head,
            1_700_000_000_000,
            "not base64"
        ));
        assert_eq!(signer.key_id().len(), 16);
        assert!(CheckpointSigner::from_pkcs8(b"nope").is_err());
    }

    #[test]
    fn entry_hashes_chain_and_match_an_independent_sha256() {
        // printf 'hermod-audit-v1\n%s\n{"a":1}' 000…000 | sha256sum
        let h = entry_hash(GENESIS, br#"{"a":1}"#);
        assert_eq!(
            h,
            "651440b9907ad533de7e59a8a53de60c102dc6765a45e9351181904dfb0b8970"
        );
        assert_ne!(
            entry_hash(&h, br#"{"a":1}"#),
            h,
            "the previous hash is bound in"
        );
    }
}
