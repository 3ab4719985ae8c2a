//! Calling one connection's CRM the way every replica must: each request
//! waits for its moment in the connection's shared pace
//! ([`Connections::reserve_request`]), a CRM that says "slow down" holds
//! back every replica ([`Connections::hold_requests`]), and an OAuth token is
//! refreshed before it expires or when the CRM refuses it — by one replica
//! at a time, under the connection's lock, the new pair stored before the
//! lock is released; whoever waited on the lock uses that pair
//! ([`Connections::refresh_locked`]).
//!
//! Where the pace and the tokens are kept is not this crate's business: the
//! caller passes a [`Connections`] (the services use PostgreSQL's, in
//! `storage::crm_sessions`).

use crate::{
    CrmError,
    amocrm::AmoClient,
    bitrix24::Bitrix24Client,
    oauth::{self, OAuthApp},
};
use domain::ids::{ConnectionId, UserAccountId};
use domain::level::CrmType;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::{future::Future, time::Duration};

/// An OAuth integration/application.
#[derive(Clone)]
pub struct OAuthClient {
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: Option<String>,
}

/// What calling a connection's CRM needs. Secrets never print.
#[derive(Clone)]
pub struct Access {
    pub connection_id: ConnectionId,
    pub user_account_id: UserAccountId,
    pub crm_type: CrmType,
    /// amoCRM: the account's address; Bitrix24: the incoming webhook URL (a
    /// secret) or the OAuth app's client endpoint.
    pub base_url: SecretString,
    pub access_token: Option<SecretString>,
    pub refresh_token: Option<SecretString>,
    pub token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Set for OAuth connections (they can refresh their token).
    pub oauth: Option<OAuthClient>,
    pub default_region: String,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("connection_id", &self.connection_id)
            .field("crm_type", &self.crm_type)
            .field("oauth", &self.oauth.is_some())
            .field("token_expires_at", &self.token_expires_at)
            .finish_non_exhaustive()
    }
}

/// A refreshed OAuth pair, to be stored before the connection's lock is let go.
pub struct NewTokens {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Where every replica's sessions share a connection's credentials and
/// pace. Failures of the store itself come back as
/// [`CrmError::Unavailable`] (try again later).
pub trait Connections: Send + Sync {
    /// The connection's credentials; `None`: no such connection.
    fn access(
        &self,
        connection_id: ConnectionId,
    ) -> impl Future<Output = Result<Option<Access>, CrmError>> + Send;

    /// Takes the connection's next request slot (`interval` apart, up to
    /// `burst` at once, across replicas); returns how long to wait for it.
    fn reserve_request(
        &self,
        connection_id: ConnectionId,
        interval: Duration,
        burst: u32,
    ) -> impl Future<Output = Result<Duration, CrmError>> + Send;

    /// No request to this connection for `wait` (the CRM said slow down).
    fn hold_requests(
        &self,
        connection_id: ConnectionId,
        wait: Duration,
    ) -> impl Future<Output = Result<(), CrmError>> + Send;

    /// Runs `refresh` on the stored credentials with the connection locked
    /// against other replicas' refreshes; tokens it returns are stored
    /// before the lock is released. Returns the credentials now stored.
    fn refresh_locked<F, Fut>(
        &self,
        connection_id: ConnectionId,
        refresh: F,
    ) -> impl Future<Output = Result<Access, CrmError>> + Send
    where
        F: FnOnce(Access) -> Fut + Send,
        Fut: Future<Output = Result<Option<NewTokens>, CrmError>> + Send;
}

/// `[crm]`: how fast each CRM may be called, and OAuth.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmSettings {
    /// amoCRM allows 7 requests/s; this many leaves room for clock jitter.
    pub amocrm_requests_per_second: f64,
    /// Bitrix24's bucket drains 2 requests/s…
    pub bitrix24_requests_per_second: f64,
    /// …and holds 50; we never fill it past this.
    pub bitrix24_burst: u32,
    /// Bitrix24's OAuth server (token refresh).
    pub bitrix24_oauth_url: String,
    /// Refresh an OAuth token this long before it expires.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub refresh_before: Duration,
    /// Each CRM request ends after this long (amoCRM's own SDK waits 20 s).
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub timeout: Duration,
}

impl Default for CrmSettings {
    fn default() -> Self {
        CrmSettings {
            amocrm_requests_per_second: 6.0,
            bitrix24_requests_per_second: 2.0,
            bitrix24_burst: 40,
            bitrix24_oauth_url: "https://oauth.bitrix.info/oauth/token/".into(),
            refresh_before: Duration::from_secs(5 * 60),
            timeout: Duration::from_secs(20),
        }
    }
}

