//! The CRMs' REST APIs, read-only: the changed entity (amoCRM v4
//! `leads/{id}?with=contacts`, `contacts/{id}`; Bitrix24 `crm.deal.get`,
//! `crm.lead.get`, `crm.contact.get`, `crm.deal.contact.items.get`). A
//! webhook is only a trigger: decisions are made on what these return.
//!
//! Failures come back classified (the `outbound` policy plus each CRM's own
//! signals) so the caller knows whether to wait, retry or give up; no error
//! carries a token or the Bitrix24 webhook URL (it holds a secret).
//!
//! `session.rs` is how the services call them: per connection, paced
//! across replicas and with OAuth tokens refreshed (`oauth.rs`) once.

pub mod amocrm;
pub mod bitrix24;
pub mod oauth;
pub mod session;

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrmError {
    /// Rate limited (amoCRM 429, Bitrix24 `QUERY_LIMIT_EXCEEDED` /
    /// `OPERATION_TIME_LIMIT`): wait at least this long.
    #[error("the CRM asks us to slow down (retry in {retry_after:?})")]
    Throttled { retry_after: Duration },
    /// Not reached, timed out, 5xx: try again later.
    #[error("the CRM is unavailable: {0}")]
    Unavailable(String),
    /// The token is wrong or expired, or lacks a permission: an operator (or
    /// a token refresh) must fix it.
    #[error("the CRM refuses our credentials: {0}")]
    Auth(String),
    /// The entity does not exist (any more).
    #[error("not found in the CRM")]
    NotFound,
    /// The CRM rejected the request itself.
    #[error("the CRM rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
}

/// How long a throttled CRM is left alone when it does not say.
pub const DEFAULT_THROTTLE: Duration = Duration::from_secs(60);
