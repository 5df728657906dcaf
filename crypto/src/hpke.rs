//! HPKE (RFC 9180), base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, and
//! ChaCha20-Poly1305 (default), AES-256-GCM or AES-128-GCM. Built on ring: the sender's
//! ephemeral X25519 agreement, HMAC/HKDF-SHA256 and the AEADs. ring cannot load a static
//! X25519 private key, so the receiver's side (devices, the device simulator, tests)
//! does its one Diffie-Hellman with `x25519-dalek`.

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HpkeError {
    #[error("bad public key")]
    PublicKey,
    #[error("key agreement failed")]
    Agreement,
    #[error("the system random generator failed")]
    Rng,
    #[error("seal failed")]
    Seal,
    /// Wrong key, tampered ciphertext or wrong AAD/info: nothing more is said.
    #[error("open failed")]
    Open,
    #[error("sequence number overflow")]
    Overflow,
}

/// The AEAD of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Aead {
    pub fn id(self) -> u16 {
        match self {
            Aead::Aes128Gcm => 1,
            Aead::Aes256Gcm => 2,
            Aead::ChaCha20Poly1305 => 3,
        }
    }
    pub fn from_id(id: u16) -> Option<Aead> {
        [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305]
            .into_iter()
            .find(|a| a.id() == id)
    }
    /// `chacha20poly1305`, `aes256gcm`, `aes128gcm`.
    pub fn name(self) -> &'static str {
        match self {
            Aead::Aes128Gcm => "aes128gcm",
            Aead::Aes256Gcm => "aes256gcm",
            Aead::ChaCha20Poly1305 => "chacha20poly1305",
        }
    }
    pub fn parse(s: &str) -> Option<Aead> {
        [Aead::Aes128Gcm, Aead::Aes256Gcm, Aead::ChaCha20Poly1305]
            .into_iter()
            .find(|a| a.name() == s)
    }
    fn alg(self) -> &'static aead::Algorithm {
        match self {
            Aead::Aes128Gcm => &aead::AES_128_GCM,
            Aead::Aes256Gcm => &aead::AES_256_GCM,
            Aead::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }
    fn nk(self) -> usize {
        self.alg().key_len()
    }
}

const KEM_SUITE: &[u8] = b"KEM\x00\x20";
const NN: usize = 12;

fn hpke_suite(a: Aead) -> [u8; 10] {
    let mut s = *b"HPKE\x00\x20\x00\x01\x00\x00";
    s[8..].copy_from_slice(&a.id().to_be_bytes());
    s
}

