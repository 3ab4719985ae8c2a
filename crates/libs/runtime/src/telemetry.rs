//! Structured logs: human-readable by default, JSON when configured.

use crate::settings::{CommonSettings, LogFormat, LogSettings};
use std::io::IsTerminal;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

/// A service's start: logging as configured, then the warnings its
/// settings' loading noted (deprecated keys, sections it does not read).
pub fn start(common: &CommonSettings) {
    init(&common.log);
    for note in &common.notes.deprecations {
        tracing::warn!("{note}");
    }
    if !common.notes.unread_sections.is_empty() {
        tracing::info!(
            sections = %common.notes.unread_sections.join(", "),
            "configuration sections this service does not read (another service's, or a name no service reads)"
        );
    }
}

/// Installs the global subscriber (once; later calls are no-ops).
pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match settings.format {
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .compact()
                    .with_ansi(std::io::stdout().is_terminal()),
            )
            .try_init(),
    };
}
