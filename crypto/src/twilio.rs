//! Twilio's request signature, as its SDKs' `RequestValidator` checks it:
//! `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + each POST parameter's
//! name and value, sorted by name)). SHA-1 is Twilio's choice, kept for compatibility.

use base64::Engine;
use ring::hmac;
use ring::rand::SecureRandom;

/// The header name.
pub const HEADER: &str = "X-Twilio-Signature";

/// The signature of a form POST to `url` with `params`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, auth_token.as_bytes());
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(url.as_bytes());
    for (k, v) in sorted {
        ctx.update(k.as_bytes());
        ctx.update(v.as_bytes());
    }
    base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())
}

/// Checks a presented signature in constant time.
pub fn verify(auth_token: &str, url: &str, params: &[(String, String)], presented: &str) -> bool {
    crate::constant_time_eq(
        signature(auth_token, url, params).as_bytes(),
        presented.as_bytes(),
    )
}

/// `n` random bytes as lower-case hex (Twilio's SIDs carry 32 hex digits, auth tokens
/// are 32 hex digits).
pub fn random_hex(n: usize) -> Result<String, crate::CryptoError> {
    let mut b = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| crate::CryptoError::Rng)?;
    Ok(hex::encode(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_owned(), v.to_owned())
    }

    /// The example of Twilio's security guide ("Validating requests are coming from
    /// Twilio"): auth token 12345, this URL and these parameters sign to this value.
    #[test]
    fn twilio_security_guide_example() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let params = [
            p("CallSid", "CA1234567890ABCDE"),
            p("Caller", "+12349013030"),
            p("Digits", "1234"),
            p("From", "+12349013030"),
            p("To", "+18005551212"),
        ];
        assert_eq!(
            signature("12345", url, &params),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert!(verify(
            "12345",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
        assert!(!verify(
            "12346",
            url,
            &params,
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        ));
    }
}
