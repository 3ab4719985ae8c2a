//! API keys of the reports API and the dashboard's signed sign-in links.
//! A key is shown once; only its SHA-256 is stored. Links and session
//! cookies carry `account.expiry.purpose` signed with HMAC-SHA256.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Every key starts with this, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "capi_";

/// 64 hex characters from two random UUIDs (v4: 244 random bits): webhook
/// secrets and the body of API keys.
pub fn random_secret() -> String {
    format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple())
}

/// A new key: the prefix and a random secret.
pub fn generate() -> String {
    format!("{KEY_PREFIX}{}", random_secret())
}

/// What is stored of a key.
pub fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The part of a key shown in listings (never enough to use it).
pub fn display_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + 6).collect()
}

/// What a signed token grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The link `capi dashboard-link` prints.
    Link,
    /// The dashboard's session cookie.
    Session,
}

impl Purpose {
    fn word(self) -> &'static str {
        match self {
            Purpose::Link => "link",
            Purpose::Session => "session",
        }
    }
}

fn mac(secret: &[u8], payload: &str) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(payload.as_bytes());
    Some(m)
}

/// `account.expiry.signature` for `purpose`, valid until `expires_unix`.
pub fn sign(secret: &[u8], account: Uuid, expires_unix: i64, purpose: Purpose) -> String {
    let payload = format!("{}.{expires_unix}", account.simple());
    let signature = mac(secret, &format!("{payload}.{}", purpose.word()))
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{payload}.{signature}")
}

/// The account a token grants at `now_unix`, when its signature (checked in
/// constant time) and expiry hold.
pub fn verify(secret: &[u8], token: &str, now_unix: i64, purpose: Purpose) -> Option<Uuid> {
    let mut parts = token.splitn(3, '.');
    let (account, expires, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let signature = hex::decode(signature).ok()?;
    let m = mac(secret, &format!("{account}.{expires}.{}", purpose.word()))?;
    m.verify_slice(&signature).ok()?;
    let expires: i64 = expires.parse().ok()?;
    (now_unix < expires).then(|| Uuid::parse_str(account).ok())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hold_only_for_their_purpose_secret_and_time() {
        let account = Uuid::new_v4();
        let t = sign(b"k1", account, 1_000, Purpose::Link);
        assert_eq!(verify(b"k1", &t, 999, Purpose::Link), Some(account));
        assert_eq!(verify(b"k1", &t, 1_000, Purpose::Link), None);
        assert_eq!(verify(b"k2", &t, 999, Purpose::Link), None);
        assert_eq!(verify(b"k1", &t, 999, Purpose::Session), None);
        let forged = t.replace(".1000.", ".9999.");
        assert_eq!(verify(b"k1", &forged, 999, Purpose::Link), None);
        assert_eq!(verify(b"k1", "garbage", 0, Purpose::Link), None);
    }

    #[test]
    fn keys_are_long_and_hashed() {
        let k = generate();
        assert!(k.starts_with(KEY_PREFIX) && k.len() == KEY_PREFIX.len() + 64);
        assert_ne!(generate(), k);
        assert_eq!(hash(&k).len(), 64);
        assert_eq!(display_prefix(&k).len(), 11);
    }
}
