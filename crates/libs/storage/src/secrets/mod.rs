//! Credentials at rest. Every stored token, API key, app secret and webhook
//! secret is sealed with AES-256-GCM before it is written and opened after
//! it is read; in memory it is a `SecretString` (its `Debug` prints
//! `[REDACTED]`).
//!
//! A sealed value is `enc:v1:<key id>:<base64(nonce ‖ ciphertext ‖ tag)>`,
//! with the column's name as associated data (a value copied into another
//! column does not open). The key id is the start of the key's SHA-256, so
//! `capi secrets rotate` can find what another key sealed. An empty string
//! stays empty: it means "none" in the schema and is no secret.
//!
//! The keys come from the environment (`secrets.key`, `secrets.previous_keys`)
//! and travel as [`Keys`], held by the [`crate::Store`] beside the pool: a
//! query that seals or opens a credential takes them as an argument. Nothing
//! here is process-wide, so two handles may hold two keyrings (a rotation
//! test does).

mod keyring;
pub mod rotate;

pub use keyring::{Key, KeyError, Keyring};

use secrecy::SecretString;
use std::sync::Arc;

/// A credential column: its table, its name, its table's key (as text) and
/// the kind of credential it holds (the associated data of its
/// ciphertexts: a Meta token opens as a Meta token whether the ad account
/// or the user account holds it, and as nothing else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub table: &'static str,
    pub column: &'static str,
    pub id: &'static str,
    pub kind: &'static str,
}

impl Column {
    const fn new(table: &'static str, column: &'static str, id: &'static str) -> Column {
        Column {
            table,
            column,
            id,
            kind: column,
        }
    }

    const fn of_kind(self, kind: &'static str) -> Column {
        Column { kind, ..self }
    }

    /// `table.column`, for messages.
    pub fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }

    /// The associated data sealed with each value.
    pub(crate) fn aad(&self) -> String {
        if self.kind == self.column {
            self.name()
        } else {
            self.kind.to_owned()
        }
    }
}

pub const USER_ACCESS_TOKEN: Column =
    Column::new("user_accounts", "access_token", "id").of_kind("meta.access_token");
pub const USER_APP_SECRET: Column =
    Column::new("user_accounts", "app_secret", "id").of_kind("meta.app_secret");
pub const USER_TELEGRAM_BOT_TOKEN: Column =
    Column::new("user_accounts", "telegram_bot_token", "id");
pub const AD_ACCESS_TOKEN: Column =
    Column::new("ad_accounts", "access_token", "id").of_kind("meta.access_token");
pub const AD_APP_SECRET: Column =
    Column::new("ad_accounts", "app_secret", "id").of_kind("meta.app_secret");
/// amoCRM's address; Bitrix24's incoming webhook URL, which holds its secret.
pub const CRM_BASE_URL: Column = Column::new("crm_connections", "base_url", "id");
pub const CRM_ACCESS_TOKEN: Column = Column::new("crm_connections", "access_token", "id");
pub const CRM_REFRESH_TOKEN: Column = Column::new("crm_connections", "refresh_token", "id");
pub const CRM_WEBHOOK_SECRET: Column = Column::new("crm_connections", "webhook_secret", "id");
pub const CRM_APPLICATION_TOKEN: Column = Column::new("crm_connections", "application_token", "id");
pub const CRM_OAUTH_CLIENT_SECRET: Column =
    Column::new("crm_connections", "oauth_client_secret", "id");
/// An OAuth authorisation under way (set-up pages): the integration's secret.
pub const CRM_OAUTH_STATE_CLIENT_SECRET: Column =
    Column::new("crm_oauth_states", "client_secret", "state_hash");
/// …and Bitrix24's application token (its events carry it).
pub const CRM_OAUTH_STATE_APPLICATION_TOKEN: Column =
    Column::new("crm_oauth_states", "application_token", "state_hash");
pub const NUMBER_WEBHOOK_SECRET: Column =
    Column::new("whatsapp_phone_numbers", "webhook_secret", "instance_name");
pub const NUMBER_EVOLUTION_API_KEY: Column = Column::new(
    "whatsapp_phone_numbers",
    "evolution_api_key",
    "instance_name",
);
pub const NUMBER_CLOUD_ACCESS_TOKEN: Column = Column::new(
    "whatsapp_phone_numbers",
    "cloud_access_token",
    "instance_name",
);

