//! Content at rest: AES-256-GCM under per-subject data keys, each wrapped by a master
//! key that has an id (so master keys can rotate), and keyed lookups (HMAC-SHA256) so
//! that rows are found by number without storing the number.
//!
//! Formats (all base64 standard with padding):
//! - wrapped data key: `base64(nonce(12) || AES-256-GCM(master, data_key, aad))` with
//!   `aad = "hermod-data-key-v1\n" + master_key_id`;
//! - sealed field: `"enc1:" + base64(nonce(12) || AES-256-GCM(data_key, plaintext, aad))`
//!   with `aad = "hermod-field-v1\n" + field name`.
//!
//! Destroying a data key (crypto-shredding) makes every field sealed under it
//! unreadable wherever its ciphertext was copied.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of a sealed field; anything else is plaintext stored before encryption.
pub const SEALED_PREFIX: &str = "enc1:";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    #[error("the system random generator failed")]
    Rng,
    #[error("a master key must be 32 bytes of base64")]
    BadMasterKey,
    #[error("the active master key `{0}` is not configured")]
    NoActiveKey(String),
    #[error("master key `{0}` is not configured")]
    UnknownKey(String),
    /// Wrong key, tampered ciphertext, or a key that was destroyed and replaced.
    #[error("could not decrypt")]
    Open,
}

/// The master keys and the lookup key; cheap to share behind an `Arc`.
pub struct Vault {
    active: String,
    masters: HashMap<String, LessSafeKey>,
    lookup: hmac::Key,
    rng: SystemRandom,
}

/// A subject's unwrapped data key.
pub struct DataKey(LessSafeKey);

/// A data key as stored: which master key wrapped it, and the wrapped bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedKey {
    pub key_id: String,
    pub wrapped: String,
}

fn aes_key(bytes: &[u8]) -> Result<LessSafeKey, VaultError> {
    UnboundKey::new(&AES_256_GCM, bytes)
        .map(LessSafeKey::new)
        .map_err(|_| VaultError::BadMasterKey)
}

fn seal_bytes(
    rng: &SystemRandom,
    key: &LessSafeKey,
    aad: &[u8],
    plain: &[u8],
) -> Result<String, VaultError> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill(&mut nonce).map_err(|_| VaultError::Rng)?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad),
        &mut buf,
    )
    .map_err(|_| VaultError::Rng)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(STANDARD.encode(out))
}

fn open_bytes(key: &LessSafeKey, aad: &[u8], sealed_b64: &str) -> Result<Vec<u8>, VaultError> {
    let raw = STANDARD.decode(sealed_b64).map_err(|_| VaultError::Open)?;
    if raw.len() < NONCE_LEN {
        return Err(VaultError::Open);
    }
    let (nonce, ct) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Open)?;
    let mut buf = ct.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(aad), &mut buf)
        .map_err(|_| VaultError::Open)?;
    Ok(plain.to_vec())
}

fn wrap_aad(key_id: &str) -> Vec<u8> {
    format!("hermod-data-key-v1\n{key_id}").into_bytes()
}

fn field_aad(field: &str) -> Vec<u8> {
    format!("hermod-field-v1\n{field}").into_bytes()
}

impl Vault {
    /// `masters`: (key id, base64 of 32 bytes); `active` wraps new data keys; the
    /// others still unwrap the keys they wrapped. `lookup`: base64 of the HMAC key.
    pub fn new(
        active: &str,
        masters: &[(String, String)],
        lookup: &str,
    ) -> Result<Self, VaultError> {
        let mut keys = HashMap::new();
        for (id, b64) in masters {
            let bytes = STANDARD
                .decode(b64.trim())
                .map_err(|_| VaultError::BadMasterKey)?;
            if bytes.len() != 32 {
                return Err(VaultError::BadMasterKey);
            }
            keys.insert(id.clone(), aes_key(&bytes)?);
        }
        if !keys.contains_key(active) {
            return Err(VaultError::NoActiveKey(active.to_owned()));
        }
        let lookup = STANDARD
            .decode(lookup.trim())
            .map_err(|_| VaultError::BadMasterKey)?;
        if lookup.len() < 32 {
            return Err(VaultError::BadMasterKey);
        }
        Ok(Self {
            active: active.to_owned(),
            masters: keys,
            lookup: hmac::Key::new(hmac::HMAC_SHA256, &lookup),
            rng: SystemRandom::new(),
        })
    }

