//! API keys of the reports API and the dashboard's signed sign-in links.
//! A key is shown once; only its SHA-256 is stored (so is a dashboard
//! session's token). A link carries what it grants, signed with HMAC-SHA256.

use crate::ids::UserAccountId;
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

crate::text_enum! {
    /// What a dashboard session may do: a viewer reads the dashboard; an
    /// editor may also change the account's set-up (directions, numbers,
    /// CRM mapping, the bot).
    pub enum Role {
        Viewer = "viewer",
        Editor = "editor",
    }
}

/// What a sign-in link grants: one session for the account, with its role,
/// if the account's dashboard generation is still the one the link was made
/// in and its nonce was never used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkGrant {
    pub account: UserAccountId,
    pub generation: i32,
    pub expires_unix: i64,
    pub nonce: String,
    pub role: Role,
}

impl LinkGrant {
    /// The link's public name in the audit trail: the nonce's first 8
    /// characters (the nonce is spent at sign-in, so naming it grants
    /// nothing).
    pub fn link_id(&self) -> String {
        self.nonce.chars().take(8).collect()
    }
}

fn mac(secret: &[u8], payload: &str) -> Option<Hmac<Sha256>> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).ok()?;
    m.update(payload.as_bytes());
    Some(m)
}

/// A new random nonce for a link (128 bits, hex).
pub fn link_nonce() -> String {
    Uuid::new_v4().simple().to_string()
}

/// `account.generation.expiry.nonce.role.signature`, signed with HMAC-SHA256.
pub fn sign_link(secret: &[u8], grant: &LinkGrant) -> String {
    let payload = format!(
        "{}.{}.{}.{}.{}",
        grant.account.uuid().simple(),
        grant.generation,
        grant.expires_unix,
        grant.nonce,
        grant.role
    );
    let signature = mac(secret, &format!("{payload}.link"))
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{payload}.{signature}")
}

/// What a link grants at `now_unix`, when its signature (checked in
/// constant time) and expiry hold. A link made before roles (no role part)
/// grants a viewer.
pub fn verify_link(secret: &[u8], token: &str, now_unix: i64) -> Option<LinkGrant> {
    let (payload, signature) = token.rsplit_once('.')?;
    let signature = hex::decode(signature).ok()?;
    mac(secret, &format!("{payload}.link"))?
        .verify_slice(&signature)
        .ok()?;
    let mut parts = payload.split('.');
    let grant = LinkGrant {
        account: uuid::Uuid::parse_str(parts.next()?).ok()?.into(),
        generation: parts.next()?.parse().ok()?,
        expires_unix: parts.next()?.parse().ok()?,
        nonce: parts.next()?.to_owned(),
        role: parts
            .next()
            .map_or(Some(Role::Viewer), |r| r.parse().ok())?,
    };
    (parts.next().is_none() && now_unix < grant.expires_unix).then_some(grant)
}

/// A dashboard session's CSRF token: bound to the session (the hash of its
/// cookie's token) by HMAC, so a form carrying another session's token, or
/// none, is refused; it needs no storage and lives as long as the session.
pub fn csrf_token(secret: &[u8], session_hash: &str) -> String {
    mac(secret, &format!("{session_hash}.csrf"))
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default()
}

/// Whether `token` is the session's CSRF token (compared in constant time).
pub fn verify_csrf(secret: &[u8], session_hash: &str, token: &str) -> bool {
    let Ok(token) = hex::decode(token) else {
        return false;
    };
    mac(secret, &format!("{session_hash}.csrf")).is_some_and(|m| m.verify_slice(&token).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_hold_only_for_their_secret_and_time_and_say_what_they_grant() {
        let grant = LinkGrant {
            account: uuid::Uuid::new_v4().into(),
            generation: 3,
            expires_unix: 1_000,
            nonce: link_nonce(),
            role: Role::Viewer,
        };
        let t = sign_link(b"k1", &grant);
        assert_eq!(verify_link(b"k1", &t, 999), Some(grant.clone()));
        assert_eq!(verify_link(b"k1", &t, 1_000), None);
        assert_eq!(verify_link(b"k2", &t, 999), None);
        for forged in [
            t.replace(".1000.", ".9999."),
            t.replace(".3.", ".4."),
            t.replace(&grant.nonce, &link_nonce()),
            t.replace(".viewer.", ".editor."),
        ] {
            assert_eq!(verify_link(b"k1", &forged, 999), None, "{forged}");
        }
        assert_eq!(verify_link(b"k1", "garbage", 0), None);
        assert_ne!(link_nonce(), link_nonce());
        let editor = LinkGrant {
            role: Role::Editor,
            ..grant.clone()
        };
        let e = sign_link(b"k1", &editor);
        assert_eq!(
            verify_link(b"k1", &e, 999).map(|g| g.role),
            Some(Role::Editor)
        );
        // A link signed before roles existed (four parts) is a viewer's.
        let payload = format!("{}.3.1000.{}", grant.account.uuid().simple(), grant.nonce);
        let sig = mac(b"k1", &format!("{payload}.link"))
            .map(|m| hex::encode(m.finalize().into_bytes()))
            .unwrap_or_default();
        let old = verify_link(b"k1", &format!("{payload}.{sig}"), 999);
        assert_eq!(old, Some(grant.clone()));
    }

    #[test]
    fn a_csrf_token_holds_for_its_session_and_secret_only() {
        let t = csrf_token(b"k1", "session-a");
        assert!(verify_csrf(b"k1", "session-a", &t));
        assert!(!verify_csrf(b"k1", "session-b", &t));
        assert!(!verify_csrf(b"k2", "session-a", &t));
        assert!(!verify_csrf(b"k1", "session-a", ""));
        assert!(!verify_csrf(b"k1", "session-a", "zz"));
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
