//! Test harness: a fresh PostgreSQL database and RabbitMQ name prefix per
//! test (so tests run in parallel against the real servers `scripts/test`
//! starts), the services started in-process, and helpers to seed data, post
//! webhooks and wait for the pipeline.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use runtime::{
    CancellationToken, CommonSettings,
    settings::{DatabaseSettings, HttpSettings, LogFormat, LogSettings},
};
use serde_json::{Value, json};
use std::{future::Future, sync::Once, time::Duration};
use storage::DbPool;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub mod dashboard_session;
pub mod report_day;
pub mod webdriver;

pub use wiremock;

fn admin_url() -> String {
    std::env::var("CAPI_TEST_ADMIN_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://capi@127.0.0.1:54329/postgres".into())
}

fn amqp_url() -> String {
    std::env::var("CAPI_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:56729/%2f".into())
}

static TRACING: Once = Once::new();

/// Logs go to the test output when `TEST_LOG` is set.
pub fn init_logs() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            runtime::telemetry::init(&LogSettings {
                format: LogFormat::Pretty,
                filter: "info".into(),
            });
        }
    });
}

/// One test's private database (migrated) and queue prefix. The database
/// is dropped when the test ends.
pub struct TestEnv {
    pub db_url: String,
    pub amqp_prefix: String,
    pub pool: DbPool,
    db_name: String,
    /// `secrets.key` of the services this environment starts (and of
    /// [`TestEnv::keys`]); `None`: [`TEST_SECRETS_KEY`].
    pub secrets_key: Option<String>,
    /// `secrets.previous_keys` of the services this environment starts.
    pub secrets_previous_keys: String,
}

/// Serialises the first tests of a run building the template database.
const TEMPLATE_LOCK_KEY: i64 = 0x4341_5049_5445_4d50; // "CAPITEMP"

/// The migrated template every test database is cloned from: named after
/// the migrations it holds, built once per run (`scripts/test` drops the
/// `test_` databases of earlier runs, so an edited migration is picked up).
fn template_name() -> String {
    let versions = storage::migrations::embedded_versions().expect("embedded migrations");
    let last = versions.last().map(String::as_str).unwrap_or("none");
    format!("test_template_{}_{last}", versions.len())
}

fn database_url(name: &str) -> String {
    match admin_url().rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("admin url has no database part"),
    }
}

/// A connection to the test cluster's `postgres` database (superuser).
pub async fn admin_connection() -> AsyncPgConnection {
    let admin = admin_url();
    AsyncPgConnection::establish(&admin)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL for tests at {admin} ({e}); start it with scripts/test")
        })
}

async fn database_exists(conn: &mut AsyncPgConnection, name: &str) -> bool {
    #[derive(diesel::QueryableByName)]
    struct Found {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let found: Found =
        diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
            .bind::<diesel::sql_types::Text, _>(name)
            .get_result(conn)
            .await
            .expect("look up the template database");
    found.n > 0
}

/// Builds the template once (whichever test process gets here first; the
/// others wait on the advisory lock and then find it).
async fn ensure_template(admin: &mut AsyncPgConnection) -> String {
    let template = template_name();
    diesel::sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK_KEY})"))
        .execute(admin)
        .await
        .expect("template lock");
    if !database_exists(admin, &template).await {
        // Built under another name and renamed, so a crash halfway leaves
        // no half-migrated template behind.
        let building = format!("{template}_building");
        diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{building}\""))
            .execute(admin)
            .await
            .expect("drop a half-built template");
        diesel::sql_query(format!("CREATE DATABASE \"{building}\""))
            .execute(admin)
            .await
            .expect("create the template database");
        storage::migrations::run_pending(&database_url(&building))
            .await
            .expect("migrate the template database");
        diesel::sql_query(format!(
            "ALTER DATABASE \"{building}\" RENAME TO \"{template}\""
        ))
        .execute(admin)
        .await
        .expect("name the template database");
    }
    diesel::sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK_KEY})"))
        .execute(admin)
        .await
        .expect("template unlock");
    template
}

impl TestEnv {
    /// A fresh database with the whole schema: a copy of the run's template.
    pub async fn new() -> TestEnv {
        let mut admin = admin_connection().await;
        let template = ensure_template(&mut admin).await;
        TestEnv::create(&mut admin, Some(&template)).await
    }

    /// A fresh database with no schema at all.
    pub async fn unmigrated() -> TestEnv {
        TestEnv::create(&mut admin_connection().await, None).await
    }

