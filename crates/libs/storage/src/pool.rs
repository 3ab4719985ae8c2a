use crate::connect::PgTarget;
use diesel_async::{
    AsyncPgConnection, RunQueryDsl,
    pooled_connection::{
        AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod, deadpool::Pool,
    },
};
use std::time::Duration;

pub type DbPool = Pool<AsyncPgConnection>;

/// A lazily connecting pool: the service starts even while PostgreSQL is
/// down, and `/ready` says so until it comes back. The URL's TLS settings
/// (`sslmode`, `sslrootcert`: [`crate::connect`]) are checked here, so a
/// URL that cannot work stops the service at start.
pub fn connect_pool(url: &str, max_size: usize) -> anyhow::Result<DbPool> {
    let target = PgTarget::parse(url)?;
    // A connection goes back into use without a `SELECT 1` first (the
    // default costs a round trip per checkout: a tenth of a webhook's
    // statements). One whose socket the server closed (a restart) is still
    // discarded at checkout (`is_closed`); one that dies unnoticed fails its
    // next query, and every caller retries such an error (the gateway
    // answers 503, which Evolution API and Meta retry).
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |_url| {
        let target = target.clone();
        Box::pin(async move { target.connect().await })
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()?)
}

/// `SELECT 1` on a pooled connection.
pub async fn ping(pool: &DbPool) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    // SQL: `SELECT 1` reads no table.
    diesel::sql_query("SELECT 1").execute(&mut conn).await?;
    Ok(())
}

/// A connection taken from the pool (returned when dropped).
pub type PooledConn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;
