//! The only crate that names `ring`: API-key secrets and their keyed hashes, request
//! digests, RBM's JWT and webhook signatures, and the process-wide TLS crypto provider.

pub mod audit;
pub mod hpke;
pub mod password;
pub mod rbm;
pub mod tls;
pub mod twilio;
pub mod vault;
pub mod vonage;
pub mod webhook;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the system random generator failed")]
    Rng,
    #[error("malformed API key")]
    MalformedKey,
}

/// Installs ring as rustls' process-wide provider. Call first in `main` and in tests
/// that build TLS clients; calling it again is harmless.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A freshly generated API key: `hmk_<id>_<secret>`. Only `hash` is ever stored.
pub struct NewApiKey {
    pub key_id: String,
    pub full: String,
    pub hash: String,
}

/// Generates and hashes API keys with a server-side pepper.
#[derive(Clone)]
pub struct ApiKeys {
    pepper: hmac::Key,
    rng: SystemRandom,
}

impl ApiKeys {
    pub fn new(pepper: &[u8]) -> Self {
        Self {
            pepper: hmac::Key::new(hmac::HMAC_SHA256, pepper),
            rng: SystemRandom::new(),
        }
    }

    pub fn generate(&self) -> Result<NewApiKey, CryptoError> {
        self.generate_token("hmk")
    }

    /// A secret of the same shape with another prefix (`hmd` for device tokens).
    pub fn generate_token(&self, prefix: &str) -> Result<NewApiKey, CryptoError> {
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        self.rng.fill(&mut id).map_err(|_| CryptoError::Rng)?;
        self.rng.fill(&mut secret).map_err(|_| CryptoError::Rng)?;
        let key_id = hex::encode(id);
        let secret = URL_SAFE_NO_PAD.encode(secret);
        let hash = self.hash(&secret);
        Ok(NewApiKey {
            full: format!("{prefix}_{key_id}_{secret}"),
            key_id,
            hash,
        })
    }

    /// Splits `hmk_<id>_<secret>` into id and secret.
    pub fn split(full: &str) -> Result<(&str, &str), CryptoError> {
        Self::split_token("hmk", full)
    }

    /// Splits `<prefix>_<id>_<secret>` into id and secret.
    pub fn split_token<'a>(prefix: &str, full: &'a str) -> Result<(&'a str, &'a str), CryptoError> {
        let rest = full
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('_'))
            .ok_or(CryptoError::MalformedKey)?;
        let (id, secret) = rest.split_once('_').ok_or(CryptoError::MalformedKey)?;
        if id.len() != 16 || secret.is_empty() {
            return Err(CryptoError::MalformedKey);
        }
        Ok((id, secret))
    }

    fn hash(&self, secret: &str) -> String {
        hex::encode(hmac::sign(&self.pepper, secret.as_bytes()).as_ref())
    }

    /// Constant-time check of a presented secret against a stored hash.
    pub fn verify(&self, secret: &str, stored_hash: &str) -> bool {
        let Ok(tag) = hex::decode(stored_hash) else {
            return false;
        };
        hmac::verify(&self.pepper, secret.as_bytes(), &tag).is_ok()
    }
}

/// Equality whose time does not depend on where the inputs differ: `b` is MACed under
/// a one-off key and `a` verified against the tag by ring's constant-time check.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let rng = ring::rand::SystemRandom::new();
    let Ok(key) = hmac::Key::generate(hmac::HMAC_SHA256, &rng) else {
        return false;
    };
    let tag = hmac::sign(&key, b);
    hmac::verify(&key, a, tag.as_ref()).is_ok()
}

/// Lowercase hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(digest::digest(&digest::SHA256, data).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_others_do_not() {
        let keys = ApiKeys::new(b"pepper");
        let k = keys.generate().unwrap();
        let (id, secret) = ApiKeys::split(&k.full).unwrap();
        assert_eq!(id, k.key_id);
        assert!(keys.verify(secret, &k.hash));
        assert!(!keys.verify("wrong", &k.hash));
        assert!(!ApiKeys::new(b"other pepper").verify(secret, &k.hash));
        assert!(!k.hash.contains(secret));
        assert!(ApiKeys::split("Bearer nope").is_err());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokem"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn sha256_matches_the_fips_vector() {
        // FIPS 180-2 appendix B.1
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
