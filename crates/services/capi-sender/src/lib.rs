//! capi-sender: builds each claimed event, sends it to the Meta Conversions
//! API in batches per (pixel, token), retries on a schedule through RabbitMQ,
//! records every attempt in `capi_events_log`, and sets the dialog's
//! `capi_*_sent` flags on success only.

mod backlog;
mod batcher;
mod deliver;
mod loader;
mod metrics;

pub use deliver::RetryPolicy;

use anyhow::bail;
use runtime::{CancellationToken, CommonSettings, Runtime};
use serde::Deserialize;
use std::{collections::HashMap, sync::Arc, sync::Mutex, time::Duration};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub meta: MetaSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaSettings {
    /// Where the Graph API is (the one `[meta]` every service reads).
    #[serde(default = "meta_graph::default_base_url")]
    pub graph_base_url: String,
    #[serde(default = "meta_graph::default_version")]
    pub graph_version: String,
    /// A request to Meta ends after this long, e.g. "10s".
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub timeout: Duration,
    /// Events per request (Meta's limit is 1000).
    pub batch_size: usize,
    /// Events this sender holds at once, waiting in batches or being sent:
    /// its consumer window, spread over `amqp.channels` (each channel's
    /// prefetch is this divided by the channels, rounded up; capi-sender
    /// does not read `amqp.prefetch`). Its memory budget: about 2 KB of RSS
    /// per event held, so the default 32,000 keeps a replica under ~90 MB
    /// (docs/capi-sender.md, "Memory against the window").
    pub window: u32,
    /// How long a batch of fresh events waits to fill before it is sent.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub linger: Duration,
    /// Under a backlog a batch waits half its first event's age, up to this.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub max_linger: Duration,
    /// Requests to Meta in flight at once, per replica.
    pub max_concurrent_requests: usize,
    /// Waits before each retry, e.g. "5s,30s,2m,10m,1h"; after the last, the event is dead-lettered.
    #[serde(deserialize_with = "domain::duration::deserialize_schedule")]
    pub retry_schedule: Vec<Duration>,
    /// ±fraction of random spread on each wait.
    pub retry_jitter: f64,
    /// Minimum wait for an ad account Meta is throttling, e.g. "15m".
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub throttle_backoff: Duration,
    /// Safety margin before Meta's 7-day limit, e.g. "1h".
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub max_age_margin: Duration,
    /// How long a sender owns an event while its request is in flight.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub lease: Duration,
    /// An event whose request left but whose answer nobody recorded is not
    /// taken over before its lease plus this: a sender that is slow to
    /// record (not dead) gets that long to do it before the event is sent
    /// again (docs/capi-sender.md, "Exactly once, and the window left").
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub uncertain_grace: Duration,
    /// `partner_agent` sent with every request (empty: none).
    pub partner_agent: String,
    /// The event names Meta accepts on events with a click id (default: its
    /// Business Messaging list); an event whose name is not here is not
    /// sent (audit log: skipped, `event_name_not_allowed`). A list, or one
    /// comma-separated string in `CAPI_META__BUSINESS_MESSAGING_EVENT_NAMES`.
    #[serde(default)]
    pub business_messaging_event_names: domain::event_names::AllowedNames,
}

/// This service's settings sections with their defaults (over
/// `runtime::settings::COMMON_DEFAULTS`): the sections it declares.
pub const DEFAULTS: &str = r#"
[http]
port = 8083

[amqp]
# The window (`meta.window`) is spread over 64 channels: RabbitMQ's cost per
# out-of-order ack grows with the channel's unacked count.
channels = 64

[meta]
timeout = "10s"
batch_size = 500
window = 32000
linger = "200ms"
max_linger = "5s"
max_concurrent_requests = 6
retry_schedule = "5s,30s,2m,10m,1h"
retry_jitter = 0.2
throttle_backoff = "15m"
max_age_margin = "1h"
lease = "60s"
uncertain_grace = "2m"
partner_agent = ""
"#;

impl Settings {
    /// Defaults, then `file` (or the file `CAPI_CONFIG` names), then `CAPI_*`.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            meta: MetaSettings,
        }
        let (common, own) = runtime::load_settings::<Own>(DEFAULTS, file)?;
        Ok(Settings {
            common,
            meta: own.meta,
        })
    }
}

