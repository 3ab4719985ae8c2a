//! Setting an account up: the operations behind `capi direction …`,
//! `capi instance connect`, `capi direction crm-fields set` and the
//! dashboard's set-up pages. Both call these functions, so a rule (an event
//! name Meta refuses, a mapping that cannot match, a missing secret) is
//! checked once and refused with the same message wherever it comes from;
//! and every change is written to the audit trail (`setup_changes`) in the
//! transaction that makes it, with who made it and the settings before and
//! after (secrets as "set"/"unset", never their values).

pub mod audit;
pub mod cloud;
pub mod crm_connect;
pub mod crm_mapping;
pub mod crm_oauth;
pub mod directions;
pub mod evolution;
pub mod instances;
pub mod qualification;

/// Who makes a change, as the audit trail names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The `capi` CLI, as the operating-system user running it.
    Cli(String),
    /// A dashboard session, by the public id of the link that opened it.
    Link(String),
}

impl Actor {
    /// The CLI's user: `$USER` (or `$LOGNAME`), else "unknown".
    pub fn cli() -> Actor {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".to_owned());
        Actor::Cli(user)
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Cli(u) => write!(f, "cli:{u}"),
            Actor::Link(l) => write!(f, "link:{l}"),
        }
    }
}

/// Why a change was not made. `Invalid` and `NotFound` messages are the
/// user's to read (the CLI exits 2 with them, a page shows them).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The input breaks a rule.
    #[error("{0}")]
    Invalid(String),
    /// What it names does not exist (or is another account's).
    #[error("{0}")]
    NotFound(String),
    /// Evolution API or the CRM refused or failed; the message names it
    /// and never holds a secret.
    #[error("{0}")]
    Upstream(String),
    #[error("database: {0}")]
    Database(#[from] diesel::result::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl SetupError {
    pub(crate) fn invalid(m: impl Into<String>) -> SetupError {
        SetupError::Invalid(m.into())
    }

    /// True when the user's input (or what it names) is at fault.
    pub fn is_input(&self) -> bool {
        matches!(self, SetupError::Invalid(_) | SetupError::NotFound(_))
    }
}

pub type Result<T> = std::result::Result<T, SetupError>;

/// An id of Meta's (dataset, WABA, phone number id): digits only.
pub(crate) fn meta_id(what: &str, v: Option<&str>) -> Result<()> {
    match v {
        Some(v) if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.len() > 32 => Err(
            SetupError::invalid(format!("{what}: Meta's ids are digits only (got {v:?})")),
        ),
        _ => Ok(()),
    }
}

/// An optional text left empty is not given.
pub(crate) fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}
