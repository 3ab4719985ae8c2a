//! reports: what the marketer and the business owner look at. The daily
//! conversation report (generated once per account and local day by a
//! schedule that any number of replicas may run, sent to Telegram), the
//! daily ad-spend sync from Meta's insights, the analytics/ROI HTTP API
//! (API keys per account) and the server-rendered dashboard.

mod ads;
mod api;
mod daily;
mod dashboard;
mod export;
mod health;
mod html;
mod metrics;
mod retention;
mod spend_sync;
mod stats;
mod telegram;

pub use api::{API_DELETE_PATHS, API_PATHS};

use anyhow::Context;
use runtime::{CancellationToken, CommonSettings, Runtime};
use secrecy::SecretString;
use serde::Deserialize;
use std::{sync::Arc, time::Duration};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
    pub reports: ReportSettings,
    /// Where the Graph API is (insights): `meta.graph_base_url`, `meta.graph_version`.
    pub meta: meta_graph::GraphSettings,
    /// What the set-up pages need of other sections: the event names Meta
    /// takes (`meta.business_messaging_event_names`), Evolution API's
    /// address (`bot.evolution_base_url`), the CRM pace (`[crm]`).
    pub setup: SetupSettings,
}

/// The other services' keys the set-up pages read (the same keys, so one
/// config file serves all).
#[derive(Debug, Clone, Default)]
pub struct SetupSettings {
    pub allowed_names: domain::event_names::AllowedNames,
    pub evolution_base_url: String,
    pub crm: crm::session::CrmSettings,
    /// The model that writes qualification prompts (`[llm]`); `None`: none.
    pub llm: Option<llm::LlmSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Local time (account's zone) after which yesterday's report is made, "HH:MM".
    pub daily_at: String,
    /// How often the schedule, the Telegram sender and the spend sync look for work.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub tick: Duration,
    /// Telegram Bot API base URL.
    pub telegram_url: String,
    /// Days of spend fetched by each daily sync (Meta revises recent days).
    pub spend_days: u32,
    /// Outbound request timeout (Telegram, Meta).
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub timeout: Duration,
    /// Signs dashboard links and session cookies; the dashboard is off
    /// while empty. `capi dashboard-link` needs the same value.
    pub dashboard_secret: SecretString,
    /// How the dashboard is reached from a browser (printed links).
    pub public_url: String,
    /// How long a dashboard link and a dashboard session last.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub link_ttl: Duration,
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub session_ttl: Duration,
    /// How often the retention sweep blanks texts past their account's
    /// window (`capi account set --retain-messages`).
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub retention_every: Duration,
    /// Rows the sweep blanks per transaction.
    pub retention_batch: u32,
    /// The sweep's pause between batches (room for the writers).
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub retention_pause: Duration,
    /// Where webhook-gateway is reachable from Evolution API and the CRMs
    /// (the set-up pages point webhooks at it).
    pub gateway_url: String,
    /// amoCRM's authorisation page (Kommo: https://www.kommo.com/oauth).
    pub amocrm_authorize_url: String,
}

/// `[reports]` defaults; the sign-in link's keys (`dashboard_secret`,
/// `public_url`, `link_ttl`) have theirs in `dashboard_link::DEFAULTS`,
/// which the `capi` CLI reads too.
pub const DEFAULTS: &str = r#"
[http]
port = 8084

[reports]
daily_at = "09:00"
tick = "30s"
telegram_url = "https://api.telegram.org"
spend_days = 7
timeout = "20s"
session_ttl = "12h"
retention_every = "10m"
retention_batch = 250
retention_pause = "20ms"
gateway_url = "http://127.0.0.1:8080"
amocrm_authorize_url = "https://www.amocrm.ru/oauth"
"#;

impl Settings {
    /// Defaults, then `file` (or the file `CAPI_CONFIG` names), then `CAPI_*`.
    pub fn load(file: Option<&std::path::Path>) -> anyhow::Result<Settings> {
        #[derive(Deserialize)]
        struct Own {
            reports: ReportSettings,
            #[serde(default)]
            meta: Meta,
            #[serde(default)]
            bot: Bot,
            #[serde(default)]
            crm: crm::session::CrmSettings,
            llm: llm::LlmSettings,
        }
        #[derive(Deserialize, Default)]
        struct Meta {
            #[serde(flatten)]
            graph: meta_graph::GraphSettings,
            #[serde(default)]
            business_messaging_event_names: domain::event_names::AllowedNames,
        }
        #[derive(Deserialize, Default)]
        struct Bot {
            #[serde(default)]
            evolution_base_url: String,
        }
        let (common, own) = runtime::settings::load_settings_layered::<Own>(
            &[DEFAULTS, dashboard_link::DEFAULTS, llm::DEFAULTS],
            file,
        )?;
        Ok(Settings {
            common,
            reports: own.reports,
            meta: own.meta.graph,
            setup: SetupSettings {
                allowed_names: own.meta.business_messaging_event_names,
                evolution_base_url: own.bot.evolution_base_url,
                crm: own.crm,
                llm: Some(own.llm),
            },
        })
    }
}

impl ReportSettings {
    /// The sign-in link keys of this section.
    fn link_settings(&self) -> dashboard_link::LinkSettings {
        dashboard_link::LinkSettings {
            dashboard_secret: self.dashboard_secret.clone(),
            public_url: self.public_url.clone(),
            link_ttl: self.link_ttl,
        }
    }