/// `LabeledExtract(salt, label, ikm)` = HKDF-Extract(salt, "HPKE-v1" ‖ suite ‖ label ‖ ikm).
fn labeled_extract(suite: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, salt);
    let mut ctx = hmac::Context::with_key(&key);
    for part in [b"HPKE-v1".as_slice(), suite, label, ikm] {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// `LabeledExpand(prk, label, info, L)`.
fn labeled_expand(
    suite: &[u8],
    prk: &[u8; 32],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), HpkeError> {
    let len = u16::try_from(out.len()).map_err(|_| HpkeError::Seal)?;
    let l = len.to_be_bytes();
    hkdf::Prk::new_less_safe(hkdf::HKDF_SHA256, prk)
        .expand(&[&l, b"HPKE-v1", suite, label, info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| HpkeError::Seal)
}

/// DHKEM's `ExtractAndExpand(dh, enc ‖ pkR)`.
fn shared_secret(dh: &[u8], enc: &[u8], pk_r: &[u8]) -> Result<[u8; 32], HpkeError> {
    let eae_prk = labeled_extract(KEM_SUITE, b"", b"eae_prk", dh);
    let mut ctx = Vec::with_capacity(64);
    ctx.extend_from_slice(enc);
    ctx.extend_from_slice(pk_r);
    let mut out = [0u8; 32];
    labeled_expand(KEM_SUITE, &eae_prk, b"shared_secret", &ctx, &mut out)?;
    Ok(out)
}

/// An encryption context (one per sealed message here; RFC 9180 §5.2).
pub struct Context {
    key: LessSafeKey,
    base_nonce: [u8; NN],
    exporter_secret: [u8; 32],
    seq: u64,
}

impl Context {
    fn new(aead: Aead, shared: &[u8; 32], info: &[u8]) -> Result<Context, HpkeError> {
        let suite = hpke_suite(aead);
        let psk_id_hash = labeled_extract(&suite, b"", b"psk_id_hash", b"");
        let info_hash = labeled_extract(&suite, b"", b"info_hash", info);
        let mut ksc = Vec::with_capacity(65);
        ksc.push(0u8);
        ksc.extend_from_slice(&psk_id_hash);
        ksc.extend_from_slice(&info_hash);
        let secret = labeled_extract(&suite, shared, b"secret", b"");
        let mut key = vec![0u8; aead.nk()];
        labeled_expand(&suite, &secret, b"key", &ksc, &mut key)?;
        let mut base_nonce = [0u8; NN];
        labeled_expand(&suite, &secret, b"base_nonce", &ksc, &mut base_nonce)?;
        let mut exporter_secret = [0u8; 32];
        labeled_expand(&suite, &secret, b"exp", &ksc, &mut exporter_secret)?;
        let key = UnboundKey::new(aead.alg(), &key).map_err(|_| HpkeError::Seal)?;
        Ok(Context {
            key: LessSafeKey::new(key),
            base_nonce,
            exporter_secret,
            seq: 0,
        })
    }

    fn nonce(&self, seq: u64) -> Nonce {
        let mut n = self.base_nonce;
        for (b, s) in n[NN - 8..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(n)
    }

    /// Seals the next message.
    pub fn seal(&mut self, aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let seq = self.seq;
        self.seq = seq.checked_add(1).ok_or(HpkeError::Overflow)?;
        self.seal_at(seq, aad, pt)
    }

    /// Opens the next message.
    pub fn open(&mut self, aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let seq = self.seq;
        let pt = self.open_at(seq, aad, ct)?;
        self.seq = seq.checked_add(1).ok_or(HpkeError::Overflow)?;
        Ok(pt)
    }

    /// Seals with the nonce of sequence number `seq` (the known-answer tests jump).
    pub fn seal_at(&self, seq: u64, aad: &[u8], pt: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let mut buf = pt.to_vec();
        self.key
            .seal_in_place_append_tag(self.nonce(seq), Aad::from(aad), &mut buf)
            .map_err(|_| HpkeError::Seal)?;
        Ok(buf)
    }

    pub fn open_at(&self, seq: u64, aad: &[u8], ct: &[u8]) -> Result<Vec<u8>, HpkeError> {
        let mut buf = ct.to_vec();
        let n = self
            .key
            .open_in_place(self.nonce(seq), Aad::from(aad), &mut buf)
            .map_err(|_| HpkeError::Open)?
            .len();
        buf.truncate(n);
        Ok(buf)
    }

    /// The secret export interface (RFC 9180 §5.3).
    pub fn export(
        &self,
        aead: Aead,
        exporter_context: &[u8],
        out: &mut [u8],
    ) -> Result<(), HpkeError> {
        labeled_expand(
            &hpke_suite(aead),
            &self.exporter_secret,
            b"sec",
            exporter_context,
            out,
        )
    }
}

/// `SetupBaseS`: a fresh ephemeral key from `rng`; returns `enc` and the context.
pub fn setup_sender(
    rng: &dyn SecureRandom,
    pk_r: &[u8],
    info: &[u8],
    aead: Aead,
) -> Result<([u8; 32], Context), HpkeError> {
    if pk_r.len() != 32 {
        return Err(HpkeError::PublicKey);
    }
    let sk = EphemeralPrivateKey::generate(&X25519, rng).map_err(|_| HpkeError::Rng)?;
    let pk = sk.compute_public_key().map_err(|_| HpkeError::Rng)?;
    let mut enc = [0u8; 32];
    enc.copy_from_slice(pk.as_ref());
    let shared = agreement::agree_ephemeral(sk, &UnparsedPublicKey::new(&X25519, pk_r), |dh| {
        shared_secret(dh, &enc, pk_r)
    })
    .map_err(|_| HpkeError::Agreement)??;
    Ok((enc, Context::new(aead, &shared, info)?))
}

/// `SetupBaseR`, with the recipient's static private key.
pub fn setup_receiver(
    sk_r: &[u8; 32],
    enc: &[u8],
    info: &[u8],
    aead: Aead,
) -> Result<Context, HpkeError> {
    let enc: [u8; 32] = enc.try_into().map_err(|_| HpkeError::Open)?;
    let secret = x25519_dalek::StaticSecret::from(*sk_r);
    let pk_r = x25519_dalek::PublicKey::from(&secret);
    let dh = secret.diffie_hellman(&x25519_dalek::PublicKey::from(enc));
    if !dh.was_contributory() {
        return Err(HpkeError::Open);
    }
    let shared = shared_secret(dh.as_bytes(), &enc, pk_r.as_bytes())?;
    Context::new(aead, &shared, info)
}

/// Single-shot seal to `pk_r`: `(enc, ciphertext)`.
pub fn seal(
    pk_r: &[u8],
    info: &[u8],
    aad: &[u8],
    pt: &[u8],
    aead: Aead,
) -> Result<([u8; 32], Vec<u8>), HpkeError> {
    let (enc, mut ctx) = setup_sender(&SystemRandom::new(), pk_r, info, aead)?;
    Ok((enc, ctx.seal(aad, pt)?))
}

/// Single-shot open with the recipient's private key.
pub fn open(
    sk_r: &[u8; 32],
    enc: &[u8],
    info: &[u8],
    aad: &[u8],
    ct: &[u8],
    aead: Aead,
) -> Result<Vec<u8>, HpkeError> {
    setup_receiver(sk_r, enc, info, aead)?.open(aad, ct)
}

/// A fresh X25519 key pair `(private, public)` (devices and the device simulator).
pub fn generate_keypair() -> Result<([u8; 32], [u8; 32]), HpkeError> {
    let mut sk = [0u8; 32];
    SystemRandom::new()
        .fill(&mut sk)
        .map_err(|_| HpkeError::Rng)?;
    let pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(sk));
    Ok((sk, pk.to_bytes()))
}

/// `DeriveKeyPair(ikm)` of DHKEM(X25519, HKDF-SHA256): `(private, public)`.
pub fn derive_keypair(ikm: &[u8]) -> Result<([u8; 32], [u8; 32]), HpkeError> {
    let prk = labeled_extract(KEM_SUITE, b"", b"dkp_prk", ikm);
    let mut sk = [0u8; 32];
    labeled_expand(KEM_SUITE, &prk, b"sk", b"", &mut sk)?;
    let pk = x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(sk));
    Ok((sk, pk.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn h(v: &Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap()).unwrap()
    }

    /// RFC 9180 Appendix A (A.1 X25519 + AES-128-GCM, and the AES-256-GCM and
    /// ChaCha20-Poly1305 base-mode cases) with the ephemeral key injected.
    #[test]
    #[allow(deprecated)]
    fn rfc9180_known_answers() {
        let cases: Vec<Value> = serde_json::from_str(include_str!(
            "../testdata/hpke/rfc9180_base_x25519_sha256.json"
        ))
        .unwrap();
        assert_eq!(cases.len(), 3);
        for c in &cases {
            let aead = Aead::from_id(c["aead_id"].as_u64().unwrap() as u16).unwrap();
            let (sk_r, pk_r) = derive_keypair(&h(&c["ikmR"])).unwrap();
            assert_eq!(sk_r.to_vec(), h(&c["skRm"]));
            assert_eq!(pk_r.to_vec(), h(&c["pkRm"]));
            let sk_e = h(&c["skEm"]);
            let rng = ring::test::rand::FixedSliceRandom { bytes: &sk_e };
            let info = h(&c["info"]);
            let (enc, mut s) = setup_sender(&rng, &pk_r, &info, aead).unwrap();
            assert_eq!(enc.to_vec(), h(&c["enc"]), "{}", c["suite"]);
            let mut r = setup_receiver(&sk_r, &enc, &info, aead).unwrap();
            for e in c["encryptions"].as_array().unwrap() {
                let seq = e["seq"].as_u64().unwrap();
                let (aad, pt, ct) = (h(&e["aad"]), h(&e["pt"]), h(&e["ct"]));
                if seq < 3 {
                    // In order, through the counters.
                    assert_eq!(s.seal(&aad, &pt).unwrap(), ct, "{} seq {seq}", c["suite"]);
                    assert_eq!(r.open(&aad, &ct).unwrap(), pt);
                } else {
                    assert_eq!(
                        s.seal_at(seq, &aad, &pt).unwrap(),
                        ct,
                        "{} seq {seq}",
                        c["suite"]
                    );
                    assert_eq!(r.open_at(seq, &aad, &ct).unwrap(), pt);
                }
            }
            for x in c["exports"].as_array().unwrap() {
                let mut out = vec![0u8; x["L"].as_u64().unwrap() as usize];
                s.export(aead, &h(&x["exporter_context"]), &mut out)
                    .unwrap();
                assert_eq!(out, h(&x["exported_value"]));
            }
        }
    }

    #[test]
    fn wrong_key_aad_info_or_tampering_fail_to_open() {
        let (sk, pk) = generate_keypair().unwrap();
        let (other_sk, _) = generate_keypair().unwrap();
        for aead in [Aead::ChaCha20Poly1305, Aead::Aes256Gcm] {
            let (enc, ct) = seal(&pk, b"info", b"msg_1", b"hello", aead).unwrap();
            assert_eq!(
                open(&sk, &enc, b"info", b"msg_1", &ct, aead).unwrap(),
                b"hello"
            );
            assert_eq!(
                open(&other_sk, &enc, b"info", b"msg_1", &ct, aead),
                Err(HpkeError::Open)
            );
            assert_eq!(
                open(&sk, &enc, b"info", b"msg_2", &ct, aead),
                Err(HpkeError::Open)
            );
            assert_eq!(
                open(&sk, &enc, b"other", b"msg_1", &ct, aead),
                Err(HpkeError::Open)
            );
            let mut t = ct.clone();
            t[0] ^= 1;
            assert_eq!(
                open(&sk, &enc, b"info", b"msg_1", &t, aead),
                Err(HpkeError::Open)
            );
            let mut e = enc;
            e[5] ^= 1;
            assert_eq!(
                open(&sk, &e, b"info", b"msg_1", &ct, aead),
                Err(HpkeError::Open)
            );
        }
        assert_eq!(
            seal(&[0u8; 5], b"", b"", b"x", Aead::Aes256Gcm).unwrap_err(),
            HpkeError::PublicKey
        );
    }

    /// An independent implementation (rozbb/rust-hpke, RustCrypto underneath) opens
    /// what this one seals.
    #[test]
    fn independent_implementation_opens_our_output() {
        use hpke_oracle::{Deserializable, Kem as _, Serializable};
        type Kem = hpke_oracle::kem::X25519HkdfSha256;
        let mut ikm = [0u8; 32];
        SystemRandom::new().fill(&mut ikm).unwrap();
        let (sk, pk) = Kem::derive_keypair(&ikm);
        let pk_bytes = pk.to_bytes();
        let (enc, ct) = seal(
            &pk_bytes,
            b"tenant|device|msg",
            b"msg_1",
            b"sealed for you",
            Aead::ChaCha20Poly1305,
        )
        .unwrap();
        let encapped = <Kem as hpke_oracle::Kem>::EncappedKey::from_bytes(&enc).unwrap();
        let pt = hpke_oracle::single_shot_open::<
            hpke_oracle::aead::ChaCha20Poly1305,
            hpke_oracle::kdf::HkdfSha256,
            Kem,
        >(
            &hpke_oracle::OpModeR::Base,
            &sk,
            &encapped,
            b"tenant|device|msg",
            &ct,
            b"msg_1",
        )
        .unwrap();
        assert_eq!(pt, b"sealed for you");
        let (enc, ct) = seal(&pk_bytes, b"i", b"a", b"aes too", Aead::Aes256Gcm).unwrap();
        let encapped = <Kem as hpke_oracle::Kem>::EncappedKey::from_bytes(&enc).unwrap();
        let pt = hpke_oracle::single_shot_open::<
            hpke_oracle::aead::AesGcm256,
            hpke_oracle::kdf::HkdfSha256,
            Kem,
        >(&hpke_oracle::OpModeR::Base, &sk, &encapped, b"i", &ct, b"a")
        .unwrap();
        assert_eq!(pt, b"aes too");
    }
}