    /// 32 random bytes as base64: a new master or lookup key.
    pub fn generate_key() -> Result<String, VaultError> {
        let mut k = [0u8; 32];
        SystemRandom::new()
            .fill(&mut k)
            .map_err(|_| VaultError::Rng)?;
        Ok(STANDARD.encode(k))
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Hex HMAC-SHA256 of `value` under the lookup key: how rows are found by number.
    pub fn lookup(&self, value: &str) -> String {
        hex::encode(hmac::sign(&self.lookup, value.as_bytes()).as_ref())
    }

    /// A fresh data key, wrapped by the active master key.
    pub fn new_data_key(&self) -> Result<(WrappedKey, DataKey), VaultError> {
        let mut raw = [0u8; 32];
        self.rng.fill(&mut raw).map_err(|_| VaultError::Rng)?;
        let master = self
            .masters
            .get(&self.active)
            .ok_or_else(|| VaultError::NoActiveKey(self.active.clone()))?;
        let wrapped = seal_bytes(&self.rng, master, &wrap_aad(&self.active), &raw)?;
        let key = aes_key(&raw)?;
        Ok((
            WrappedKey {
                key_id: self.active.clone(),
                wrapped,
            },
            DataKey(key),
        ))
    }

    pub fn unwrap(&self, w: &WrappedKey) -> Result<DataKey, VaultError> {
        let master = self
            .masters
            .get(&w.key_id)
            .ok_or_else(|| VaultError::UnknownKey(w.key_id.clone()))?;
        let raw = open_bytes(master, &wrap_aad(&w.key_id), &w.wrapped)?;
        aes_key(&raw).map_err(|_| VaultError::Open).map(DataKey)
    }

    /// Seals `plain` under `key` (a field named `field`).
    pub fn seal(&self, key: &DataKey, field: &str, plain: &str) -> Result<String, VaultError> {
        let b = seal_bytes(&self.rng, &key.0, &field_aad(field), plain.as_bytes())?;
        Ok(format!("{SEALED_PREFIX}{b}"))
    }
}

impl DataKey {
    /// Opens a sealed field; a value without the prefix is returned as it is
    /// (plaintext written before encryption was introduced).
    pub fn open(&self, field: &str, stored: &str) -> Result<String, VaultError> {
        match stored.strip_prefix(SEALED_PREFIX) {
            Some(b) => String::from_utf8(open_bytes(&self.0, &field_aad(field), b)?)
                .map_err(|_| VaultError::Open),
            None => Ok(stored.to_owned()),
        }
    }
}

/// Prefix of a secret sealed directly under a master key (`encm1:<key id>:<base64>`).
pub const MASTER_SEALED_PREFIX: &str = "encm1:";

impl Vault {
    /// Seals a server secret (a webhook signing secret) under the active master key:
    /// not a subject's content, so erasure does not touch it.
    pub fn seal_secret(&self, field: &str, plain: &str) -> Result<String, VaultError> {
        let master = self
            .masters
            .get(&self.active)
            .ok_or_else(|| VaultError::NoActiveKey(self.active.clone()))?;
        let b = seal_bytes(&self.rng, master, &field_aad(field), plain.as_bytes())?;
        Ok(format!("{MASTER_SEALED_PREFIX}{}:{b}", self.active))
    }

