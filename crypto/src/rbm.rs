//! Google RCS Business Messaging primitives (the RCS channel builds on these):
//! the RS256 JWT a service account signs to get an OAuth token, and the
//! `X-Goog-Signature` check of RBM webhooks.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::hmac;
use ring::rand::SystemRandom;
use ring::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RsaKeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use rustls::pki_types::pem::PemObject;

/// A service-account key for the RBM simulator and `hermod demo` only: it is public
/// (in this repository), so nothing real trusts it.
pub const DEMO_SERVICE_ACCOUNT_PEM: &str = include_str!("../testdata/rbm-test-service-account.pem");
/// The client_email that goes with [`DEMO_SERVICE_ACCOUNT_PEM`].
pub const DEMO_CLIENT_EMAIL: &str = "hermod-test@example.iam.gserviceaccount.com";

/// Why a JWT could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the service-account private_key is not a PKCS#8 PEM RSA key")]
    Key,
    #[error("signing failed")]
    Sign,
}

/// A service account's signing key (`private_key` of its JSON key file).
pub struct ServiceAccountKey(RsaKeyPair);

impl ServiceAccountKey {
    pub fn from_pem(pem: &str) -> Result<Self, JwtError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| JwtError::Key)?;
        RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
            .map(Self)
            .map_err(|_| JwtError::Key)
    }

    /// The public key (DER `RSAPublicKey`), for whoever checks our JWTs.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.0.public_key().as_ref().to_vec()
    }

    /// `base64url(header).base64url(claims).base64url(RS256 signature)`.
    pub fn sign_jwt(&self, claims_json: &str) -> Result<String, JwtError> {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(claims_json.as_bytes());
        let input = format!("{header}.{claims}");
        let mut sig = vec![0; self.0.public().modulus_len()];
        self.0
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| JwtError::Sign)?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig)))
    }
}

/// Checks an RS256 JWT against a DER `RSAPublicKey` and returns its claims JSON (the
/// token endpoint's side of the exchange; the RBM simulator uses it).
pub fn verify_jwt(public_key_der: &[u8], jwt: &str) -> Option<String> {
    let mut it = jwt.split('.');
    let (h, c, s) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let header: Vec<u8> = URL_SAFE_NO_PAD.decode(h).ok()?;
    let header = String::from_utf8(header).ok()?;
    if !header.replace(' ', "").contains(r#""alg":"RS256""#) {
        return None;
    }
    let sig = URL_SAFE_NO_PAD.decode(s).ok()?;
    ring::signature::UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_key_der)
        .verify(format!("{h}.{c}").as_bytes(), &sig)
        .ok()?;
    String::from_utf8(URL_SAFE_NO_PAD.decode(c).ok()?).ok()
}

/// `X-Goog-Signature` of webhook data: base64(HMAC-SHA512(clientToken, data)).
pub fn sign_webhook(client_token: &str, data: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA512, client_token.as_bytes());
    STANDARD.encode(hmac::sign(&key, data).as_ref())
}

/// Checks an RBM webhook: `X-Goog-Signature` must be
/// base64(HMAC-SHA512(clientToken, base64-decoded `message.data`)), compared in
/// constant time. Anything malformed is simply not valid.
pub fn verify_webhook(client_token: &str, message_data_b64: &str, signature_b64: &str) -> bool {
    let (Ok(data), Ok(sig)) = (
        STANDARD.decode(message_data_b64.trim()),
        STANDARD.decode(signature_b64.trim()),
    ) else {
        return false;
    };
    let key = hmac::Key::new(hmac::HMAC_SHA512, client_token.as_bytes());
    hmac::verify(&key, &data, &sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The shared test data `rbm/webhook_signature.json`: computed with Python's hmac and
    // cross-checked with Node's crypto, per Google's RBM webhook guide.
    const TOKEN: &str = "SJENCPGJESMGUFPY";
    const DATA: &str = "eyJzZW5kZXJQaG9uZU51bWJlciI6IisxMjIyMzMzNDQ0NCIsIm1lc3NhZ2VJZCI6Ik14QUJDREVGIiwic2VuZFRpbWUiOiIyMDI0LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCJ0ZXh0IjoiSGVsbG8iLCJhZ2VudElkIjoibXktYWdlbnRAcmJtLmdvb2cifQ==";
    const SIG: &str =
        "QTsQTQTyYLVpO8EUdtGht2pYT0/PLaKD7blFpH6sExTW+uoKIY1upFAcDgUsVhAUjA0sLbh0AlIaxqQ+u+GwqQ==";

    #[test]
    fn webhook_signature_vector() {
        assert!(verify_webhook(TOKEN, DATA, SIG));
        assert!(!verify_webhook("WRONGTOKEN", DATA, SIG));
        let mut tampered = STANDARD.decode(DATA).unwrap();
        tampered[10] ^= 1;
        assert!(!verify_webhook(TOKEN, &STANDARD.encode(tampered), SIG));
        assert!(!verify_webhook(TOKEN, DATA, ""));
        assert!(!verify_webhook(TOKEN, "not base64!", SIG));
        assert_eq!(sign_webhook(TOKEN, &STANDARD.decode(DATA).unwrap()), SIG);
    }

    #[test]
    fn rs256_jwt_matches_openssl() {
        // Signed by `openssl dgst -sha256 -sign` (crypto/testdata/README.md).
        let key =
            ServiceAccountKey::from_pem(include_str!("../testdata/rbm-test-service-account.pem"))
                .unwrap();
        let claims = r#"{"iss":"hermod-test@example.iam.gserviceaccount.com","scope":"https://www.googleapis.com/auth/rcsbusinessmessaging","aud":"https://oauth2.googleapis.com/token","iat":1700000000,"exp":1700003600}"#;
        let want = include_str!("../testdata/rbm-test-jwt.txt").trim();
        assert_eq!(key.sign_jwt(claims).unwrap(), want);
        let pk = key.public_key_der();
        assert_eq!(verify_jwt(&pk, want).as_deref(), Some(claims));
        let mut forged = want.to_owned();
        forged.replace_range(40..41, if &want[40..41] == "A" { "B" } else { "A" });
        assert_eq!(verify_jwt(&pk, &forged), None);
        assert_eq!(verify_jwt(&pk, "a.b"), None);
        assert!(
            ServiceAccountKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
    }
}