/// [`CrmSettings`] checked and parsed.
#[derive(Debug, Clone)]
pub struct CrmPolicy {
    amocrm_interval: Duration,
    bitrix24_interval: Duration,
    bitrix24_burst: u32,
    bitrix24_oauth_url: String,
    refresh_before: chrono::Duration,
    /// Every CRM request and token refresh goes through this one client
    /// (its connection pool and TLS set-up are shared).
    http: reqwest::Client,
}

impl CrmPolicy {
    pub fn new(s: &CrmSettings) -> anyhow::Result<CrmPolicy> {
        let per = |key: &str, rate: f64| {
            anyhow::ensure!(
                rate.is_finite() && rate > 0.0,
                "invalid configuration: key `{key}` must be a positive number of requests per second, not {rate}"
            );
            Ok(Duration::from_secs_f64(1.0 / rate))
        };
        Ok(CrmPolicy {
            amocrm_interval: per(
                "crm.amocrm_requests_per_second",
                s.amocrm_requests_per_second,
            )?,
            bitrix24_interval: per(
                "crm.bitrix24_requests_per_second",
                s.bitrix24_requests_per_second,
            )?,
            bitrix24_burst: s.bitrix24_burst.max(1),
            bitrix24_oauth_url: s.bitrix24_oauth_url.clone(),
            refresh_before: chrono::Duration::from_std(s.refresh_before)
                .unwrap_or_else(|_| chrono::Duration::minutes(5)),
            http: outbound::client(s.timeout)?,
        })
    }

    /// (interval, burst) for one CRM.
    fn pace(&self, crm: CrmType) -> (Duration, u32) {
        match crm {
            CrmType::AmoCrm => (self.amocrm_interval, 1),
            CrmType::Bitrix24 => (self.bitrix24_interval, self.bitrix24_burst),
        }
    }
}

/// A client for the connection's CRM.
#[derive(Clone)]
pub enum Client {
    Amo(AmoClient),
    Bitrix24(Bitrix24Client),
}

impl Client {
    pub fn amo(&self) -> Result<&AmoClient, CrmError> {
        match self {
            Client::Amo(c) => Ok(c),
            Client::Bitrix24(_) => Err(wrong_crm()),
        }
    }

    pub fn bitrix24(&self) -> Result<&Bitrix24Client, CrmError> {
        match self {
            Client::Bitrix24(c) => Ok(c),
            Client::Amo(_) => Err(wrong_crm()),
        }
    }
}

fn wrong_crm() -> CrmError {
    CrmError::Rejected {
        status: 0,
        message: "a call for another CRM than the connection's".into(),
    }
}

/// One connection's CRM, called paced and authorised.
pub struct Session<C> {
    connections: C,
    policy: CrmPolicy,
    access: Access,
    refreshed: bool,
}

impl<C: Connections> Session<C> {
    /// `None`: no such connection.
    pub async fn open(
        connections: C,
        policy: CrmPolicy,
        connection_id: ConnectionId,
    ) -> Result<Option<Session<C>>, CrmError> {
        let access = connections.access(connection_id).await?;
        Ok(access.map(|access| Session {
            connections,
            policy,
            access,
            refreshed: false,
        }))
    }

    pub fn access(&self) -> &Access {
        &self.access
    }

    fn client(&self) -> Result<Client, CrmError> {
        let http = self.policy.http.clone();
        match self.access.crm_type {
            CrmType::AmoCrm => {
                let token = self
                    .access
                    .access_token
                    .clone()
                    .ok_or_else(|| CrmError::Auth("the connection has no API token".into()))?;
                Ok(Client::Amo(AmoClient::new(
                    http,
                    self.access.base_url.expose_secret(),
                    token,
                )))
            }
            CrmType::Bitrix24 => {
                // OAuth apps send their token; an incoming webhook's URL is its own key.
                let auth = self
                    .access
                    .oauth
                    .as_ref()
                    .and(self.access.access_token.clone());
                Ok(Client::Bitrix24(Bitrix24Client::new(
                    http,
                    self.access.base_url.clone(),
                    auth,
                )))
            }
        }
    }

    /// One CRM request: paced; refreshed and tried once more if the CRM
    /// refuses an OAuth token; a throttled answer holds every replica back.
    pub async fn call<T, F, Fut>(&mut self, f: F) -> Result<T, CrmError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, CrmError>>,
    {
        if self.expires_soon() {
            self.refresh().await?;
        }
        loop {
            self.wait_turn().await?;
            match f(self.client()?).await {
                Err(CrmError::Auth(_)) if self.access.oauth.is_some() && !self.refreshed => {
                    self.refresh().await?;
                }
                Err(CrmError::Throttled { retry_after }) => {
                    self.hold(retry_after).await;
                    return Err(CrmError::Throttled { retry_after });
                }
                other => return other,
            }
        }
    }