    async fn create(admin: &mut AsyncPgConnection, template: Option<&str>) -> TestEnv {
        init_logs();
        let id = Uuid::new_v4().simple().to_string();
        let name = format!("test_{id}");
        let from = template.map_or_else(String::new, |t| format!(" TEMPLATE \"{t}\""));
        diesel::sql_query(format!("CREATE DATABASE \"{name}\"{from}"))
            .execute(admin)
            .await
            .expect("create test database");
        let db_url = database_url(&name);
        let pool = storage::connect_pool(&db_url, 4).expect("pool");
        TestEnv {
            db_url,
            amqp_prefix: format!("t{}", &id[..12]),
            pool,
            db_name: name,
            secrets_key: None,
            secrets_previous_keys: String::new(),
        }
    }

    pub fn common(&self) -> CommonSettings {
        CommonSettings {
            database: DatabaseSettings {
                url: self.db_url.clone().into(),
                pool_size: 4,
            },
            amqp: bus::AmqpSettings {
                url: amqp_url(),
                prefix: self.amqp_prefix.clone(),
                prefetch: 16,
                channels: 1,
            },
            http: HttpSettings {
                host: "127.0.0.1".into(),
                port: 0,
                workers: 2,
            },
            log: LogSettings {
                format: LogFormat::Pretty,
                filter: "info".into(),
            },
            secrets: runtime::settings::SecretsSettings {
                key: self
                    .secrets_key
                    .as_deref()
                    .unwrap_or(TEST_SECRETS_KEY)
                    .to_owned()
                    .into(),
                previous_keys: self.secrets_previous_keys.clone().into(),
            },
            notes: Default::default(),
        }
    }

    /// The keys the services started on this database seal with (the test
    /// key, and any previous keys this environment was given).
    pub fn keys(&self) -> storage::secrets::Keys {
        self.common()
            .secrets
            .keyring()
            .map(storage::secrets::Keys::from)
            .expect("the test keys")
    }

    /// The pool and keys, as a service holds them.
    pub fn store(&self) -> storage::Store {
        storage::Store::new(self.pool.clone(), self.keys())
    }

    pub async fn conn(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.db_url)
            .await
            .expect("connect to test database")
    }

    /// A bus on this test's prefix (to publish or inspect directly).
    pub fn bus(&self) -> bus::Bus {
        bus::Bus::new(self.common().amqp)
    }
}

impl Drop for TestEnv {
    /// Drops the test's database (closing whatever connections the test's
    /// services still hold), on a thread of its own: `drop` cannot await.
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.db_name);
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url()).await.ok()?;
                diesel::sql_query(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
        // A database left behind is dropped by the next `scripts/test`.
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("test database not dropped; scripts/test drops it next run");
        }
    }
}

/// What the services are started with.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub meta_url: String,
    /// Replicas of qualification-agent and capi-sender (and chatbot-service).
    pub replicas: usize,
    pub buffer_delay_ms: u64,
    pub retry_delay_ms: u64,
    /// Connect the services to RabbitMQ through this URL (e.g. a [`FlakyProxy`]).
    pub amqp_url: Option<String>,
    /// Connect the services to PostgreSQL through this URL (e.g. a [`FlakyProxy`]).
    pub database_url: Option<String>,
    pub batch_size: usize,
    pub linger_ms: u64,
    pub throttle_backoff: String,
    /// capi-sender's retry schedule (default: five waits of `retry_delay_ms`).
    pub retry_schedule: Option<String>,
    pub partner_agent: String,
    /// The bot's model and Evolution API (a fake each); `None`: no bot replies.
    pub bot: Option<BotOptions>,
    /// The qualification model (a fake); `None`: level 1 only.
    pub qualification: Option<QualificationOptions>,
    /// qualification-agent's `[crm]`.
    pub crm: crm::session::CrmSettings,
}

/// qualification-agent's model and timing.
#[derive(Debug, Clone)]
pub struct QualificationOptions {
    pub llm_url: String,
    pub quiet_period: String,
    pub retry_schedule: String,
    pub policy: qualification_agent::Policy,
}

impl QualificationOptions {
    pub fn new(llm_url: &str) -> Self {
        QualificationOptions {
            llm_url: llm_url.to_owned(),
            quiet_period: "0s".into(),
            retry_schedule: "300ms".into(),
            policy: qualification_agent::Policy::Economy,
        }
    }
}

/// Where the bot's outside services are, and its retry schedule.
#[derive(Debug, Clone)]
pub struct BotOptions {
    pub llm_url: String,
    pub evolution_url: String,
    /// The Graph API serving the Cloud API's messages (the Evolution fake's
    /// server unless set).
    pub cloud_api_url: String,
    pub retry_schedule: String,
    /// Customer messages older than this get no reply (`bot.max_message_age`).
    pub max_message_age: String,
}