    /// Opens what `seal_secret` sealed; anything else is returned as it is (a secret
    /// stored before sealing was introduced).
    pub fn open_secret(&self, field: &str, stored: &str) -> Result<String, VaultError> {
        let Some(rest) = stored.strip_prefix(MASTER_SEALED_PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (key_id, b) = rest.split_once(':').ok_or(VaultError::Open)?;
        let master = self
            .masters
            .get(key_id)
            .ok_or_else(|| VaultError::UnknownKey(key_id.to_owned()))?;
        String::from_utf8(open_bytes(master, &field_aad(field), b)?).map_err(|_| VaultError::Open)
    }
}

pub fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vault() -> Vault {
        let k1 = Vault::generate_key().unwrap();
        let k2 = Vault::generate_key().unwrap();
        Vault::new(
            "k2",
            &[("k1".into(), k1), ("k2".into(), k2)],
            &Vault::generate_key().unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn fields_round_trip_and_are_bound_to_their_name() {
        let v = vault();
        let (w, k) = v.new_data_key().unwrap();
        assert_eq!(w.key_id, "k2");
        let s = v.seal(&k, "body", "Your code is 123456").unwrap();
        assert!(is_sealed(&s) && !s.contains("123456"));
        let k = v.unwrap(&w).unwrap();
        assert_eq!(k.open("body", &s).unwrap(), "Your code is 123456");
        assert_eq!(k.open("to", &s), Err(VaultError::Open));
        assert_eq!(k.open("body", "plain before"), Ok("plain before".into()));
    }

    #[test]
    fn another_data_key_cannot_open_and_unknown_masters_are_named() {
        let v = vault();
        let (_, k1) = v.new_data_key().unwrap();
        let (_, k2) = v.new_data_key().unwrap();
        let s = v.seal(&k1, "body", "hello").unwrap();
        assert_eq!(k2.open("body", &s), Err(VaultError::Open));
        let w = WrappedKey {
            key_id: "k9".into(),
            wrapped: "AAAA".into(),
        };
        assert!(matches!(v.unwrap(&w), Err(VaultError::UnknownKey(k)) if k == "k9"));
    }

    #[test]
    fn a_key_wrapped_by_an_older_master_still_unwraps_after_rotation() {
        let k1 = Vault::generate_key().unwrap();
        let lk = Vault::generate_key().unwrap();
        let old = Vault::new("k1", &[("k1".into(), k1.clone())], &lk).unwrap();
        let (w, k) = old.new_data_key().unwrap();
        let s = old.seal(&k, "to", "+447700900123").unwrap();
        let new = Vault::new(
            "k2",
            &[
                ("k1".into(), k1),
                ("k2".into(), Vault::generate_key().unwrap()),
            ],
            &lk,
        )
        .unwrap();
        assert_eq!(
            new.unwrap(&w).unwrap().open("to", &s).unwrap(),
            "+447700900123"
        );
        assert_eq!(new.lookup("+447700900123"), old.lookup("+447700900123"));
        assert_eq!(new.new_data_key().unwrap().0.key_id, "k2");
    }

    #[test]
    fn secrets_are_sealed_under_the_master_key() {
        let v = vault();
        let s = v.seal_secret("webhook", "whsec_abc").unwrap();
        assert!(s.starts_with("encm1:k2:") && !s.contains("whsec_abc"));
        assert_eq!(v.open_secret("webhook", &s).unwrap(), "whsec_abc");
        assert_eq!(v.open_secret("other", &s), Err(VaultError::Open));
        assert_eq!(v.open_secret("webhook", "whsec_old").unwrap(), "whsec_old");
    }

    #[test]
    fn lookup_is_hmac_sha256() {
        // Independent value: python3 -c 'import hmac,hashlib;
        // print(hmac.new(bytes(32),b"+447700900123",hashlib.sha256).hexdigest())'
        let v = Vault::new(
            "k",
            &[("k".into(), Vault::generate_key().unwrap())],
            &STANDARD.encode([0u8; 32]),
        )
        .unwrap();
        assert_eq!(v.lookup("+447700900123"), LOOKUP_VECTOR);
    }

    const LOOKUP_VECTOR: &str = "c9e0c54b6825ede3debaae78da62072ce82cf2d03e7b11db985ea0d277c0569d";
}
