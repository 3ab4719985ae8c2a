//! PostgreSQL as the CRM sessions' shared store (`crm::session::Connections`):
//! a connection's credentials opened with the store's keys, its request pace
//! in `crm_request_pace`, and a token refresh under the connection row's lock.

use crate::{DbPool, Store, crm};
use ::crm::{
    CrmError,
    session::{Access, Connections, NewTokens},
};
use diesel_async::AsyncConnection;
use domain::ids::ConnectionId;
use secrecy::ExposeSecret;
use std::{future::Future, time::Duration};

fn database(e: impl std::fmt::Display) -> CrmError {
    CrmError::Unavailable(format!("the database: {e}"))
}

impl Connections for Store {
    async fn access(&self, connection_id: ConnectionId) -> Result<Option<Access>, CrmError> {
        let mut conn = self.pool().get().await.map_err(database)?;
        crm::access(&mut conn, self.keys(), connection_id)
            .await
            .map_err(database)
    }

    async fn reserve_request(
        &self,
        connection_id: ConnectionId,
        interval: Duration,
        burst: u32,
    ) -> Result<Duration, CrmError> {
        let mut conn = self.pool().get().await.map_err(database)?;
        crm::reserve_request(&mut conn, connection_id, interval, burst)
            .await
            .map_err(database)
    }

    async fn hold_requests(
        &self,
        connection_id: ConnectionId,
        wait: Duration,
    ) -> Result<(), CrmError> {
        let mut conn = self.pool().get().await.map_err(database)?;
        crm::hold_requests(&mut conn, connection_id, wait)
            .await
            .map_err(database)
    }

    async fn refresh_locked<F, Fut>(
        &self,
        connection_id: ConnectionId,
        refresh: F,
    ) -> Result<Access, CrmError>
    where
        F: FnOnce(Access) -> Fut + Send,
        Fut: Future<Output = Result<Option<NewTokens>, CrmError>> + Send,
    {
        let pool: &DbPool = self.pool();
        let keys = self.keys();
        let mut conn = pool.get().await.map_err(database)?;
        conn.transaction::<_, RefreshError, _>(async |c| {
            let current = crm::lock_access(c, keys, connection_id)
                .await?
                .ok_or_else(|| CrmError::Auth("the connection was removed".into()))?;
            let Some(new) = refresh(current.clone()).await? else {
                return Ok(current);
            };
            crm::store_tokens(
                c,
                keys,
                connection_id,
                new.access_token.expose_secret(),
                new.refresh_token.expose_secret(),
                new.expires_at,
            )
            .await?;
            Ok(Access {
                access_token: Some(new.access_token),
                refresh_token: Some(new.refresh_token),
                token_expires_at: Some(new.expires_at),
                ..current
            })
        })
        .await
        .map_err(|e| match e {
            RefreshError::Crm(e) => e,
            RefreshError::Db(e) => database(e),
        })
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
