//! capi-sender: builds each claimed event, sends it to the Meta Conversions
//! API, records every attempt in `capi_events_log`, and sets the dialog's
//! `capi_*_sent` flags on success only.

pub mod meta;
mod send;

use runtime::{CancellationToken, CommonSettings, Runtime};
use serde::Deserialize;
use std::{sync::Arc, time::Duration};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub meta: MetaSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSettings {
    pub graph_base_url: String,
    pub graph_version: String,
    pub timeout_ms: u64,
    /// Wait before retrying an event Meta could not take (5xx, timeout, throttling).
    pub retry_delay_ms: u64,
    /// Attempts before an event is given up and logged as `error`.
    pub max_attempts: i32,
    /// How long a sender owns an event while its request is in flight.
    pub lease_secs: u64,
}

const DEFAULTS: &str = r#"
[http]
port = 8083

[meta]
graph_base_url = "https://graph.facebook.com"
graph_version = "v26.0"
timeout_ms = 10000
retry_delay_ms = 30000
max_attempts = 12
lease_secs = 60
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            meta: MetaSettings,
        }
        let (common, own) = runtime::load_settings::<Own>(DEFAULTS, None)?;
        Ok(Settings {
            common,
            meta: own.meta,
        })
    }
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new("capi-sender", &settings.common, stop)?;
    runtime.serve(&settings.common, |_| {})?;
    let m = &settings.meta;
    let sender = Arc::new(send::Sender {
        pool: runtime.pool.clone(),
        meta: meta::MetaClient::new(
            &m.graph_base_url,
            &m.graph_version,
            Duration::from_millis(m.timeout_ms),
        )?,
        retry_delay: Duration::from_millis(m.retry_delay_ms),
        max_attempts: m.max_attempts.max(1),
        lease: Duration::from_secs(m.lease_secs.max(1)),
    });
    let work = bus::consume(
        runtime.bus.clone(),
        bus::Queue::CapiEvents,
        runtime.stop.clone(),
        move |msg| {
            let sender = sender.clone();
            async move { sender.handle(msg).await }
        },
    );
    runtime.spawn_worker(work);
    Ok(runtime)
}
