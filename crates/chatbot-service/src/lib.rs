//! chatbot-service: the per-dialog message buffer (design.md §2), then the
//! bot's reply and, independently, qualification.
//!
//! Each customer message bumped the dialog's `buffer_seq` when the gateway
//! stored it. For each one this service schedules a flush carrying that
//! sequence number after the buffer delay; a flush acts only if the sequence
//! is still the latest and no replica flushed it before (a conditional
//! update), so any number of replicas agree without shared memory. The flush
//! queues, in its own transaction, the dialog for qualification and the
//! bot's turn (`bot.rs`), so qualification never waits on the model or on
//! Evolution API.

mod bot;
mod buffer;
mod decide;
mod evolution;

pub use bot::GENERIC_PROMPT;

use anyhow::Context;
use llm::{LlmClient, LlmSettings};
use runtime::{
    CancellationToken, CommonSettings, Runtime,
    settings::{duration_setting, parse_schedule},
};
use serde::Deserialize;
use std::{sync::Arc, time::Duration};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub chatbot: ChatbotSettings,
    pub bot: BotSettings,
    pub llm: LlmSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatbotSettings {
    /// How long after a customer's last message the dialog is handed on.
    pub buffer_delay_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotSettings {
    /// Replies at all (directions and instances can also switch the bot off).
    pub enabled: bool,
    /// Evolution API, e.g. `https://evolution.example.com` (empty: no replies).
    pub evolution_base_url: String,
    pub evolution_timeout_ms: u64,
    /// A human who wrote from the business phone this recently (e.g. "30m")
    /// owns the conversation: the bot stays quiet.
    pub takeover_window: String,
    /// Customer messages older than this (e.g. "10m", a backlog after a
    /// reconnect) get no reply.
    pub max_message_age: String,
    /// The conversation sent to the model: at most this many messages…
    pub max_history_messages: usize,
    /// …and this many characters (about 4 per token), oldest dropped first.
    pub max_history_chars: usize,
    /// Waits before each retry when the model or Evolution API is
    /// unavailable, e.g. "1s,3s"; after the last, this reply is given up.
    pub retry_schedule: String,
}

const DEFAULTS: &str = r#"
[http]
port = 8081

[amqp]
# Replies wait on the model for hundreds of milliseconds: many at once.
prefetch = 256

[chatbot]
buffer_delay_ms = 5000

[bot]
enabled = true
evolution_base_url = ""
evolution_timeout_ms = 10000
takeover_window = "30m"
max_message_age = "10m"
max_history_messages = 30
max_history_chars = 12000
retry_schedule = "1s,3s"
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            chatbot: ChatbotSettings,
            bot: BotSettings,
            llm: LlmSettings,
        }
        let defaults = format!("{DEFAULTS}\n{}", llm::DEFAULTS);
        let (common, own) = runtime::load_settings::<Own>(&defaults, None)?;
        Ok(Settings {
            common,
            chatbot: own.chatbot,
            bot: own.bot,
            llm: own.llm,
        })
    }
}

fn chrono_duration(key: &str, value: &str) -> anyhow::Result<chrono::Duration> {
    let d = duration_setting(&format!("bot.{key}"), value)?;
    chrono::Duration::from_std(d).with_context(|| format!("invalid configuration: key `bot.{key}`"))
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let b = &settings.bot;
    let rules = decide::Rules {
        takeover_window: chrono_duration("takeover_window", &b.takeover_window)?,
        max_message_age: chrono_duration("max_message_age", &b.max_message_age)?,
    };
    let retry_schedule = parse_schedule("bot.retry_schedule", &b.retry_schedule)?;
    let mut runtime = Runtime::new("chatbot-service", &settings.common, stop)?;
    runtime.serve(&settings.common, |_| {})?;
    let buffer = Arc::new(buffer::Buffer {
        pool: runtime.pool.clone(),
        bus: runtime.bus.clone(),
        outbox_wake: runtime.outbox_wake.clone(),
        delay: Duration::from_millis(settings.chatbot.buffer_delay_ms),
    });
    buffer::spawn(&mut runtime, buffer);
    if !b.enabled {
        tracing::warn!("bot replies are switched off (bot.enabled = false)");
    } else if b.evolution_base_url.trim().is_empty() {
        tracing::warn!("bot replies are off: bot.evolution_base_url is not set");
    } else {
        let bot = Arc::new(bot::Bot {
            pool: runtime.pool.clone(),
            llm: LlmClient::new(&settings.llm).context("the LLM client")?,
            evolution: evolution::Evolution::new(
                &b.evolution_base_url,
                Duration::from_millis(b.evolution_timeout_ms),
            )
            .context("the Evolution API client")?,
            rules,
            retry_schedule,
            max_history_messages: b.max_history_messages.max(1),
            max_history_chars: b.max_history_chars.max(1),
        });
        let (bus, stop) = (runtime.bus.clone(), runtime.stop.clone());
        runtime.spawn_worker(bus::consume(
            bus,
            bus::Queue::ChatbotReplies,
            stop,
            move |m| {
                let bot = bot.clone();
                async move { bot.handle(m).await }
            },
        ));
    }
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