impl BotOptions {
    pub fn new(llm_url: &str, evolution_url: &str) -> Self {
        BotOptions {
            llm_url: llm_url.to_owned(),
            evolution_url: evolution_url.to_owned(),
            cloud_api_url: evolution_url.to_owned(),
            retry_schedule: "200ms,200ms".into(),
            max_message_age: "10m".into(),
        }
    }
}

impl PipelineOptions {
    /// capi-sender's `[meta]` for these options: a fast retry schedule.
    pub fn meta_settings(&self) -> capi_sender::MetaSettings {
        let step = format!("{}ms", self.retry_delay_ms);
        capi_sender::MetaSettings {
            graph_base_url: self.meta_url.clone(),
            graph_version: meta_graph::DEFAULT_GRAPH_VERSION.into(),
            timeout: Duration::from_secs(2),
            batch_size: self.batch_size,
            // The tests' window: the other services' prefetch (16, one channel).
            window: 16,
            linger: Duration::from_millis(self.linger_ms),
            // Tests time batches exactly: no longer linger under a backlog.
            max_linger: Duration::from_millis(self.linger_ms),
            max_concurrent_requests: 8,
            retry_schedule: schedule(
                &self
                    .retry_schedule
                    .clone()
                    .unwrap_or_else(|| vec![step; 5].join(",")),
            ),
            retry_jitter: 0.0,
            throttle_backoff: duration(&self.throttle_backoff),
            max_age_margin: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
            uncertain_grace: Duration::from_secs(5),
            partner_agent: self.partner_agent.clone(),
            business_messaging_event_names: Default::default(),
        }
    }

    pub fn new(meta_url: &str) -> Self {
        PipelineOptions {
            meta_url: meta_url.to_owned(),
            replicas: 1,
            buffer_delay_ms: 300,
            retry_delay_ms: 400,
            amqp_url: None,
            database_url: None,
            batch_size: 500,
            linger_ms: 50,
            throttle_backoff: "30s".into(),
            retry_schedule: None,
            partner_agent: String::new(),
            bot: None,
            qualification: None,
            crm: crm::session::CrmSettings {
                timeout: Duration::from_secs(2),
                ..Default::default()
            },
        }
    }

    /// qualification-agent's settings for these options.
    pub fn qualification_settings(
        &self,
        common: &runtime::CommonSettings,
    ) -> qualification_agent::Settings {
        let q = self.qualification.clone();
        qualification_agent::Settings {
            common: common.clone(),
            qualification: qualification_agent::QualificationSettings {
                policy: q
                    .as_ref()
                    .map_or(qualification_agent::Policy::Economy, |q| q.policy),
                quiet_period: duration(q.as_ref().map_or("0s", |q| &q.quiet_period)),
                max_wait: Duration::from_secs(600),
                retry_schedule: schedule(q.as_ref().map_or("300ms", |q| &q.retry_schedule)),
                max_history_messages: 60,
                max_history_chars: 16000,
            },
            llm: test_llm_settings(q.map(|q| q.llm_url).unwrap_or_default()),
            crm: self.crm.clone(),
        }
    }

    /// chatbot-service's settings for these options.
    pub fn chatbot_settings(&self, common: &runtime::CommonSettings) -> chatbot_service::Settings {
        let bot = self.bot.clone();
        chatbot_service::Settings {
            common: common.clone(),
            chatbot: chatbot_service::ChatbotSettings {
                buffer_delay: Duration::from_millis(self.buffer_delay_ms),
            },
            bot: chatbot_service::BotSettings {
                enabled: bot.is_some(),
                evolution_base_url: bot
                    .as_ref()
                    .map(|b| b.evolution_url.clone())
                    .unwrap_or_default(),
                evolution_timeout: Duration::from_secs(2),
                cloud_api_timeout: Duration::from_secs(2),
                takeover_window: Duration::from_secs(30 * 60),
                max_message_age: duration(bot.as_ref().map_or("10m", |b| &b.max_message_age)),
                max_history_messages: 30,
                max_history_chars: 12000,
                retry_schedule: schedule(bot.as_ref().map_or("", |b| &b.retry_schedule)),
                max_concurrent_replies: 256,
            },
            meta: meta_graph::GraphSettings {
                graph_base_url: bot
                    .as_ref()
                    .map(|b| b.cloud_api_url.clone())
                    .unwrap_or_default(),
                graph_version: CLOUD_API_VERSION.into(),
            },
            llm: test_llm_settings(bot.map(|b| b.llm_url).unwrap_or_default()),
        }
    }
}

