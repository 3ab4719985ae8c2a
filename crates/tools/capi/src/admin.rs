//! Commands that set up and list accounts, directions and instances, so a
//! new user configures everything without SQL.

use crate::{Failure, connect, print_rows};
use clap::Subcommand;
use domain::ids::{DirectionId, UserAccountId};
use domain::{
    evolution::ApiVersion,
    level::{CapiSource, NoDialog},
};
use serde_json::json;
use std::io::Read;
use storage::directions;
use storage::secrets::Keys;
use uuid::Uuid;

/// `-` reads the token from standard input, so it stays out of shell
/// history and process lists; `""` clears it. Any other value is refused:
/// secrets are never taken as arguments.
pub(crate) fn token_arg(t: Option<String>) -> Result<Option<String>, Failure> {
    match t.as_deref() {
        Some(v) if v != "-" && !v.trim().is_empty() => Err(Failure::input(
            "secrets are not taken as arguments: pass `-` and the value on standard input",
        )),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| {
                Failure::input(format!("reading the token from standard input: {e}"))
            })?;
            let s = s.trim().to_owned();
            Ok((!s.is_empty()).then_some(s))
        }
        _ => Ok(t.filter(|s| !s.trim().is_empty())),
    }
}

/// The migration that moves the old default event names (it says so).
const EVENT_NAMES_MIGRATION: &str = "20261205000019";

pub async fn migrate(url: &str, keys: &Keys) -> Result<(), Failure> {
    let moving = {
        let mut conn = connect(url).await?;
        let pending = storage::migrations::pending(&mut conn).await?;
        // A database with no schema yet has no directions to move.
        let fresh = storage::migrations::embedded_versions()?
            .first()
            .is_some_and(|first| pending.contains(first));
        if !fresh && pending.iter().any(|v| v == EVENT_NAMES_MIGRATION) {
            directions::on_old_default_names(&mut conn).await?
        } else {
            0
        }
    };
    let applied = storage::migrations::run_pending(url).await?;
    let encrypted = crate::secrets::seal_plaintext(url, keys).await?;
    let mut answer = json!({"applied": applied, "encrypted": encrypted});
    if moving > 0 && applied.iter().any(|v| v == EVENT_NAMES_MIGRATION) {
        let note = format!(
            "{moving} direction(s) moved from Lead/CompleteRegistration/Schedule to LeadSubmitted/QualifiedLead/OrderCreated \
             for events with a click id (Meta refuses the old names on business-messaging events); \
             without a click id they keep their names. See docs/capi-sender.md, \"Event names\"."
        );
        eprintln!("note: {note}");
        answer["notes"] = json!([note]);
    }
    out!("{answer}");
    Ok(())
}

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create a user account; prints its id.
    Create {
        #[arg(long)]
        name: String,
        /// Fallback Meta access token (`-` reads it from standard input).
        #[arg(long)]
        access_token: Option<String>,
    },
    /// The daily report's settings: time zone (IANA, e.g. Europe/Moscow),
    /// language, and the Telegram chat it goes to.
    Set {
        id: UserAccountId,
        #[arg(long)]
        timezone: Option<String>,
        /// ru or en.
        #[arg(long, value_parser = |s: &str| s.parse::<domain::account::ReportLanguage>())]
        report_language: Option<domain::account::ReportLanguage>,
        /// The chat (or channel) id the bot posts to (groups are negative,
        /// e.g. -1001234567890); "" clears it.
        #[arg(long, allow_hyphen_values = true)]
        telegram_chat_id: Option<String>,
        /// The bot's token: `-` reads it from standard input; "" clears it.
        #[arg(long)]
        telegram_bot_token: Option<String>,
        /// How long message texts are kept, in whole days (e.g. 90d; 7d to
        /// 3650d; default 90d): older ones are blanked by the reports service.
        #[arg(long, value_parser = |s: &str| retention_days(s, storage::retention::MESSAGE_DAYS))]
        retain_messages: Option<i32>,
        /// How long CRM change bodies are kept once evaluated (e.g. 30d; 1d
        /// to 3650d; default 30d).
        #[arg(long, value_parser = |s: &str| retention_days(s, storage::retention::CRM_BODY_DAYS))]
        retain_crm_bodies: Option<i32>,
    },
    List,
}

/// A retention window option: whole days within the column's bounds.
fn retention_days(text: &str, bounds: std::ops::RangeInclusive<i32>) -> Result<i32, String> {
    let days = domain::duration::parse_days(text)?;
    if bounds.contains(&days) {
        Ok(days)
    } else {
        Err(format!(
            "{days} days is outside {}d..{}d",
            bounds.start(),
            bounds.end()
        ))
    }
}