    pub async fn amo_lead(&mut self, id: &str) -> Result<Value, CrmError> {
        self.call(|c| async move { c.amo()?.lead(id).await }).await
    }

    pub async fn amo_contact(&mut self, id: &str) -> Result<Value, CrmError> {
        self.call(|c| async move { c.amo()?.contact(id).await })
            .await
    }

    pub async fn bitrix24_entity(&mut self, entity: &str, id: &str) -> Result<Value, CrmError> {
        self.call(|c| async move { c.bitrix24()?.entity(entity, id).await })
            .await
    }

    pub async fn bitrix24_deal_contacts(&mut self, id: &str) -> Result<Value, CrmError> {
        self.call(|c| async move { c.bitrix24()?.deal_contacts(id).await })
            .await
    }

    /// The amoCRM account's currency (`GET /api/v4/account` → `currency`).
    pub async fn amo_currency(&mut self) -> Result<Option<String>, CrmError> {
        let account = self
            .call(|c| async move { c.amo()?.account().await })
            .await?;
        Ok(account
            .get("currency")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned))
    }

    pub async fn amo_custom_fields(&mut self, entity: &str) -> Result<Vec<Value>, CrmError> {
        self.call(|c| async move { c.amo()?.custom_fields(entity).await })
            .await
    }

    pub async fn amo_pipelines(&mut self) -> Result<Value, CrmError> {
        self.call(|c| async move { c.amo()?.pipelines().await })
            .await
    }

    pub async fn bitrix24_fields(&mut self, entity: &str) -> Result<Value, CrmError> {
        self.call(|c| async move { c.bitrix24()?.fields(entity).await })
            .await
    }

    fn expires_soon(&self) -> bool {
        self.access.oauth.is_some()
            && !self.refreshed
            && self
                .access
                .token_expires_at
                .is_some_and(|at| at - self.policy.refresh_before <= chrono::Utc::now())
    }

    async fn wait_turn(&self) -> Result<(), CrmError> {
        let (interval, burst) = self.policy.pace(self.access.crm_type);
        let wait = self
            .connections
            .reserve_request(self.access.connection_id, interval, burst)
            .await?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    async fn hold(&self, retry_after: Duration) {
        let (interval, burst) = self.policy.pace(self.access.crm_type);
        let held = self
            .connections
            .hold_requests(self.access.connection_id, retry_after + interval * burst)
            .await;
        if let Err(e) = held {
            tracing::warn!(connection = %self.access.connection_id, error = %e, "could not hold back requests to a throttling CRM");
        }
    }

    /// Refreshes the OAuth token unless another replica already has: under
    /// the connection row's lock, the token we were using is compared with
    /// the stored one; only if they are the same is the refresh token spent.
    async fn refresh(&mut self) -> Result<(), CrmError> {
        self.refreshed = true;
        let stale = self
            .access
            .access_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned());
        let id = self.access.connection_id;
        let policy = self.policy.clone();
        let fresh = self
            .connections
            .refresh_locked(id, move |current: Access| async move {
                let current_token = current
                    .access_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned());
                if current_token != stale {
                    tracing::info!(connection = %id, "another replica refreshed the CRM token; using it");
                    return Ok(None);
                }
                let (Some(app), Some(refresh_token)) = (&current.oauth, &current.refresh_token)
                else {
                    return Err(CrmError::Auth(
                        "the token was refused and the connection has no refresh token".into(),
                    ));
                };
                let app = OAuthApp {
                    client_id: app.client_id.clone(),
                    client_secret: app.client_secret.clone(),
                    redirect_uri: app.redirect_uri.clone(),
                };
                let pair = match current.crm_type {
                    CrmType::AmoCrm => {
                        oauth::refresh_amocrm(
                            &policy.http,
                            current.base_url.expose_secret(),
                            &app,
                            refresh_token,
                        )
                        .await?
                    }
                    CrmType::Bitrix24 => {
                        oauth::refresh_bitrix24(
                            &policy.http,
                            &policy.bitrix24_oauth_url,
                            &app,
                            refresh_token,
                        )
                        .await?
                    }
                };
                let expires_at = chrono::Utc::now()
                    + chrono::Duration::from_std(pair.expires_in)
                        .unwrap_or_else(|_| chrono::Duration::hours(1));
                tracing::info!(connection = %id, %expires_at, "CRM token refreshed");
                Ok(Some(NewTokens {
                    access_token: pair.access_token,
                    refresh_token: pair.refresh_token,
                    expires_at,
                }))
            })
            .await?;
        self.access = fresh;
        Ok(())
    }
}