/// The pipeline gateway's Cloud API verify token and app secrets (two Meta
/// apps, configured as `CLOUD_APP_IDS[i]=CLOUD_APP_SECRETS[i]`).
pub const CLOUD_VERIFY_TOKEN: &str = "test-verify-token";
pub const CLOUD_APP_SECRETS: [&str; 2] = ["app-secret-one", "app-secret-two"];
pub const CLOUD_APP_IDS: [&str; 2] = ["100001", "100002"];
/// The Graph API version chatbot-service sends Cloud API messages under.
pub const CLOUD_API_VERSION: &str = meta_graph::DEFAULT_GRAPH_VERSION;

/// The model settings tests use: a fake at `base_url` (empty: none).
pub fn test_llm_settings(base_url: String) -> llm::LlmSettings {
    llm::LlmSettings {
        base_url,
        model: "gpt-4o-mini".into(),
        api_key: "sk-test-key".to_owned().into(),
        timeout: Duration::from_secs(2),
        max_tokens: 300,
    }
}

/// Gateway, chatbot-service, qualification-agent and capi-sender running in-process.
pub struct Pipeline {
    pub gateway_port: u16,
    /// Each replica's HTTP port (`/metrics`), per service.
    pub sender_ports: Vec<u16>,
    pub chatbot_ports: Vec<u16>,
    pub qualification_ports: Vec<u16>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<anyhow::Result<()>>>,
}

impl Pipeline {
    pub async fn start(env: &TestEnv, opts: &PipelineOptions) -> Pipeline {
        let stop = CancellationToken::new();
        let mut common = env.common();
        if let Some(url) = &opts.amqp_url {
            common.amqp.url = url.clone();
        }
        if let Some(url) = &opts.database_url {
            common.database.url = url.clone().into();
        }
        let mut tasks = Vec::new();
        let mut sender_ports = Vec::new();
        let (mut chatbot_ports, mut qualification_ports) = (Vec::new(), Vec::new());
        let gateway = webhook_gateway::build(
            webhook_gateway::Settings {
                common: common.clone(),
                gateway: webhook_gateway::GatewaySettings {
                    max_body_bytes: 1024 * 1024,
                    body_timeout: GATEWAY_BODY_TIMEOUT,
                },
                whatsapp_cloud: webhook_gateway::CloudSettings {
                    verify_token: CLOUD_VERIFY_TOKEN.to_owned().into(),
                    app_secrets: CLOUD_APP_IDS
                        .iter()
                        .zip(CLOUD_APP_SECRETS)
                        .map(|(id, secret)| format!("{id}={secret}"))
                        .collect::<Vec<_>>()
                        .join(",")
                        .into(),
                },
            },
            stop.clone(),
        )
        .await
        .expect("gateway starts");
        let gateway_port = gateway.port().expect("gateway serves http");
        tasks.push(tokio::spawn(gateway.run_until_stopped()));
        for _ in 0..opts.replicas.max(1) {
            let chatbot = chatbot_service::build(opts.chatbot_settings(&common), stop.clone())
                .await
                .expect("chatbot starts");
            chatbot_ports.extend(chatbot.port());
            tasks.push(tokio::spawn(chatbot.run_until_stopped()));
            let agent =
                qualification_agent::build(opts.qualification_settings(&common), stop.clone())
                    .await
                    .expect("qualification starts");
            qualification_ports.extend(agent.port());
            tasks.push(tokio::spawn(agent.run_until_stopped()));
            let sender = capi_sender::build(
                capi_sender::Settings {
                    common: common.clone(),
                    meta: opts.meta_settings(),
                },
                stop.clone(),
            )
            .await
            .expect("sender starts");
            sender_ports.extend(sender.port());
            tasks.push(tokio::spawn(sender.run_until_stopped()));
        }
        Pipeline {
            gateway_port,
            sender_ports,
            chatbot_ports,
            qualification_ports,
            stop,
            tasks,
        }
    }

    /// Stops every service and waits for them.
    pub async fn stop(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// The account → ad account → direction → instance chain a test needs.
#[derive(Debug, Clone)]
pub struct Seed {
    pub user_account_id: domain::ids::UserAccountId,
    pub direction_id: domain::ids::DirectionId,
    pub instance: String,
    pub secret: String,
}

#[derive(Debug, Clone)]
pub struct SeedOptions<'a> {
    pub capi_enabled: bool,
    pub pixel: Option<&'a str>,
    pub ad_account_token: Option<&'a str>,
    pub user_token: Option<&'a str>,
    pub waba: Option<&'a str>,
    pub map_instance: bool,
}

impl Default for SeedOptions<'_> {
    fn default() -> Self {
        SeedOptions {
            capi_enabled: true,
            pixel: Some("1234567890"),
            ad_account_token: Some("EAAB-test-token"),
            user_token: None,
            waba: Some("102938475610"),
            map_instance: true,
        }
    }
}