impl MetaSettings {
    /// Each consumer channel's prefetch: the window over the channels,
    /// rounded up.
    pub fn prefetch(&self, channels: u16) -> anyhow::Result<u16> {
        if self.window == 0 {
            bail!("invalid configuration: key `meta.window`: must be at least 1");
        }
        let per_channel = self.window.div_ceil(u32::from(channels.max(1)));
        u16::try_from(per_channel).map_err(|_| {
            anyhow::anyhow!(
                "invalid configuration: key `meta.window`: at most {} per channel (more `amqp.channels`, or a smaller window)",
                u16::MAX
            )
        })
    }

    pub fn policy(&self) -> anyhow::Result<RetryPolicy> {
        let schedule_ms = self
            .retry_schedule
            .iter()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .collect();
        if !(0.0..1.0).contains(&self.retry_jitter) {
            bail!("invalid configuration: key `meta.retry_jitter`: must be in [0, 1)");
        }
        if self.batch_size == 0 || self.batch_size > batcher::MAX_BATCH {
            bail!(
                "invalid configuration: key `meta.batch_size`: must be 1..={}",
                batcher::MAX_BATCH
            );
        }
        Ok(RetryPolicy {
            schedule_ms,
            jitter: self.retry_jitter,
            throttle_backoff: self.throttle_backoff,
            age_margin_secs: i64::try_from(self.max_age_margin.as_secs()).unwrap_or(3600),
        })
    }
}

/// This process as `capi_deliveries.sending_by` records it: the host (the
/// pod's name on Kubernetes) and the pid.
fn sender_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}/{}", std::process::id())
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(mut settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let channels = settings.common.amqp.channels.max(1);
    settings.common.amqp.prefetch = settings.meta.prefetch(channels)?;
    let m = &settings.meta;
    let policy = m.policy()?;
    let mut runtime = Runtime::new("capi-sender", &settings.common, stop)?;
    let metrics = metrics::Metrics::new(&mut runtime.registry);
    runtime.serve(&settings.common, |_| {})?;
    let client = meta_graph::Graph::new(
        &meta_graph::GraphSettings {
            graph_base_url: m.graph_base_url.clone(),
            graph_version: m.graph_version.clone(),
        },
        m.timeout,
    )?;
    let partner_agent = Some(m.partner_agent.clone()).filter(|a| !a.trim().is_empty());
    let lease = m.lease.max(Duration::from_secs(1));
    let throttled: loader::Throttled = Arc::new(Mutex::new(HashMap::new()));
    let deliverer = Arc::new(deliver::Deliverer {
        store: runtime.store.clone(),
        policy,
        lease,
        metrics: metrics.clone(),
        loader: loader::Loader::start(
            runtime.store.clone(),
            loader::Leasing {
                lease,
                uncertain_grace: m.uncertain_grace,
            },
            throttled.clone(),
        ),
        throttled,
        partner_agent: partner_agent.clone(),
        allowed_names: m.business_messaging_event_names.clone(),
        sender_id: sender_id(),
    });
    let (d, u, f) = (deliverer.clone(), deliverer.clone(), deliverer.clone());
    let callbacks = batcher::Callbacks {
        on_answer: Arc::new(move |result, sent| Box::pin(d.clone().on_answer(result, sent))),
        on_unsent: Arc::new(move |entries, why| Box::pin(u.clone().on_unsent(entries, why))),
        fence: Arc::new(move |tokens| Box::pin(f.clone().fence(tokens))),
    };
    let batcher = batcher::Batcher::new(
        client,
        batcher::BatcherConfig {
            batch_size: m.batch_size,
            linger: m.linger,
            max_linger: m.max_linger,
            max_pending: usize::from(settings.common.amqp.prefetch.max(1))
                * usize::from(settings.common.amqp.channels.max(1)),
            max_concurrent_requests: m.max_concurrent_requests,
            partner_agent,
        },
        metrics,
        callbacks,
    );
    // On SIGTERM the events not yet in a request go back to the queue.
    let (b, stop) = (batcher.clone(), runtime.stop.clone());
    runtime.spawn_worker(async move {
        stop.cancelled().await;
        b.close();
    });
    let watch = backlog::Watch::start(runtime.bus.clone(), batcher.clone()).await;
    runtime.spawn_worker(watch.run(runtime.stop.clone()));
    let work = bus::consume_settling(
        runtime.bus.clone(),
        bus::Queue::CapiEvents,
        runtime.stop.clone(),
        move |msg, settle| {
            let (d, b) = (deliverer.clone(), batcher.clone());
            async move { d.handle(&b, msg, settle).await }
        },
    );
    runtime.spawn_worker(work);
    // Any service may publish any outbox row; this one helps drain them too.
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