/// Every column that holds a credential.
pub const COLUMNS: [Column; 16] = [
    USER_ACCESS_TOKEN,
    USER_APP_SECRET,
    USER_TELEGRAM_BOT_TOKEN,
    AD_ACCESS_TOKEN,
    AD_APP_SECRET,
    CRM_BASE_URL,
    CRM_ACCESS_TOKEN,
    CRM_REFRESH_TOKEN,
    CRM_WEBHOOK_SECRET,
    CRM_APPLICATION_TOKEN,
    CRM_OAUTH_CLIENT_SECRET,
    CRM_OAUTH_STATE_CLIENT_SECRET,
    CRM_OAUTH_STATE_APPLICATION_TOKEN,
    NUMBER_WEBHOOK_SECRET,
    NUMBER_EVOLUTION_API_KEY,
    NUMBER_CLOUD_ACCESS_TOKEN,
];

/// What went wrong sealing or opening a credential. Never carries the
/// value or a key.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no encryption key: set secrets.key (CAPI_SECRETS__KEY); `capi secrets generate-key` makes one"
    )]
    NoKey,
    #[error(
        "{column} holds a value that is not encrypted: run `capi migrate` (it encrypts stored credentials)"
    )]
    NotEncrypted { column: String },
    #[error(
        "{column} was encrypted with key {key_id}, which is not configured (add it to secrets.previous_keys)"
    )]
    UnknownKey { column: String, key_id: String },
    #[error("{column} holds a value that does not decrypt (damaged, or moved from another column)")]
    Damaged { column: String },
}

impl From<SecretError> for diesel::result::Error {
    fn from(e: SecretError) -> Self {
        diesel::result::Error::DeserializationError(Box::new(e))
    }
}

/// The keys this handle seals and opens with, or none (the CLI without
/// `CAPI_SECRETS__KEY`: commands that touch a credential then fail with
/// [`SecretError::NoKey`]). Cheap to clone.
#[derive(Clone, Default)]
pub struct Keys(Option<Arc<Keyring>>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(ring) => write!(f, "Keys({ring:?})"),
            None => f.write_str("Keys(none)"),
        }
    }
}

impl From<Keyring> for Keys {
    fn from(ring: Keyring) -> Keys {
        Keys(Some(Arc::new(ring)))
    }
}

impl Keys {
    /// No key configured.
    pub fn none() -> Keys {
        Keys(None)
    }

    /// The keyring, or why there is none.
    pub fn ring(&self) -> Result<&Keyring, SecretError> {
        self.0.as_deref().ok_or(SecretError::NoKey)
    }

    /// The stored form of `plain` for `column` (empty stays empty).
    pub fn seal(&self, column: Column, plain: &str) -> Result<String, SecretError> {
        if plain.is_empty() {
            return Ok(String::new());
        }
        Ok(self.ring()?.seal(column, plain))
    }

    /// `seal` of an optional value.
    pub fn seal_opt(
        &self,
        column: Column,
        plain: Option<&str>,
    ) -> Result<Option<String>, SecretError> {
        plain.map(|p| self.seal(column, p)).transpose()
    }

    /// The credential a stored value holds; `None` for NULL or empty.
    pub fn open(
        &self,
        column: Column,
        stored: Option<&str>,
    ) -> Result<Option<SecretString>, SecretError> {
        match stored {
            None | Some("") => Ok(None),
            Some(s) => self.ring()?.open(column, s).map(Some),
        }
    }
}

/// Whether a stored value is sealed (or empty), without opening it.
pub fn is_sealed(stored: &str) -> bool {
    stored.is_empty() || stored.starts_with(keyring::PREFIX)
}

/// A credential as read, still sealed (a query that picks one of several
/// columns loads it like this, and the code that uses it opens it). Prints
/// nothing of its value.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Sealed(Option<String>);

impl From<Option<String>> for Sealed {
    fn from(stored: Option<String>) -> Sealed {
        Sealed(stored)
    }
}

impl From<String> for Sealed {
    fn from(stored: String) -> Sealed {
        Sealed(Some(stored))
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(s) if !s.is_empty() => f.write_str("Sealed([REDACTED])"),
            _ => f.write_str("Sealed(none)"),
        }
    }
}

impl Sealed {
    /// Whether a value is present (NULL and empty are none).
    pub fn is_some(&self) -> bool {
        self.0.as_deref().is_some_and(|s| !s.is_empty())
    }

    /// The credential, opened with `keys` as `column`'s kind.
    pub fn open(&self, keys: &Keys, column: Column) -> Result<Option<SecretString>, SecretError> {
        keys.open(column, self.0.as_deref())
    }
}