pub async fn seed(env: &TestEnv, o: &SeedOptions<'_>) -> Seed {
    use storage::directions as d;
    let mut conn = env.conn().await;
    let keys = &env.keys();
    let user = d::create_user_account(&mut conn, keys, "Clinic", o.user_token)
        .await
        .expect("user");
    let ad = d::create_ad_account(
        &mut conn,
        keys,
        user,
        "Main",
        Some("act_1"),
        o.ad_account_token,
    )
    .await
    .expect("ad account");
    let direction = d::create_direction(
        &mut conn,
        &d::NewDirection {
            user_account_id: user,
            ad_account_id: Some(ad),
            name: "Cosmetology",
            capi_enabled: o.capi_enabled,
            capi_source: domain::level::CapiSource::Whatsapp,
            pixel_id: o.pixel,
            waba_id: o.waba,
        },
    )
    .await
    .expect("direction");
    let instance = format!("inst-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let secret = "s3cret-webhook-key".to_owned();
    if o.map_instance {
        d::map_instance(&mut conn, keys, &instance, direction, &secret, None)
            .await
            .expect("map instance");
    } else {
        // An instance the gateway knows but that belongs to no direction.
        diesel::sql_query(
            "INSERT INTO whatsapp_phone_numbers (instance_name, webhook_secret) VALUES ($1, $2)",
        )
        .bind::<diesel::sql_types::Text, _>(&instance)
        .bind::<diesel::sql_types::Text, _>(
            keys.seal(storage::secrets::NUMBER_WEBHOOK_SECRET, &secret)
                .expect("seal"),
        )
        .execute(&mut conn)
        .await
        .expect("instance");
    }
    Seed {
        user_account_id: user,
        direction_id: direction,
        instance,
        secret,
    }
}

/// An Evolution 2.3-style `messages.upsert` body from a customer.
pub fn customer_message(
    instance: &str,
    id: &str,
    phone: &str,
    text: &str,
    ctwa_clid: Option<&str>,
    ts: i64,
) -> Value {
    let mut data = json!({
        "key": {"remoteJid": format!("{phone}@s.whatsapp.net"), "fromMe": false, "id": id},
        "pushName": "Lead Name",
        "status": "DELIVERY_ACK",
        "message": {"conversation": text},
        "messageType": "conversation",
        "messageTimestamp": ts,
        "source": "android"
    });
    if let Some(clid) = ctwa_clid {
        data["contextInfo"] = json!({
            "externalAdReply": {"sourceType": "ad", "sourceId": "120239177205810192", "ctwaClid": clid},
            "conversionSource": "FB_Ads",
            "entryPointConversionSource": "ctwa_ad"
        });
    }
    json!({"event": "messages.upsert", "instance": instance, "data": data, "date_time": "2026-03-13T21:51:33.000Z", "apikey": null})
}

/// A customer's text, sent now, as the gateway hands it to
/// `storage::conversations::record_message`: keyed by the phone, else by the
/// LID; no name, no ad (struct update syntax sets the rest).
pub fn text_message<'a>(
    instance: &'a str,
    id: &'a str,
    phone: Option<&'a str>,
    lid: Option<&'a str>,
    text: &'a str,
) -> storage::conversations::NewMessage<'a> {
    storage::conversations::NewMessage {
        instance_name: instance,
        message_id: id,
        from_me: false,
        author: domain::conversation::Author::Customer,
        contact_key: phone.or(lid).expect("a phone or a LID"),
        contact_phone: phone,
        contact_lid: lid,
        contact_name: None,
        text: Some(text),
        message_type: Some("conversation"),
        sent_at: chrono::Utc::now(),
        ctwa_clid: None,
        ad_id: None,
        from_ad: false,
        ad_context: None,
    }
}

