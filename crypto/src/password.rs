//! Short passwords (SMPP accounts') at rest: PBKDF2-HMAC-SHA256 with a random salt,
//! stored as `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use ring::pbkdf2;
use ring::rand::{SecureRandom, SystemRandom};

const ALG: pbkdf2::Algorithm = pbkdf2::PBKDF2_HMAC_SHA256;
/// OWASP's 2023 figure for PBKDF2-HMAC-SHA256 is 600,000; SMPP binds are rare and
/// this keeps a bind under ~0.3 s on one core.
const ITERATIONS: u32 = 600_000;

/// Hashes `password` under a fresh salt.
pub fn hash(password: &str) -> Result<String, ring::error::Unspecified> {
    let mut salt = [0u8; 16];
    SystemRandom::new().fill(&mut salt)?;
    Ok(hash_with(password, &salt, ITERATIONS))
}

fn hash_with(password: &str, salt: &[u8], iterations: u32) -> String {
    let mut out = [0u8; 32];
    let n = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(ALG, n, salt, password.as_bytes(), &mut out);
    format!(
        "pbkdf2-sha256${iterations}${}${}",
        B64.encode(salt),
        B64.encode(out)
    )
}

/// A random password of `len` characters from letters and digits (without the
/// look-alikes 0/O, 1/l/I).
pub fn generate(len: usize) -> Result<String, ring::error::Unspecified> {
    const ABC: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789";
    let mut out = String::with_capacity(len);
    let mut b = [0u8; 1];
    while out.len() < len {
        SystemRandom::new().fill(&mut b)?;
        // Rejection sampling: no bias towards the first letters.
        if usize::from(b[0]) < 256 - 256 % ABC.len() {
            out.push(char::from(ABC[usize::from(b[0]) % ABC.len()]));
        }
    }
    Ok(out)
}

/// Whether `password` matches `stored` (constant time in the hash).
pub fn verify(password: &str, stored: &str) -> bool {
    let mut it = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(iter), Some(salt), Some(hash), None) =
        (it.next(), it.next(), it.next(), it.next(), it.next())
    else {
        return false;
    };
    let (Some(iter), Ok(salt), Ok(hash)) = (
        iter.parse::<u32>().ok().and_then(NonZeroU32::new),
        B64.decode(salt),
        B64.decode(hash),
    ) else {
        return false;
    };
    pbkdf2::verify(ALG, iter, &salt, password.as_bytes(), &hash).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7914 §11's PBKDF2-HMAC-SHA-256 vector (P="passwd", S="salt", c=1, dkLen=64):
    /// its first 32 bytes.
    #[test]
    fn rfc7914_vector() {
        let h = hash_with("passwd", b"salt", 1);
        let hash = B64.decode(h.rsplit('$').next().unwrap()).unwrap();
        assert_eq!(
            hex::encode(hash),
            "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        );
        assert!(verify("passwd", &h));
    }

    #[test]
    fn round_trip_and_refusals() {
        let h = hash("s3cr3t").unwrap();
        assert!(h.starts_with("pbkdf2-sha256$600000$"));
        assert!(verify("s3cr3t", &h));
        assert!(!verify("s3cr3T", &h));
        assert!(!verify("s3cr3t", "plain"));
        assert!(!verify("s3cr3t", "pbkdf2-sha256$0$AA$AA"));
        assert_ne!(h, hash("s3cr3t").unwrap());
        let p = generate(8).unwrap();
        assert_eq!(p.len(), 8);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(p, generate(8).unwrap());
    }
}