    /// A sign-in link to the account's dashboard (`dashboard_link`) with
    /// `role`, and its expiry (Unix seconds).
    pub fn dashboard_link(
        &self,
        account: domain::ids::UserAccountId,
        generation: i32,
        role: domain::api_key::Role,
    ) -> anyhow::Result<(String, i64)> {
        self.link_settings().link(account, generation, role)
    }
}

/// The settings the workers and handlers run on, parsed once.
pub(crate) struct Config {
    pub daily_at_minutes: i32,
    pub tick: Duration,
    pub spend_days: u32,
    pub dashboard_secret: Option<Vec<u8>>,
    pub public_url: String,
    pub session_ttl: Duration,
    pub retention_every: Duration,
    pub retention_batch: i64,
    pub retention_pause: Duration,
}

/// What the service's background rounds (the daily schedule, Telegram
/// delivery, the spend sync, the retention sweep, the silence sampler) share.
#[derive(Clone)]
pub(crate) struct Background {
    store: storage::Store,
    config: Arc<Config>,
    metrics: Arc<metrics::Metrics>,
    stop: CancellationToken,
}

/// "HH:MM" → minutes after midnight.
pub fn parse_daily_at(s: &str) -> anyhow::Result<i32> {
    let bad = || anyhow::anyhow!("reports.daily_at: expected HH:MM (00:00-23:59), got {s:?}");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if !(0..24).contains(&h) || !(0..60).contains(&m) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl Config {
    fn from(s: &ReportSettings) -> anyhow::Result<Config> {
        Ok(Config {
            daily_at_minutes: parse_daily_at(&s.daily_at)?,
            tick: s.tick,
            spend_days: s.spend_days.clamp(1, 90),
            dashboard_secret: dashboard_link::secret(&s.dashboard_secret)?,
            public_url: dashboard_link::public_url(&s.public_url).to_owned(),
            session_ttl: s.session_ttl,
            retention_every: s.retention_every,
            retention_batch: i64::from(s.retention_batch.clamp(1, 100_000)),
            retention_pause: s.retention_pause,
        })
    }
}

/// Shared by the request handlers.
pub(crate) struct State {
    pub pool: storage::DbPool,
    pub main: runtime::MainRuntime,
    pub config: Arc<Config>,
    pub setup: Arc<SetupContext>,
}

/// What the set-up pages call the shared operations with.
pub(crate) struct SetupContext {
    pub store: storage::Store,
    pub allowed_names: domain::event_names::AllowedNames,
    pub evolution: Option<setup::evolution::Evolution>,
    pub gateway_url: String,
    pub crm: crm::session::CrmPolicy,
    pub graph: meta_graph::Graph,
    /// For the OAuth code exchange.
    pub http: reqwest::Client,
    /// Writes qualification prompts.
    pub llm: Option<llm::LlmClient>,
    pub amocrm_authorize_url: String,
    /// Bitrix24's token server (`crm.bitrix24_oauth_url`).
    pub bitrix24_token_url: String,
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let s = &settings.reports;
    let config = Arc::new(Config::from(s)?);
    let timeout = s.timeout;
    if config.dashboard_secret.is_none() {
        tracing::warn!("the dashboard is off: set reports.dashboard_secret");
    }
    let mut runtime = Runtime::new("reports", &settings.common, stop)?;
    let metrics = metrics::Metrics::new(&mut runtime.registry);
    let evolution_url = settings.setup.evolution_base_url.trim();
    let setup = SetupContext {
        store: runtime.store.clone(),
        allowed_names: settings.setup.allowed_names.clone(),
        evolution: (!evolution_url.is_empty())
            .then(|| setup::evolution::Evolution::new(evolution_url, timeout))
            .transpose()
            .context("the Evolution API client")?,
        gateway_url: s.gateway_url.trim_end_matches('/').to_owned(),
        crm: crm::session::CrmPolicy::new(&settings.setup.crm).context("[crm]")?,
        graph: meta_graph::Graph::new(&settings.meta, timeout).context("the Meta Graph client")?,
        http: outbound::client(timeout).context("the HTTP client")?,
        llm: settings
            .setup
            .llm
            .as_ref()
            .map(llm::LlmClient::new)
            .transpose()
            .context("the model's client")?,
        amocrm_authorize_url: s.amocrm_authorize_url.trim().to_owned(),
        bitrix24_token_url: settings.setup.crm.bitrix24_oauth_url.clone(),
    };
    let state = actix_web::web::Data::new(State {
        pool: runtime.store.pool().clone(),
        main: runtime.main.clone(),
        config: config.clone(),
        setup: Arc::new(setup),
    });
    runtime.serve(&settings.common, move |cfg| {
        cfg.app_data(state.clone())
            .configure(api::routes)
            .configure(dashboard::routes);
    })?;
    let telegram =
        telegram::Telegram::new(&s.telegram_url, timeout).context("the Telegram client")?;
    let insights =
        meta_graph::Graph::new(&settings.meta, timeout).context("the Meta Graph client")?;
    let bg = Background {
        store: runtime.store.clone(),
        config,
        metrics,
        stop: runtime.stop.clone(),
    };
    runtime.spawn_worker(daily::run(bg.clone()));
    runtime.spawn_worker(telegram::run(bg.clone(), telegram));
    runtime.spawn_worker(metrics::sample_directions(bg.clone()));
    runtime.spawn_worker(retention::run(bg.clone()));
    runtime.spawn_worker(spend_sync::run(bg, insights));
    Ok(runtime)
}