/// Meta's documented Click-to-WhatsApp Cloud API webhook (a fixture), with
/// this message id, sent `secs_ago`, pretty-printed as Meta sends it (so
/// re-serialising it changes the bytes).
pub fn cloud_referral_payload(message_id: &str, secs_ago: i64) -> Vec<u8> {
    let path = format!(
        "{}/../../tools/capi/tests/fixtures/meta-cloud/meta-cloudapi_webhook_messages_text_ctwa-referral_META-DOCS-EXAMPLE.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("the Cloud API fixture");
    let mut v: Value = serde_json::from_str(&text).expect("fixture JSON");
    let m = &mut v["entry"][0]["changes"][0]["value"]["messages"][0];
    m["id"] = json!(message_id);
    m["timestamp"] = json!(recent(secs_ago).to_string());
    serde_json::to_vec_pretty(&v).expect("JSON")
}

/// A finished command as (exit code, stdout, stderr); -1 when a signal ended it.
pub fn exit_and_output(out: std::process::Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A test option's "300ms"-style duration.
fn duration(text: &str) -> Duration {
    domain::duration::parse(text).unwrap_or_else(|e| panic!("test duration {text:?}: {e}"))
}

/// A test option's "200ms,200ms"-style retry schedule.
fn schedule(text: &str) -> Vec<Duration> {
    domain::duration::parse_schedule(text).unwrap_or_else(|e| panic!("test schedule {text:?}: {e}"))
}

/// POSTs a webhook with the secret header; returns status and JSON body.
/// The key stored credentials are encrypted with in tests (base64 of 32
/// bytes; `CAPI_SECRETS__KEY` for the binaries the tests start).
pub const TEST_SECRETS_KEY: &str = "Xb+GuSr6x0NPW1AbMHvBoq7sF1Cq2VFa2Obe87ofwTQ=";

/// How long the test gateway waits for a webhook's body.
pub const GATEWAY_BODY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn post_webhook(
    port: u16,
    instance: &str,
    secret: Option<&str>,
    body: &[u8],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{port}/webhooks/evolution/{instance}"
        ))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = secret {
        req = req.header("x-webhook-secret", s);
    }
    let resp = req.send().await.expect("gateway reachable");
    let status = resp.status().as_u16();
    let json = resp.json().await.unwrap_or(Value::Null);
    (status, json)
}

/// POSTs a webhook for the seeded instance, with its secret, and expects 200.
pub async fn post_ok(p: &Pipeline, s: &Seed, body: &Value) {
    let (status, resp) = post_webhook(
        p.gateway_port,
        &s.instance,
        Some(&s.secret),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
}

/// Polls `check` until it returns `Some`, or panics naming `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs a scalar SQL query returning one BIGINT named `n`.
pub async fn count(env: &TestEnv, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = env.conn().await;
    let r: N = diesel::sql_query(sql)
        .get_result(&mut conn)
        .await
        .expect("count query");
    r.n
}

/// The one `jsonb` value `sql` selects as `v` (`jsonb_agg`, `to_jsonb`…);
/// SQL `NULL` (an aggregate over no rows) as `Value::Null`.
pub async fn query_json(env: &TestEnv, sql: &str) -> Value {
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Jsonb>)]
        v: Option<Value>,
    }
    let mut conn = env.conn().await;
    let r: V = diesel::sql_query(sql)
        .get_result(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    r.v.unwrap_or(Value::Null)
}

/// Rows of `capi_events_log` as JSON objects, oldest first.
pub async fn log_rows(env: &TestEnv) -> Vec<Value> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        row: Value,
    }
    let mut conn = env.conn().await;
    let rows: Vec<Row> =
        diesel::sql_query("SELECT to_jsonb(l) AS row FROM capi_events_log l ORDER BY id")
            .load(&mut conn)
            .await
            .expect("log rows");
    rows.into_iter().map(|r| r.row).collect()
}

/// A TCP proxy to RabbitMQ that a test can take down (cutting every open
/// connection and refusing new ones) and bring back: a broker outage without
/// stopping the broker other tests share.
pub struct FlakyProxy {
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

/// `host:port` of a `scheme://user@host:port/…` URL.
fn host_port(url: &str) -> String {
    url.split('@')
        .next_back()
        .and_then(|rest| rest.split('/').next())
        .expect("the url has host:port")
        .to_owned()
}

impl FlakyProxy {
    /// A proxy to RabbitMQ.
    pub async fn start() -> FlakyProxy {
        FlakyProxy::to(host_port(&amqp_url())).await
    }

    /// A proxy to PostgreSQL.
    pub async fn to_postgres() -> FlakyProxy {
        FlakyProxy::to(host_port(&database_url("postgres"))).await
    }