pub async fn account(url: &str, keys: &Keys, c: AccountCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    match c {
        AccountCommand::Create { name, access_token } => {
            let token = token_arg(access_token)?;
            let id =
                directions::create_user_account(&mut conn, keys, &name, token.as_deref()).await?;
            out!("{}", json!({"id": id}));
        }
        AccountCommand::Set {
            id,
            timezone,
            report_language,
            telegram_chat_id,
            telegram_bot_token,
            retain_messages,
            retain_crm_bodies,
        } => {
            if let Some(tz) = &timezone
                && !storage::reports::is_time_zone(&mut conn, tz).await?
            {
                return Err(Failure::input(format!(
                    "--timezone: {tz:?} is not a time zone PostgreSQL knows (e.g. Europe/Moscow, UTC)"
                )));
            }
            let token = match telegram_bot_token {
                Some(t) if t.is_empty() => Some(None),
                Some(t) => Some(token_arg(Some(t))?),
                None => None,
            };
            let settings = storage::reports::AccountSettings {
                timezone: timezone.as_deref(),
                language: report_language,
                telegram_chat_id: telegram_chat_id
                    .as_deref()
                    .map(|c| (!c.is_empty()).then_some(c)),
                telegram_bot_token: token.as_ref().map(Option::as_deref),
            };
            let windows = storage::retention::Windows {
                messages_days: retain_messages,
                crm_bodies_days: retain_crm_bodies,
            };
            if !storage::reports::set_account(&mut conn, keys, id, &settings).await?
                || !storage::retention::set_windows(&mut conn, id, windows).await?
            {
                return Err(Failure::input(format!("no user account {id}")));
            }
            out!("{}", json!({"id": id, "updated": true}));
        }
        AccountCommand::List => print_rows(&directions::list_user_accounts(&mut conn).await?)?,
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum AdAccountCommand {
    /// Create an ad account with its Meta access token; prints its id.
    Create {
        #[arg(long)]
        user_account: UserAccountId,
        #[arg(long)]
        name: String,
        /// Meta's ad account id (act_...).
        #[arg(long)]
        meta_id: Option<String>,
        /// Meta access token (`-` reads it from standard input).
        #[arg(long)]
        access_token: Option<String>,
    },
    /// Set the secret of the Meta app behind the token (enables appsecret_proof;
    /// `-` reads it from standard input, an empty value clears it).
    SetAppSecret {
        id: Uuid,
        #[arg(long)]
        app_secret: String,
    },
    List,
}

pub async fn ad_account(url: &str, keys: &Keys, c: AdAccountCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    match c {
        AdAccountCommand::Create {
            user_account,
            name,
            meta_id,
            access_token,
        } => {
            let token = token_arg(access_token)?;
            let id = directions::create_ad_account(
                &mut conn,
                keys,
                user_account,
                &name,
                meta_id.as_deref(),
                token.as_deref(),
            )
            .await?;
            out!("{}", json!({"id": id}));
        }
        AdAccountCommand::SetAppSecret { id, app_secret } => {
            let secret = token_arg(Some(app_secret))?;
            if !directions::set_ad_account_app_secret(&mut conn, keys, id, secret.as_deref())
                .await?
            {
                return Err(Failure::input(format!("no ad account {id}")));
            }
            out!("{}", json!({"id": id, "app_secret_set": secret.is_some()}));
        }
        AdAccountCommand::List => print_rows(&directions::list_ad_accounts(&mut conn).await?)?,
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Source {
    Whatsapp,
    Crm,
}

impl From<Source> for CapiSource {
    fn from(s: Source) -> Self {
        match s {
            Source::Whatsapp => CapiSource::Whatsapp,
            Source::Crm => CapiSource::Crm,
        }
    }
}

#[derive(Subcommand)]
pub enum DirectionCommand {
    /// Create a direction; prints its id.
    Create {
        #[arg(long)]
        user_account: UserAccountId,
        #[arg(long)]
        name: String,
        #[arg(long)]
        ad_account: Option<Uuid>,
        /// Send CAPI events for this direction.
        #[arg(long)]
        capi_enabled: bool,
        #[arg(long, value_enum, default_value = "whatsapp")]
        source: Source,
        /// Meta pixel / dataset id.
        #[arg(long)]
        pixel: Option<String>,
        /// WhatsApp Business Account id (sent as user_data.whatsapp_business_account_id).
        #[arg(long)]
        waba: Option<String>,
    },
    /// Change a direction's CAPI settings (only the options given).
    Set {
        id: DirectionId,
        #[arg(long)]
        capi_enabled: Option<bool>,
        #[arg(long, value_enum)]
        source: Option<Source>,
        /// The CRM a crm-source direction reads.
        #[arg(long, value_enum)]
        crm: Option<crate::inspect::Crm>,
        /// When a CRM entity reaches a level but no WhatsApp dialog has the
        /// contact's phone: skip (record it as skipped, reason no_dialog) or
        /// phone-only (send with the hashed phone only, no click id).
        #[arg(long, value_enum)]
        crm_no_dialog: Option<NoDialogArg>,
        #[arg(long)]
        pixel: Option<String>,
        #[arg(long)]
        waba: Option<String>,
        #[arg(long)]
        ad_account: Option<Uuid>,
        /// Meta event name for level 1 on events with a click id
        /// (business_messaging; default LeadSubmitted). Must be on Meta's
        /// list (meta.business_messaging_event_names).
        #[arg(long)]
        event_name_interest: Option<String>,
        /// Level 2 with a click id (default QualifiedLead; Meta's list).
        #[arg(long)]
        event_name_qualified: Option<String>,
        /// Level 3 with a click id (default OrderCreated; Meta's list).
        #[arg(long)]
        event_name_scheduled: Option<String>,
        /// Level 1 on events without a click id (action_source other; default Lead).
        #[arg(long)]
        event_name_interest_other: Option<String>,
        /// Level 2 without a click id (default CompleteRegistration).
        #[arg(long)]
        event_name_qualified_other: Option<String>,
        /// Level 3 without a click id (default Schedule).
        #[arg(long)]
        event_name_scheduled_other: Option<String>,
        /// Events Manager test code; an empty value clears it. Remove it for production.
        #[arg(long)]
        test_event_code: Option<String>,
        /// Limited Data Use (data_processing_options ["LDU"]).
        #[arg(long)]
        ldu: Option<bool>,
        /// LDU country: 0 = geolocate, 1 = US.
        #[arg(long)]
        ldu_country: Option<i32>,
        /// LDU state: 0 = geolocate, 1000 = California.
        #[arg(long)]
        ldu_state: Option<i32>,
    },
    /// Set the direction's pixel to its WhatsApp Business Account's dataset
    /// (read from Meta, created there if the WABA has none: idempotent).
    Dataset {
        id: DirectionId,
    },
    /// The WhatsApp bot of a direction: on/off and its prompt (business
    /// context, tone, language; an empty prompt means the generic one).
    Bot {
        id: DirectionId,
        #[arg(long)]
        enabled: Option<bool>,
        #[arg(long)]
        prompt: Option<String>,
    },
    /// The direction's qualification prompt (levels 2 and 3): show, set,
    /// clear, or generate it from a business description.
    #[command(subcommand)]
    QualificationPrompt(crate::qualification::PromptCommand),
    /// The CRM field rules per level, for a direction whose source is crm.
    #[command(subcommand)]
    CrmFields(crate::crm::CrmFieldsCommand),
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum NoDialogArg {
    Skip,
    PhoneOnly,
}

pub async fn direction(url: &str, keys: &Keys, c: DirectionCommand) -> Result<(), Failure> {
    if let DirectionCommand::Dataset { id } = c {
        return crate::dataset::set_direction_dataset(url, keys, id).await;
    }
    let mut conn = connect(url).await?;
    match c {
        DirectionCommand::Dataset { .. } => {}
        DirectionCommand::Create {
            user_account,
            name,
            ad_account,
            capi_enabled,
            source,
            pixel,
            waba,
        } => {
            let d = setup::directions::NewDirection {
                account: user_account,
                name,
                ad_account,
                capi_enabled,
                source: source.into(),
                pixel,
                waba,
            };
            let id = setup::directions::create(&mut conn, &setup::Actor::cli(), &d).await?;
            out!("{}", json!({"id": id}));
        }
        DirectionCommand::Set {
            id,
            capi_enabled,
            source,
            crm,
            crm_no_dialog,
            pixel,
            waba,
            ad_account,
            event_name_interest,
            event_name_qualified,
            event_name_scheduled,
            event_name_interest_other,
            event_name_qualified_other,
            event_name_scheduled_other,
            test_event_code,
            ldu,
            ldu_country,
            ldu_state,
        } => {
            let c = setup::directions::DirectionChange {
                capi_enabled,
                source: source.map(CapiSource::from),
                crm: crm.map(Into::into),
                crm_no_dialog: crm_no_dialog.map(|n| match n {
                    NoDialogArg::Skip => NoDialog::Skip,
                    NoDialogArg::PhoneOnly => NoDialog::PhoneOnly,
                }),
                pixel,
                waba,
                ad_account,
                event_names: [
                    event_name_interest,
                    event_name_qualified,
                    event_name_scheduled,
                ],
                event_names_other: [
                    event_name_interest_other,
                    event_name_qualified_other,
                    event_name_scheduled_other,
                ],
                test_event_code,
                ldu,
                ldu_country,
                ldu_state,
            };
            let allowed = crate::events::allowed()?;
            setup::directions::update(&mut conn, &setup::Actor::cli(), &allowed, None, id, &c)
                .await?;
            out!("{}", json!({"id": id, "updated": true}));
        }
        DirectionCommand::Bot {
            id,
            enabled,
            prompt,
        } => {
            setup::directions::set_bot(
                &mut conn,
                &setup::Actor::cli(),
                None,
                id,
                enabled,
                prompt.as_deref(),
            )
            .await?;
            out!("{}", json!({"id": id, "updated": true}));
        }
        DirectionCommand::QualificationPrompt(c) => {
            drop(conn);
            crate::qualification::prompt(url, c).await?;
        }
        DirectionCommand::CrmFields(c) => {
            drop(conn);
            crate::crm::crm_fields(url, c).await?;
        }
        DirectionCommand::List => print_rows(&directions::list_directions(&mut conn).await?)?,
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum InstanceCommand {
    /// Map an Evolution API instance to a direction; prints the webhook secret.
    Map {
        #[arg(long)]
        instance: String,
        #[arg(long)]
        direction: DirectionId,
        /// `-`: read the webhook secret from standard input (generated when
        /// not given).
        #[arg(long)]
        secret: Option<String>,
        /// The instance's WhatsApp number.
        #[arg(long)]
        phone: Option<String>,
    },
    /// How the bot sends through the instance: its Evolution API key, the
    /// API's version (v2 by default), and whether the bot may answer there.
    Bot {
        instance: String,
        /// `-`: read the instance's Evolution API key from standard input.
        #[arg(long)]
        evolution_api_key: Option<String>,
        #[arg(long, value_parser = |s: &str| s.parse::<ApiVersion>())]
        evolution_api_version: Option<ApiVersion>,
        #[arg(long)]
        enabled: Option<bool>,
    },
    /// Connect an Evolution API instance: map it to the direction, keep its
    /// API key (sealed), and set its webhook through Evolution API's own
    /// endpoint (the gateway's URL, MESSAGES_UPSERT, the secret header),
    /// read back to confirm. Evolution's address is bot.evolution_base_url.
    Connect {
        #[arg(long)]
        instance: String,
        #[arg(long)]
        direction: DirectionId,
        /// The instance's WhatsApp number.
        #[arg(long)]
        phone: Option<String>,
        /// `-`: read the instance's Evolution API key from standard input
        /// (not given: the one stored).
        #[arg(long)]
        evolution_api_key: Option<String>,
        #[arg(long, value_parser = |s: &str| s.parse::<ApiVersion>())]
        evolution_api_version: Option<ApiVersion>,
        /// Where webhook-gateway is reachable from Evolution API.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway_url: String,
    },
    List,
}

/// Evolution API at `bot.evolution_base_url` (`CAPI_BOT__EVOLUTION_BASE_URL`).
fn evolution() -> Result<Option<setup::evolution::Evolution>, Failure> {
    #[derive(serde::Deserialize, Default)]
    struct Bot {
        #[serde(default)]
        evolution_base_url: String,
    }
    #[derive(serde::Deserialize)]
    struct Own {
        #[serde(default)]
        bot: Bot,
    }
    let own =
        runtime::settings::load_section::<Own>("").map_err(|e| Failure::input(format!("{e}")))?;
    let base = own.bot.evolution_base_url.trim().to_owned();
    if base.is_empty() {
        return Ok(None);
    }
    setup::evolution::Evolution::new(&base, std::time::Duration::from_secs(10))
        .map(Some)
        .map_err(Failure::from)
}

pub async fn instance(url: &str, keys: &Keys, c: InstanceCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    match c {
        InstanceCommand::Map {
            instance,
            direction,
            secret,
            phone,
        } => {
            let secret = token_arg(secret)?.unwrap_or_else(domain::api_key::random_secret);
            setup::instances::map(
                &mut conn,
                keys,
                &setup::Actor::cli(),
                &instance,
                direction,
                &secret,
                phone.as_deref(),
            )
            .await?;
            out!(
                "{}",
                json!({
                    "instance": instance,
                    "direction_id": direction,
                    "webhook_secret": secret,
                    "webhook_path": format!("/webhooks/evolution/{instance}"),
                    "header": "X-Webhook-Secret",
                })
            );
        }
        InstanceCommand::Bot {
            instance,
            evolution_api_key,
            evolution_api_version,
            enabled,
        } => {
            let evolution_api_key = token_arg(evolution_api_key)?;
            setup::instances::set_bot(
                &mut conn,
                keys,
                &setup::Actor::cli(),
                &instance,
                evolution_api_key.as_deref(),
                evolution_api_version,
                enabled,
            )
            .await?;
            out!("{}", json!({"instance": instance, "updated": true}));
        }
        InstanceCommand::Connect {
            instance,
            direction,
            phone,
            evolution_api_key,
            evolution_api_version,
            gateway_url,
        } => {
            let c = setup::instances::ConnectInstance {
                instance,
                direction,
                phone,
                api_key: token_arg(evolution_api_key)?,
                version: evolution_api_version,
                secret: None,
            };
            let done = setup::instances::connect(
                &mut conn,
                keys,
                evolution()?.as_ref(),
                &gateway_url,
                &setup::Actor::cli(),
                None,
                &c,
            )
            .await?;
            out!(
                "{}",
                json!({
                    "instance": c.instance,
                    "direction_id": direction,
                    "webhook_url": done.webhook_url,
                    "evolution": done.evolution,
                })
            );
        }
        InstanceCommand::List => print_rows(&directions::list_instances(&mut conn).await?)?,
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum NumberCommand {
    /// Map a WhatsApp Cloud API number (Meta's phone number id) to a
    /// direction. Its webhooks come to /webhooks/whatsapp-cloud, signed with
    /// the app secret (webhook-gateway's whatsapp_cloud.app_secrets).
    Map {
        #[arg(long)]
        phone_number_id: String,
        #[arg(long)]
        direction: DirectionId,
        /// The WhatsApp Business Account id (webhooks fill it in too).
        #[arg(long)]
        waba_id: Option<String>,
        /// The number itself, for lists.
        #[arg(long)]
        phone: Option<String>,
        /// The system-user token the bot replies with (`-` reads standard input).
        #[arg(long)]
        access_token: Option<String>,
        /// The Meta app whose webhooks speak for this number: its id as
        /// named in whatsapp_cloud.app_secrets (`APP_ID=SECRET`). Webhooks
        /// for the number signed by any other app are refused.
        #[arg(long)]
        app: Option<String>,
        /// Also subscribe the app to the WABA (`POST /{waba_id}/subscribed_apps`
        /// with the token), so Meta sends the number's messages to it.
        #[arg(long)]
        subscribe_app: bool,
    },
}

pub async fn number(url: &str, keys: &Keys, c: NumberCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    match c {
        NumberCommand::Map {
            phone_number_id,
            direction,
            waba_id,
            phone,
            access_token,
            app,
            subscribe_app,
        } => {
            let token = token_arg(access_token)?;
            let n = setup::cloud::CloudNumber {
                phone_number_id: phone_number_id.clone(),
                direction: Some(direction),
                waba_id,
                phone,
                access_token: token.clone(),
                app,
                subscribe: subscribe_app,
            };
            let graph = crate::dataset::graph().map_err(Failure::input)?;
            let instance =
                setup::cloud::map(&mut conn, keys, &graph, &setup::Actor::cli(), None, &n).await?;
            out!(
                "{}",
                json!({
                    "phone_number_id": phone_number_id,
                    "instance": instance,
                    "direction_id": direction,
                    "webhook_path": "/webhooks/whatsapp-cloud",
                    "access_token_set": token.is_some(),
                    "app_subscribed": subscribe_app,
                })
            );
        }
    }
    Ok(())
}

/// `capi healthcheck`: `GET /health` on the local service within 3 s.
pub async fn healthcheck(port: u16) -> Result<(), Failure> {
    let http = outbound::client(std::time::Duration::from_secs(3))
        .map_err(|e| Failure::from(anyhow::Error::from(e)))?;
    let resp = http
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .map_err(|e| {
            Failure::from(anyhow::anyhow!(
                "no answer on port {port}: {}",
                outbound::transport_error(e)
            ))
        })?;
    if !resp.status().is_success() {
        return Err(Failure::from(anyhow::anyhow!(
            "/health answered {}",
            resp.status()
        )));
    }
    Ok(())
}
