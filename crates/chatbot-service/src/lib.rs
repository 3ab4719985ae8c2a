//! chatbot-service: the per-dialog message buffer (design.md §2), then the
//! bot's turn, then qualification.
//!
//! Each customer message bumped the dialog's `buffer_seq` when the gateway
//! stored it. For each one this service schedules a flush carrying that
//! sequence number after the buffer delay; a flush acts only if the sequence
//! is still the latest and no replica flushed it before (a conditional
//! update), so any number of replicas agree without shared memory.

mod buffer;
pub mod reply;

use runtime::{CancellationToken, CommonSettings, Runtime};
use serde::Deserialize;
use std::{sync::Arc, time::Duration};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub chatbot: ChatbotSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatbotSettings {
    /// How long after a customer's last message the dialog is handed on.
    pub buffer_delay_ms: u64,
}

const DEFAULTS: &str = r#"
[http]
port = 8081

[chatbot]
buffer_delay_ms = 5000
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            chatbot: ChatbotSettings,
        }
        let (common, own) = runtime::load_settings::<Own>(DEFAULTS, None)?;
        Ok(Settings {
            common,
            chatbot: own.chatbot,
        })
    }
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new("chatbot-service", &settings.common, stop)?;
    runtime.serve(&settings.common, |_| {})?;
    let buffer = Arc::new(buffer::Buffer {
        pool: runtime.pool.clone(),
        bus: runtime.bus.clone(),
        outbox_wake: runtime.outbox_wake.clone(),
        delay: Duration::from_millis(settings.chatbot.buffer_delay_ms),
        replier: Arc::new(reply::NoBot),
    });
    buffer::spawn(&mut runtime, buffer);
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