    async fn to(hostport: String) -> FlakyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let (up, watch) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue; // refused: dropped at once
                }
                let mut down = watch.clone();
                let hostport = hostport.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&hostport).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        FlakyProxy { port, up }
    }

    /// `env`'s database URL through this proxy.
    pub fn database_url(&self, env: &TestEnv) -> String {
        env.db_url.replacen(
            &host_port(&env.db_url),
            &format!("127.0.0.1:{}", self.port),
            1,
        )
    }

    /// The AMQP URL through this proxy, on the tests' vhost.
    pub fn amqp_url(&self) -> String {
        let target = amqp_url();
        let vhost = target.rsplit('/').next().unwrap_or("%2f");
        format!("amqp://guest:guest@127.0.0.1:{}/{vhost}", self.port)
    }

    pub fn set_up(&self, up: bool) {
        let _ = self.up.send(up);
    }
}

/// `GET /{path}` on a local port: status and JSON body.
pub async fn get_json(port: u16, path: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/{path}"))
        .await
        .expect("service reachable");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A service's `GET /metrics` (Prometheus text).
pub async fn metrics_text(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics reachable")
        .text()
        .await
        .expect("metrics text")
}

/// Makes the fake Meta answer event requests as Meta does ([`meta_rules`]).
pub async fn meta_accepts(server: &wiremock::MockServer) {
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .and(wiremock::matchers::path_regex(format!(
            r"^/{}/[^/]+/events$",
            meta_graph::DEFAULT_GRAPH_VERSION.replace('.', r"\.")
        )))
        .respond_with(meta_rules)
        .mount(server)
        .await;
}

/// Meta's answer to an `/events` request under Meta's documented rules
/// (the sandbox's: business-messaging event names, click id and WABA id,
/// Purchase value and currency, hashing, event age): what Meta refuses is
/// refused with Meta's error body, the rest accepted.
fn meta_rules(request: &wiremock::Request) -> wiremock::ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let now = chrono::Utc::now().timestamp();
    match sandbox::validate(&body, now) {
        Ok(events) => wiremock::ResponseTemplate::new(200).set_body_json(
            json!({"events_received": events.len(), "messages": [], "fbtrace_id": "AbCdEf"}),
        ),
        Err(e) => wiremock::ResponseTemplate::new(e.status).set_body_json(e.body),
    }
}

