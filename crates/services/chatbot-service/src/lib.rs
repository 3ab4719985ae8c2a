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
//! the WhatsApp APIs.

mod bot;
mod buffer;
mod decide;
mod evolution;
mod metrics;
mod whatsapp;

pub use bot::GENERIC_PROMPT;

use anyhow::Context;
use llm::{LlmClient, LlmSettings};
use runtime::{CancellationToken, CommonSettings, Runtime};
use serde::Deserialize;
use std::{sync::Arc, time::Duration};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

/// A reply's lease is the model's and the WhatsApp API's timeouts and this.
const LEASE_SLACK: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub chatbot: ChatbotSettings,
    pub bot: BotSettings,
    pub llm: LlmSettings,
    /// Where the Graph API (the Cloud API) is: `meta.graph_base_url`, `meta.graph_version`.
    pub meta: meta_graph::GraphSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatbotSettings {
    /// How long after a customer's last message the dialog is handed on, e.g. "5s".
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub buffer_delay: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotSettings {
    /// Replies at all (directions and instances can also switch the bot off).
    pub enabled: bool,
    /// Evolution API, e.g. `https://evolution.example.com` (empty: no
    /// replies in Evolution instances' dialogs).
    pub evolution_base_url: String,
    /// A sendText request ends after this long, e.g. "10s".
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub evolution_timeout: Duration,
    /// A Cloud API messages request ends after this long, e.g. "10s".
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub cloud_api_timeout: Duration,
    /// A human who wrote from the business phone this recently (e.g. "30m")
    /// owns the conversation: the bot stays quiet.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub takeover_window: Duration,
    /// Customer messages older than this (e.g. "10m", a backlog after a
    /// reconnect) get no reply.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub max_message_age: Duration,
    /// The conversation sent to the model: at most this many messages…
    pub max_history_messages: usize,
    /// …and this many characters (about 4 per token), oldest dropped first.
    pub max_history_chars: usize,
    /// Waits before each retry when the model or Evolution API is
    /// unavailable, e.g. "1s,3s"; after the last, this reply is given up.
    #[serde(deserialize_with = "domain::duration::deserialize_schedule")]
    pub retry_schedule: Vec<Duration>,
    /// Replies being worked on at once per process (model calls in flight).
    pub max_concurrent_replies: usize,
}

/// This service's settings sections with their defaults (over
/// `runtime::settings::COMMON_DEFAULTS`): the sections it declares.
pub const DEFAULTS: &str = r#"
[http]
port = 8081

[amqp]
# Each customer message is held for the buffer delay (5 s) and replies wait
# on the model: many at once, spread over channels (2,048 per queue).
prefetch = 256
channels = 8

[database]
# Flushes, outbox relays and replies share it; a reply holds a connection
# only between its statements, never while it waits on the model.
pool_size = 16

[chatbot]
buffer_delay = "5s"

[bot]
enabled = true
evolution_base_url = ""
evolution_timeout = "10s"
cloud_api_timeout = "10s"
takeover_window = "30m"
max_message_age = "10m"
max_history_messages = 30
max_history_chars = 12000
retry_schedule = "1s,3s"
max_concurrent_replies = 256
"#;

impl Settings {
    /// Defaults, then `file` (or the file `CAPI_CONFIG` names), then `CAPI_*`.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            chatbot: ChatbotSettings,
            bot: BotSettings,
            llm: LlmSettings,
            #[serde(default)]
            meta: meta_graph::GraphSettings,
        }
        let (common, own) =
            runtime::settings::load_settings_layered::<Own>(&[DEFAULTS, llm::DEFAULTS], file)?;
        Ok(Settings {
            common,
            chatbot: own.chatbot,
            bot: own.bot,
            llm: own.llm,
            meta: own.meta,
        })
    }
}

fn chrono_duration(key: &str, d: Duration) -> anyhow::Result<chrono::Duration> {
    chrono::Duration::from_std(d).with_context(|| format!("invalid configuration: key `bot.{key}`"))
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let b = &settings.bot;
    let rules = decide::Rules {
        takeover_window: chrono_duration("takeover_window", b.takeover_window)?,
        max_message_age: chrono_duration("max_message_age", b.max_message_age)?,
    };
    let retry_schedule = b.retry_schedule.clone();
    let mut runtime = Runtime::new("chatbot-service", &settings.common, stop)?;
    let metrics = metrics::Metrics::new(&mut runtime.registry);
    runtime.serve(&settings.common, |_| {})?;
    let bot = if !b.enabled {
        tracing::warn!("bot replies are switched off (bot.enabled = false)");
        None
    } else {
        let evolution = if b.evolution_base_url.trim().is_empty() {
            tracing::warn!(
                "no bot replies in Evolution instances' dialogs: bot.evolution_base_url is not set"
            );
            None
        } else {
            Some(
                evolution::Evolution::new(&b.evolution_base_url, b.evolution_timeout)
                    .context("the Evolution API client")?,
            )
        };
        let cloud = meta_graph::Graph::new(&settings.meta, b.cloud_api_timeout)
            .context("the Cloud API client")?;
        let send_timeout = b.evolution_timeout.max(b.cloud_api_timeout);
        Some(Arc::new(bot::Bot {
            store: runtime.store.clone(),
            bus: runtime.bus.clone(),
            llm: LlmClient::new(&settings.llm).context("the LLM client")?,
            senders: whatsapp::Senders { evolution, cloud },
            rules,
            retry_schedule,
            max_history_messages: b.max_history_messages.max(1),
            max_history_chars: b.max_history_chars.max(1),
            lease: settings.llm.timeout + send_timeout + LEASE_SLACK,
            turns: Semaphore::new(b.max_concurrent_replies.max(1)),
            tracker: TaskTracker::new(),
            metrics: metrics.clone(),
        }))
    };
    if let Some(bot) = &bot {
        let (bus, stop, b) = (runtime.bus.clone(), runtime.stop.clone(), bot.clone());
        runtime.spawn_worker(bus::consume(
            bus,
            bus::Queue::ChatbotReplies,
            stop.clone(),
            move |m| {
                let bot = b.clone();
                async move { bot.handle(m).await }
            },
        ));
        // Shutdown waits for the replies this process started.
        let tracker = bot.tracker.clone();
        runtime.spawn_worker(async move {
            stop.cancelled().await;
            tracker.close();
            tracker.wait().await;
        });
    }
    let buffer = Arc::new(buffer::Buffer {
        pool: runtime.store.pool().clone(),
        outbox_wake: runtime.outbox_wake.clone(),
        delay: settings.chatbot.buffer_delay,
        bot,
        held: Default::default(),
        metrics,
        stop: runtime.stop.clone(),
    });
    buffer::spawn(&mut runtime, buffer);
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
