//! What every service shares at run time: typed layered settings, logs,
//! the `/health` and `/ready` endpoints, the outbox relay, graceful shutdown.

pub mod api_error;
pub mod claims;
mod health;
pub mod http;
mod http_span;
pub mod metrics;
pub mod outbox_relay;
pub mod periodic;
pub mod settings;
mod shutdown;
pub mod telemetry;

mod service;

pub use api_error::{ApiError, ErrorCode};
pub use health::Readiness;
pub use service::{MainRuntime, Runtime};
pub use settings::{CommonSettings, load_settings};
pub use shutdown::shutdown_on_signals;
pub use tokio_util::sync::CancellationToken;

/// Every service allocates through mimalloc: under many concurrent tasks
/// glibc's allocator spent a third of capi-sender's CPU in `malloc`/`free`
/// and its arenas kept growing (`scripts/bench-sender`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A service's exit: errors (a bad setting, a port in use) print as one
/// line naming the cause, without a backtrace, and exit with status 1.
pub fn exit_code(service: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(service, error = format!("{e:#}"), "exiting");
            eprintln!("{service}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
