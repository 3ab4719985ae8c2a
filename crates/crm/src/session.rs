//! Calling one connection's CRM the way every replica must: each request
//! waits for its moment in the connection's shared pace (one row in
//! PostgreSQL, `storage::crm::reserve_request`), a CRM that says "slow
//! down" holds back every replica (`hold_requests`), and an OAuth token is
//! refreshed before it expires or when the CRM refuses it — by one replica
//! at a time, under the connection row's lock, the new pair stored before
//! the lock is released; whoever waited on the lock uses that pair.

use crate::{
    CrmError,
    amocrm::AmoClient,
    bitrix24::Bitrix24Client,
    oauth::{self, OAuthApp},
};
use diesel_async::AsyncConnection;
use domain::level::CrmType;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use std::{future::Future, time::Duration};
use storage::{DbPool, crm::Access};
use uuid::Uuid;

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
    pub refresh_before: String,
    /// Each CRM request ends after this long (amoCRM's own SDK waits 20 s).
    pub timeout: String,
}

impl Default for CrmSettings {
    fn default() -> Self {
        CrmSettings {
            amocrm_requests_per_second: 6.0,
            bitrix24_requests_per_second: 2.0,
            bitrix24_burst: 40,
            bitrix24_oauth_url: "https://oauth.bitrix.info/oauth/token/".into(),
            refresh_before: "5m".into(),
            timeout: "20s".into(),
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
        let refresh_before =
            runtime::settings::duration_setting("crm.refresh_before", &s.refresh_before)?;
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
            refresh_before: chrono::Duration::from_std(refresh_before)
                .unwrap_or_else(|_| chrono::Duration::minutes(5)),
            http: outbound::client(runtime::settings::duration_setting(
                "crm.timeout",
                &s.timeout,
            )?)?,
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

fn database(e: impl std::fmt::Display) -> CrmError {
    CrmError::Unavailable(format!("the database: {e}"))
}

/// One connection's CRM, called paced and authorised.
pub struct Session {
    pool: DbPool,
    policy: CrmPolicy,
    access: Access,
    refreshed: bool,
}

impl Session {
    /// `None`: no such connection.
    pub async fn open(
        pool: DbPool,
        policy: CrmPolicy,
        connection_id: Uuid,
    ) -> Result<Option<Session>, CrmError> {
        let mut conn = pool.get().await.map_err(database)?;
        let access = storage::crm::access(&mut conn, connection_id)
            .await
            .map_err(database)?;
        drop(conn);
        Ok(access.map(|access| Session {
            pool,
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
        let mut conn = self.pool.get().await.map_err(database)?;
        let wait =
            storage::crm::reserve_request(&mut conn, self.access.connection_id, interval, burst)
                .await
                .map_err(database)?;
        drop(conn);
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    async fn hold(&self, retry_after: Duration) {
        let (interval, burst) = self.policy.pace(self.access.crm_type);
        let held = async {
            let mut conn = self.pool.get().await.map_err(database)?;
            storage::crm::hold_requests(
                &mut conn,
                self.access.connection_id,
                retry_after + interval * burst,
            )
            .await
            .map_err(database)
        };
        if let Err(e) = held.await {
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
        let mut conn = self.pool.get().await.map_err(database)?;
        let fresh = conn
            .transaction::<_, RefreshError, _>(async |c| {
                let current = storage::crm::lock_access(c, id)
                    .await?
                    .ok_or_else(|| CrmError::Auth("the connection was removed".into()))?;
                let current_token = current
                    .access_token
                    .as_ref()
                    .map(|t| t.expose_secret().to_owned());
                if current_token != stale {
                    tracing::info!(connection = %id, "another replica refreshed the CRM token; using it");
                    return Ok(current);
                }
                let (Some(app), Some(refresh_token)) = (&current.oauth, &current.refresh_token)
                else {
                    return Err(CrmError::Auth(
                        "the token was refused and the connection has no refresh token".into(),
                    )
                    .into());
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
                storage::crm::store_tokens(
                    c,
                    id,
                    pair.access_token.expose_secret(),
                    pair.refresh_token.expose_secret(),
                    expires_at,
                )
                .await?;
                tracing::info!(connection = %id, %expires_at, "CRM token refreshed");
                Ok(Access {
                    access_token: Some(pair.access_token),
                    refresh_token: Some(pair.refresh_token),
                    token_expires_at: Some(expires_at),
                    ..current
                })
            })
            .await
            .map_err(|e| match e {
                RefreshError::Crm(e) => e,
                RefreshError::Db(e) => database(e),
            })?;
        self.access = fresh;
        Ok(())
    }
}

enum RefreshError {
    Crm(CrmError),
    Db(diesel::result::Error),
}

impl From<diesel::result::Error> for RefreshError {
    fn from(e: diesel::result::Error) -> Self {
        RefreshError::Db(e)
    }
}

impl From<CrmError> for RefreshError {
    fn from(e: CrmError) -> Self {
        RefreshError::Crm(e)
    }
}
