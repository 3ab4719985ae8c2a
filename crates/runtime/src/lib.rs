//! What every service shares at run time: typed layered settings, logs,
//! the `/health` and `/ready` endpoints, the outbox relay, graceful shutdown.

pub mod api_error;
mod health;
pub mod outbox_relay;
pub mod settings;
mod shutdown;
pub mod telemetry;

mod service;

pub use api_error::ApiError;
pub use health::Readiness;
pub use service::Runtime;
pub use settings::{CommonSettings, load_settings};
pub use shutdown::shutdown_on_signals;
pub use tokio_util::sync::CancellationToken;