/// Every event a fake Meta received, across requests (batches hold several).
pub async fn meta_events(server: &wiremock::MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            body["data"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

/// Every dialog's id.
pub async fn dialog_ids(env: &TestEnv) -> Vec<domain::ids::DialogId> {
    #[derive(diesel::QueryableByName)]
    struct D {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: domain::ids::DialogId,
    }
    let mut conn = env.conn().await;
    let rows: Vec<D> = diesel::sql_query("SELECT id FROM dialog_analysis ORDER BY created_at")
        .load(&mut conn)
        .await
        .expect("dialogs");
    rows.into_iter().map(|d| d.id).collect()
}

/// Unix seconds `secs_ago` before now (events must be within Meta's 7 days).
pub fn recent(secs_ago: i64) -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
        - secs_ago
}

/// `capi_events_log` rows with `status = 'success'`.
pub async fn successes(env: &TestEnv) -> i64 {
    count(
        env,
        "SELECT count(*) AS n FROM capi_events_log WHERE status = 'success'",
    )
    .await
}

/// Waits until exactly `n` events have been logged as sent.
pub async fn wait_for_successes(env: &TestEnv, n: i64, timeout: Duration) {
    eventually(&format!("{n} success row(s)"), timeout, || async {
        (successes(env).await == n).then_some(())
    })
    .await;
}

/// The sandbox (fake Meta, model, Evolution API, amoCRM and Bitrix24)
/// served in-process on a free port until the test ends.
pub struct SandboxServer {
    pub url: String,
    client: reqwest::Client,
}

impl SandboxServer {
    pub async fn start() -> SandboxServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = sandbox::serve(
            listener,
            actix_web::web::Data::new(sandbox::Sandbox::new(sandbox::Faults::default())),
        )
        .expect("sandbox");
        tokio::spawn(server);
        SandboxServer {
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// `PUT {path}` with a JSON body (sandbox set-up); the answer's JSON, if any.
    pub async fn put(&self, path: &str, body: &Value) -> Value {
        let resp = self
            .client
            .put(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .expect("sandbox answers");
        assert!(resp.status().is_success(), "PUT {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// `GET {path}`: the answer's JSON.
    pub async fn get(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("sandbox answers");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    pub async fn post(&self, path: &str) -> Value {
        let resp = self
            .client
            .post(format!("{}{path}", self.url))
            .send()
            .await
            .expect("sandbox answers");
        assert!(resp.status().is_success(), "POST {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// `GET /sandbox/crm/stats` for one CRM (`amocrm`, `bitrix24`).
    pub async fn crm_stats(&self, crm: &str) -> Value {
        let stats: Value = self
            .client
            .get(format!("{}/sandbox/crm/stats", self.url))
            .send()
            .await
            .expect("sandbox answers")
            .json()
            .await
            .expect("stats are JSON");
        stats[crm].clone()
    }
}

/// The dashboard secret the tests' reports services sign with.
pub const DASHBOARD_SECRET: &str =
    "189598b5e068bde449d5353df9a95d755eafd7c2db2be18f41df020c33b05650";

/// `[reports]` for a test: everything outside (Telegram, Meta insights) at
/// `outside_url`, ticks every 200 ms, reports due from local midnight.
pub fn reports_settings(outside_url: &str) -> reports::ReportSettings {
    reports::ReportSettings {
        daily_at: "00:00".into(),
        tick: Duration::from_millis(200),
        telegram_url: outside_url.into(),
        spend_days: 7,
        timeout: Duration::from_secs(5),
        dashboard_secret: DASHBOARD_SECRET.to_owned().into(),
        public_url: "http://127.0.0.1".into(),
        link_ttl: Duration::from_secs(15 * 60),
        session_ttl: Duration::from_secs(3600),
        // Not within a test unless the test asks (tests seed old data).
        retention_every: Duration::from_secs(3600),
        retention_batch: 1000,
        retention_pause: Duration::ZERO,
        gateway_url: "http://127.0.0.1:8080".into(),
        amocrm_authorize_url: format!("{outside_url}/oauth"),
    }
}

/// A reports service running in-process.
pub struct ReportsService {
    pub port: u16,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl ReportsService {
    /// Meta's Graph API and Evolution API are at the same outside URL as
    /// Telegram (see [`reports_settings`]).
    pub async fn start(env: &TestEnv, settings: reports::ReportSettings) -> ReportsService {
        let stop = CancellationToken::new();
        let meta = meta_graph::GraphSettings {
            graph_base_url: settings.telegram_url.clone(),
            ..Default::default()
        };
        let service = reports::build(
            reports::Settings {
                common: env.common(),
                setup: reports::SetupSettings {
                    evolution_base_url: settings.telegram_url.clone(),
                    llm: Some(llm::LlmSettings {
                        base_url: format!("{}/v1", settings.telegram_url),
                        model: "sandbox".into(),
                        api_key: "sandbox-key".to_owned().into(),
                        timeout: Duration::from_secs(10),
                        max_tokens: 1500,
                    }),
                    crm: crm::session::CrmSettings {
                        bitrix24_oauth_url: format!("{}/oauth/token/", settings.telegram_url),
                        ..Default::default()
                    },
                    ..Default::default()
                },
                reports: settings,
                meta,
            },
            stop.clone(),
        )
        .await
        .expect("reports starts");
        let port = service.port().expect("reports serves http");
        ReportsService {
            port,
            stop,
            task: tokio::spawn(service.run_until_stopped()),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// The newest reply's status and reason (none before the bot's first turn).
pub async fn reply_status(env: &TestEnv) -> Option<(String, Option<String>)> {
    use diesel::QueryableByName;
    use diesel_async::RunQueryDsl;
    #[derive(QueryableByName)]
    struct R {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        reason: Option<String>,
    }
    let mut conn = env.conn().await;
    let r: Vec<R> =
        diesel::sql_query("SELECT status, reason FROM bot_replies ORDER BY id DESC LIMIT 1")
            .load(&mut conn)
            .await
            .expect("bot_replies readable");
    r.into_iter().next().map(|r| (r.status, r.reason))
}

/// The credentials of `column` in the rows `filter` (SQL) picks, decrypted
/// (stored credentials are ciphertext: storage::secrets).
pub async fn opened_credentials(
    env: &TestEnv,
    column: storage::secrets::Column,
    filter: &str,
) -> Vec<String> {
    #[derive(diesel::QueryableByName)]
    struct V {
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        v: Option<String>,
    }
    use diesel_async::RunQueryDsl;
    let rows: Vec<V> = diesel::sql_query(format!(
        "SELECT {} AS v FROM {} WHERE {filter}",
        column.column, column.table
    ))
    .load(&mut env.conn().await)
    .await
    .expect("credential query");
    let keys = env.keys();
    rows.into_iter()
        .filter_map(|r| {
            keys.open(column, r.v.as_deref())
                .expect("opens")
                .map(|s| secrecy::ExposeSecret::expose_secret(&s).to_owned())
        })
        .collect()
}
