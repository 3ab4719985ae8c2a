//! PostgreSQL: the pool, the embedded migrations, and every query the
//! services run. Queries take `&mut AsyncPgConnection` so they compose inside
//! one transaction.

pub mod ads;
pub mod analytics;
pub mod api_keys;
pub mod cloud_numbers;
pub mod connect;
pub mod conversations;
pub mod crm;
pub mod crm_oauth;
mod crm_sessions;
pub mod customers;
pub mod dashboard;
pub mod deliveries;
pub mod directions;
pub mod doctor;
pub mod health;
mod identity;
pub mod migrations;
pub mod outbox;
mod pool;
mod prepared;
pub mod qualification;
pub mod replies;
pub mod reports;
pub mod retention;
mod schema;
pub mod secrets;
pub mod setup_changes;
pub mod spend;
mod sql_functions;
mod store;
pub mod usage;

pub use connect::{PgTarget, SslMode, connect};
pub use diesel_async::AsyncPgConnection;
pub use pool::{DbPool, PooledConn, connect_pool, ping};
pub use prepared::{Prepared, PreparedExt};
pub use store::Store;

/// Errors from the database layer.
pub type DbError = diesel::result::Error;
