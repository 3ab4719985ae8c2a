//! The keys: the primary seals, every key opens what it sealed.

use super::{Column, SecretError};
use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use std::fmt;

pub(super) const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 12;

/// One AES-256 key and its id. `Debug` shows the id only.
pub struct Key {
    id: String,
    cipher: Aes256Gcm,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Why a configured key is unusable (the key itself is never shown).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error(
        "secrets.key (CAPI_SECRETS__KEY) is not set: every stored credential is encrypted with it; \
         `capi secrets generate-key` prints a new one"
    )]
    Missing,
    #[error("{setting}: not base64 (`capi secrets generate-key` prints a valid key)")]
    NotBase64 { setting: &'static str },
    #[error("{setting}: {len} bytes, an AES-256 key is 32 bytes (base64 of 32 random bytes)")]
    WrongLength { setting: &'static str, len: usize },
    #[error(
        "{setting}: a few repeated byte values, not random (`capi secrets generate-key` prints a random key)"
    )]
    NotRandom { setting: &'static str },
}

impl Key {
    /// A key from its base64 text (as `generate` prints it).
    pub fn parse(base64: &str, setting: &'static str) -> Result<Key, KeyError> {
        let bytes = STANDARD
            .decode(base64.trim())
            .map_err(|_| KeyError::NotBase64 { setting })?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| KeyError::WrongLength {
            setting,
            len: bytes.len(),
        })?;
        if !domain::signing_key::looks_random(&bytes) {
            return Err(KeyError::NotRandom { setting });
        }
        let digest = Sha256::digest([b"capi-secrets-key:".as_slice(), &bytes].concat());
        Ok(Key {
            id: hex::encode(&digest[..4]),
            cipher,
        })
    }

    /// A new random key, as base64 text.
    pub fn generate() -> SecretString {
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        SecretString::from(STANDARD.encode(bytes))
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The primary key (seals) and earlier keys (open only, until rotated away).
#[derive(Debug)]
pub struct Keyring {
    primary: Key,
    previous: Vec<Key>,
}

impl Keyring {
    pub fn new(primary: Key, previous: Vec<Key>) -> Keyring {
        Keyring { primary, previous }
    }

    /// From the settings: `key` (required) and `previous_keys`
    /// (comma-separated, may be empty).
    pub fn from_settings(key: &SecretString, previous: &SecretString) -> Result<Keyring, KeyError> {
        let key = key.expose_secret().trim();
        if key.is_empty() {
            return Err(KeyError::Missing);
        }
        let primary = Key::parse(key, "secrets.key")?;
        let previous = previous
            .expose_secret()
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Key::parse(k, "secrets.previous_keys"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Keyring::new(primary, previous))
    }

    pub fn primary_id(&self) -> &str {
        &self.primary.id
    }

    /// The ids of every configured key, the primary first.
    pub fn ids(&self) -> Vec<&str> {
        std::iter::once(&self.primary)
            .chain(&self.previous)
            .map(|k| k.id.as_str())
            .collect()
    }

    pub fn seal(&self, column: Column, plain: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let aad = column.aad();
        // Encrypting into a Vec cannot fail for inputs under 64 GiB.
        let sealed = self
            .primary
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut blob = Vec::with_capacity(NONCE_LEN + sealed.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.primary.id, STANDARD.encode(blob))
    }

    /// The id of the key that sealed `stored`, if it is sealed at all.
    pub fn key_id(stored: &str) -> Option<&str> {
        stored
            .strip_prefix(PREFIX)?
            .split_once(':')
            .map(|(id, _)| id)
    }

    pub fn open(&self, column: Column, stored: &str) -> Result<SecretString, SecretError> {
        let name = column.name();
        let rest = stored
            .strip_prefix(PREFIX)
            .ok_or_else(|| SecretError::NotEncrypted {
                column: name.clone(),
            })?;
        let damaged = || SecretError::Damaged {
            column: name.clone(),
        };
        let (id, data) = rest.split_once(':').ok_or_else(damaged)?;
        let key = std::iter::once(&self.primary)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| SecretError::UnknownKey {
                column: name.clone(),
                key_id: id.to_owned(),
            })?;
        let blob = STANDARD.decode(data).map_err(|_| damaged())?;
        if blob.len() < NONCE_LEN {
            return Err(damaged());
        }
        let (nonce, sealed) = blob.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: column.aad().as_bytes(),
                },
            )
            .map_err(|_| damaged())?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| damaged())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::secrets::{AD_ACCESS_TOKEN, AD_APP_SECRET};

    fn ring() -> (Keyring, SecretString) {
        let k = Key::generate();
        (
            Keyring::from_settings(&k, &SecretString::from("")).unwrap(),
            k,
        )
    }

    #[test]
    fn sealed_values_open_and_show_nothing_of_the_plaintext() {
        let (ring, _) = ring();
        let sealed = ring.seal(AD_ACCESS_TOKEN, "EAAB-token-123");
        assert!(sealed.starts_with(&format!("enc:v1:{}:", ring.primary_id())));
        assert!(!sealed.contains("EAAB"));
        assert_ne!(
            sealed,
            ring.seal(AD_ACCESS_TOKEN, "EAAB-token-123"),
            "fresh nonce each time"
        );
        let opened = ring.open(AD_ACCESS_TOKEN, &sealed).unwrap();
        assert_eq!(opened.expose_secret(), "EAAB-token-123");
    }

    #[test]
    fn another_column_another_key_or_a_damaged_value_does_not_open() {
        let (ring, _) = ring();
        let sealed = ring.seal(AD_ACCESS_TOKEN, "EAAB-token-123");
        assert!(matches!(
            ring.open(AD_APP_SECRET, &sealed),
            Err(SecretError::Damaged { .. })
        ));
        // The same kind in another table opens (a user's fallback token).
        assert!(
            ring.open(crate::secrets::USER_ACCESS_TOKEN, &sealed)
                .is_ok()
        );
        let (other, _) = self::ring();
        assert!(matches!(
            other.open(AD_ACCESS_TOKEN, &sealed),
            Err(SecretError::UnknownKey { .. })
        ));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(flipped).unwrap();
        assert!(matches!(
            ring.open(AD_ACCESS_TOKEN, &flipped),
            Err(SecretError::Damaged { .. })
        ));
        assert!(matches!(
            ring.open(AD_ACCESS_TOKEN, "EAAB-plaintext"),
            Err(SecretError::NotEncrypted { .. })
        ));
    }

    #[test]
    fn a_previous_key_still_opens_what_it_sealed() {
        let (old_ring, old_key) = ring();
        let sealed = old_ring.seal(AD_ACCESS_TOKEN, "old");
        let new_key = Key::generate();
        let both = Keyring::from_settings(&new_key, &old_key).unwrap();
        assert_eq!(
            both.open(AD_ACCESS_TOKEN, &sealed).unwrap().expose_secret(),
            "old"
        );
        assert_ne!(both.primary_id(), old_ring.primary_id());
        assert_eq!(Keyring::key_id(&sealed), Some(old_ring.primary_id()));
    }

    #[test]
    fn bad_keys_are_refused_without_showing_them() {
        let empty = SecretString::from("");
        assert_eq!(
            Keyring::from_settings(&SecretString::from(" "), &empty).unwrap_err(),
            KeyError::Missing
        );
        let e = Keyring::from_settings(&SecretString::from("not base64!"), &empty).unwrap_err();
        assert!(!e.to_string().contains("not base64!"));
        let short = SecretString::from(STANDARD.encode([1u8; 16]));
        assert_eq!(
            Keyring::from_settings(&short, &empty).unwrap_err(),
            KeyError::WrongLength {
                setting: "secrets.key",
                len: 16
            }
        );
        let patterned = SecretString::from(STANDARD.encode([7u8; 32]));
        assert_eq!(
            Keyring::from_settings(&patterned, &empty).unwrap_err(),
            KeyError::NotRandom {
                setting: "secrets.key"
            }
        );
        let (ring, key) = ring();
        let shown = format!("{ring:?}");
        assert!(!shown.contains(key.expose_secret()), "{shown}");
        assert!(shown.contains(ring.primary_id()));
    }
}
