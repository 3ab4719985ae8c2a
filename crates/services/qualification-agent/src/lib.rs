//! qualification-agent: decides a dialog's conversion levels — level 1 by
//! the two-message rule, levels 2 and 3 by a model reading the conversation
//! (WhatsApp directions) — and claims each level exactly once (a unique row
//! per dialog and level, written with the outbox message for capi-sender in
//! one transaction), so replicas racing on the same dialog queue one event.
//!
//! The model is asked only when something new can be learnt: after the
//! customer has gone quiet, about new customer messages, while a level is
//! still open (`decide.rs`).

mod agent;
mod crm;
mod decide;
mod metrics;

pub use decide::Policy;

use anyhow::Context;
use llm::{LlmClient, LlmSettings};
use runtime::{CancellationToken, CommonSettings, Runtime};
use serde::Deserialize;
use std::{sync::Arc, time::Duration};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub qualification: QualificationSettings,
    pub llm: LlmSettings,
    /// `[crm]`: CRM pace, OAuth refresh and timeout.
    pub crm: ::crm::session::CrmSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualificationSettings {
    /// `economy`, or `per_message` (one analysis per customer message: the
    /// naive baseline, for comparison only).
    pub policy: Policy,
    /// After a burst, wait this long for the customer to go quiet before
    /// analysing (a newer burst starts the wait again); "0s": at once.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub quiet_period: Duration,
    /// Analyse anyway once the oldest unread customer message is this old.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub max_wait: Duration,
    /// Waits while the model is unavailable, e.g. "30s,2m,10m,30m"; the last
    /// repeats until it is back (a dialog is never dropped).
    #[serde(deserialize_with = "domain::duration::deserialize_schedule")]
    pub retry_schedule: Vec<Duration>,
    /// The conversation sent to the model: at most this many messages…
    pub max_history_messages: usize,
    /// …and this many characters (about 4 per token), oldest dropped first.
    pub max_history_chars: usize,
}

/// This service's settings sections with their defaults (over
/// `runtime::settings::COMMON_DEFAULTS`): the sections it declares.
pub const DEFAULTS: &str = r#"
[http]
port = 8082

[qualification]
policy = "economy"
quiet_period = "60s"
max_wait = "10m"
retry_schedule = "30s,2m,10m,30m"
max_history_messages = 60
max_history_chars = 16000
"#;

impl Settings {
    /// Defaults, then `file` (or the file `CAPI_CONFIG` names), then `CAPI_*`.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            qualification: QualificationSettings,
            llm: LlmSettings,
            #[serde(default)]
            crm: ::crm::session::CrmSettings,
        }
        let (common, own) =
            runtime::settings::load_settings_layered::<Own>(&[DEFAULTS, llm::DEFAULTS], file)?;
        Ok(Settings {
            common,
            qualification: own.qualification,
            llm: own.llm,
            crm: own.crm,
        })
    }
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let s = &settings.qualification;
    let rules = decide::Rules {
        policy: s.policy,
        quiet_period: s.quiet_period,
        max_wait: s.max_wait,
    };
    let retry_schedule = s.retry_schedule.clone();
    if rules.policy == Policy::PerMessage {
        tracing::warn!(
            "qualification.policy = per_message: one model call per customer message (the naive baseline)"
        );
    }
    let mut runtime = Runtime::new("qualification-agent", &settings.common, stop)?;
    let metrics = metrics::Metrics::new(&mut runtime.registry);
    runtime.serve(&settings.common, |_| {})?;
    let analyzer = if settings.llm.base_url.trim().is_empty() {
        tracing::warn!("levels 2 and 3 are off: llm.base_url is not set (level 1 only)");
        None
    } else {
        Some(llm::analysis::Analyzer {
            llm: LlmClient::new(&settings.llm).context("the LLM client")?,
            max_history_messages: s.max_history_messages.max(1),
            max_history_chars: s.max_history_chars.max(1),
        })
    };
    let evaluator = Arc::new(crm::CrmEvaluator {
        store: runtime.store.clone(),
        outbox_wake: runtime.outbox_wake.clone(),
        policy: ::crm::session::CrmPolicy::new(&settings.crm)?,
        retry_schedule: retry_schedule.clone(),
        metrics: metrics.clone(),
        currencies: Default::default(),
    });
    let agent = Arc::new(agent::Agent {
        pool: runtime.store.pool().clone(),
        outbox_wake: runtime.outbox_wake.clone(),
        rules,
        analyzer,
        retry_schedule,
        metrics,
    });
    let work = bus::consume(
        runtime.bus.clone(),
        bus::Queue::QualificationDialogs,
        runtime.stop.clone(),
        move |m| {
            let agent = agent.clone();
            async move { agent.handle(m).await }
        },
    );
    runtime.spawn_worker(work);
    let crm_work = bus::consume(
        runtime.bus.clone(),
        bus::Queue::QualificationCrmChanges,
        runtime.stop.clone(),
        move |m| {
            let evaluator = evaluator.clone();
            async move { evaluator.handle(m).await }
        },
    );
    runtime.spawn_worker(crm_work);
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
