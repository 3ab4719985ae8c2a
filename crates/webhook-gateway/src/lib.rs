//! webhook-gateway: every inbound HTTP hook (Evolution API, amoCRM, Bitrix24). Authenticates, parses, stores
//! the message and queues the follow-up work through the outbox, and answers
//! fast.

mod body;
mod crm;
mod crm_store;
mod evolution;

use runtime::{CancellationToken, CommonSettings, Runtime};
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub gateway: GatewaySettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Larger webhook bodies get 413.
    pub max_body_bytes: usize,
}

const DEFAULTS: &str = r#"
[http]
port = 8080
# Bursts of webhooks (a CRM's mass update) are answered side by side.
workers = 4

[gateway]
max_body_bytes = 1048576
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            gateway: GatewaySettings,
        }
        let (common, own) = runtime::load_settings::<Own>(DEFAULTS, None)?;
        Ok(Settings {
            common,
            gateway: own.gateway,
        })
    }
}

/// Shared by the request handlers.
pub(crate) struct State {
    pub pool: storage::DbPool,
    pub outbox_wake: Arc<Notify>,
    pub max_body_bytes: usize,
    pub main: runtime::MainRuntime,
    /// Stores CRM changes, many webhooks per transaction.
    pub changes: crm_store::ChangeStore,
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new("webhook-gateway", &settings.common, stop)?;
    let state = actix_web::web::Data::new(State {
        pool: runtime.pool.clone(),
        outbox_wake: runtime.outbox_wake.clone(),
        max_body_bytes: settings.gateway.max_body_bytes,
        main: runtime.main.clone(),
        changes: crm_store::ChangeStore::start(runtime.pool.clone(), runtime.outbox_wake.clone()),
    });
    runtime.serve(&settings.common, move |cfg| {
        cfg.app_data(state.clone())
            .configure(evolution::routes)
            .configure(crm::routes);
    })?;
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
