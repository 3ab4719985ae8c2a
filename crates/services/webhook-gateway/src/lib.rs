//! webhook-gateway: every inbound HTTP hook (Evolution API, the WhatsApp
//! Cloud API, amoCRM, Bitrix24). Authenticates, parses, stores
//! the message and queues the follow-up work through the outbox, and answers
//! fast.

mod body;
mod crm;
mod crm_connections;
mod crm_store;
mod evolution;
mod inbound;
mod whatsapp_cloud;

use runtime::{CancellationToken, CommonSettings, Runtime};
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub gateway: GatewaySettings,
    pub whatsapp_cloud: CloudSettings,
}

/// Meta's WhatsApp Cloud API webhooks (`/webhooks/whatsapp-cloud`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudSettings {
    /// What the subscription handshake must present as `hub.verify_token`
    /// (empty: every handshake is refused).
    pub verify_token: SecretString,
    /// The secrets of the Meta apps whose webhooks come here, comma-separated
    /// (empty: every Cloud API webhook is refused).
    pub app_secrets: SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// Larger webhook bodies get 413.
    pub max_body_bytes: usize,
    /// A body that takes longer to arrive (after the headers) gets 408.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub body_timeout: std::time::Duration,
}

/// This service's settings sections with their defaults (over
/// `runtime::settings::COMMON_DEFAULTS`): the sections it declares.
pub const DEFAULTS: &str = r#"
[http]
port = 8080
# Bursts of webhooks (a CRM's mass update) are answered side by side.
workers = 4

[gateway]
max_body_bytes = 1048576
body_timeout = "10s"

[whatsapp_cloud]
verify_token = ""
app_secrets = ""
"#;

impl Settings {
    /// Defaults, then `file` (or the file `CAPI_CONFIG` names), then `CAPI_*`.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            gateway: GatewaySettings,
            whatsapp_cloud: CloudSettings,
        }
        let (common, own) = runtime::load_settings::<Own>(DEFAULTS, file)?;
        Ok(Settings {
            common,
            gateway: own.gateway,
            whatsapp_cloud: own.whatsapp_cloud,
        })
    }
}

/// Shared by the request handlers.
pub(crate) struct State {
    pub store: storage::Store,
    pub outbox_wake: Arc<Notify>,
    pub body_limits: body::Limits,
    pub main: runtime::MainRuntime,
    /// Stores CRM changes, many webhooks per transaction.
    pub changes: crm_store::ChangeStore,
    /// The CRM connections webhooks name.
    pub crm_connections: crm_connections::Connections,
    pub cloud: whatsapp_cloud::CloudAuth,
}

impl State {
    /// A pooled connection; 503 `unavailable` when the database is not there.
    pub(crate) async fn conn(&self) -> Result<storage::PooledConn, runtime::ApiError> {
        self.store
            .pool()
            .get()
            .await
            .map_err(runtime::ApiError::unavailable)
    }
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new("webhook-gateway", &settings.common, stop)?;
    let c = &settings.whatsapp_cloud;
    let cloud = whatsapp_cloud::CloudAuth::new(&c.verify_token, &c.app_secrets);
    if !cloud.has_app_secret() {
        tracing::info!(
            "WhatsApp Cloud API webhooks are refused: whatsapp_cloud.app_secrets is not set"
        );
    } else if !cloud.has_verify_token() {
        tracing::warn!(
            "whatsapp_cloud.verify_token is not set: Meta cannot subscribe this gateway"
        );
    }
    let state = actix_web::web::Data::new(State {
        store: runtime.store.clone(),
        outbox_wake: runtime.outbox_wake.clone(),
        body_limits: body::Limits {
            max_bytes: settings.gateway.max_body_bytes,
            timeout: settings.gateway.body_timeout,
        },
        main: runtime.main.clone(),
        changes: crm_store::ChangeStore::start(
            runtime.store.pool().clone(),
            runtime.outbox_wake.clone(),
        ),
        crm_connections: crm_connections::Connections::new(
            runtime.store.clone(),
            runtime.main.clone(),
        ),
        cloud,
    });
    runtime.serve(&settings.common, move |cfg| {
        cfg.app_data(state.clone())
            .configure(evolution::routes)
            .configure(whatsapp_cloud::routes)
            .configure(crm::routes);
    })?;
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
