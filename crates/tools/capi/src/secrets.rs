//! `capi secrets`: the keys stored credentials are encrypted with.
//!
//! The key comes from `CAPI_SECRETS__KEY` (earlier keys from
//! `CAPI_SECRETS__PREVIOUS_KEYS`), as for the services. Rotation with the
//! services running: give every service the new key as `key` and the old
//! one in `previous_keys` (a rolling restart), run `capi secrets rotate`,
//! then drop the old key.

use crate::{Failure, connect};
use clap::Subcommand;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use storage::secrets::{self, Keys};

#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Print a new random key (base64 of 32 bytes) for CAPI_SECRETS__KEY.
    GenerateKey,
    /// How many stored credentials each key sealed, per column (and any
    /// plaintext left).
    Status,
    /// Re-encrypt every stored credential under CAPI_SECRETS__KEY: those
    /// sealed with a key in CAPI_SECRETS__PREVIOUS_KEYS and any plaintext.
    /// Safe with the services running (a value changed meanwhile is left
    /// to its writer, who sealed it with the new key).
    Rotate,
}

#[derive(Deserialize)]
struct Section {
    secrets: runtime::settings::SecretsSettings,
}

const DEFAULTS: &str = "[secrets]\nkey = \"\"\nprevious_keys = \"\"\n";

/// The configured keys, or none if no key is set; a key that is set but
/// unusable is an error. Without a key, commands that store or read a
/// credential fail saying so.
pub fn keys_from_env() -> Result<Keys, Failure> {
    let s: Section =
        runtime::settings::load_section(DEFAULTS).map_err(|e| Failure::input(e.to_string()))?;
    if s.secrets.key.expose_secret().trim().is_empty() {
        return Ok(Keys::none());
    }
    let ring = s
        .secrets
        .keyring()
        .map_err(|e| Failure::input(e.to_string()))?;
    Ok(Keys::from(ring))
}

fn ring(keys: &Keys) -> Result<&secrets::Keyring, Failure> {
    keys.ring().map_err(|e| Failure::input(e.to_string()))
}

pub async fn secrets(url: &str, keys: &Keys, c: SecretsCommand) -> Result<(), Failure> {
    match c {
        SecretsCommand::GenerateKey => {
            out!("{}", secrets::Key::generate().expose_secret());
        }
        SecretsCommand::Status => {
            let mut conn = connect(url).await?;
            let status = secrets::rotate::status(&mut conn)
                .await
                .map_err(anyhow::Error::from)?;
            let primary = keys.ring().ok().map(|r| r.primary_id().to_owned());
            for c in status {
                let by_key: serde_json::Map<String, serde_json::Value> =
                    c.by_key.into_iter().map(|(k, n)| (k, json!(n))).collect();
                out!(
                    "{}",
                    json!({"column": c.column, "values_by_key": by_key, "primary_key": primary})
                );
            }
        }
        SecretsCommand::Rotate => {
            let ring = ring(keys)?;
            let mut conn = connect(url).await?;
            let done = secrets::rotate::reseal(&mut conn, ring, true).await?;
            let rotated: u64 = done.iter().map(|d| d.rotated).sum();
            let encrypted: u64 = done.iter().map(|d| d.encrypted).sum();
            out!(
                "{}",
                json!({"key": ring.primary_id(), "rotated": rotated, "encrypted": encrypted})
            );
        }
    }
    Ok(())
}

/// After the schema migrations: seal any plaintext credential (rows from
/// before encryption, or written by hand). Without a key, refuses when
/// there is plaintext to seal.
pub async fn seal_plaintext(url: &str, keys: &Keys) -> Result<u64, Failure> {
    let mut conn = connect(url).await?;
    match keys.ring() {
        Ok(ring) => {
            let done = secrets::rotate::reseal(&mut conn, ring, false).await?;
            Ok(done.iter().map(|d| d.encrypted).sum())
        }
        Err(_) => {
            let status = secrets::rotate::status(&mut conn)
                .await
                .map_err(anyhow::Error::from)?;
            let plaintext: i64 = status
                .iter()
                .flat_map(|c| &c.by_key)
                .filter(|(k, _)| k == "plaintext")
                .map(|(_, n)| n)
                .sum();
            if plaintext > 0 {
                return Err(Failure::input(format!(
                    "{plaintext} stored credential(s) are not encrypted: set CAPI_SECRETS__KEY \
                     (`capi secrets generate-key`) and run `capi migrate` again"
                )));
            }
            Ok(0)
        }
    }
}
