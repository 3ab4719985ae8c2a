//! CRM connections (`capi crm connect`) and a direction's CRM field rules
//! (`capi direction crm-fields`: `capi_interest_fields`,
//! `capi_qualified_fields`, `capi_scheduled_fields`; checked before they
//! are stored). Secrets are read from standard input, never from arguments.

use crate::{Failure, connect, inspect::read_input, print_rows};
use ::crm::session::{CrmPolicy, CrmSettings};
use clap::Subcommand;
use domain::ids::{ConnectionId, DirectionId, UserAccountId};
use domain::{
    crm::{
        mapping::FieldRule,
        purchase::{PurchaseRule, PurchaseSetting},
    },
    level::{CrmType, Level},
};
use serde_json::{Value, json};
use storage::crm::NewConnection;
use storage::secrets::Keys;

#[derive(Subcommand)]
pub enum CrmFieldsCommand {
    /// Print each level's rules, one JSON line per level.
    List { direction: DirectionId },
    /// Replace one level's rules with a JSON array of rules, from a file (or - for stdin):
    /// `[{"field_id": "…", "enum_id": "…"}, {"field_id": "…", "enum_value": "…", "entity_type": "deal"}]`.
    /// For `--level purchase`, one rule with its value source, or `false` for none:
    /// `{"when": {"field_id": "status_id", "enum_id": "142"}, "value_field": "price",
    /// "currency_field": "…" | "currency": "RUB"}` (without either: the amoCRM account's currency).
    Set {
        direction: DirectionId,
        #[arg(long, value_parser = |s: &str| s.parse::<Level>())]
        level: Level,
        #[arg(long)]
        rules: String,
    },
    /// Remove one level's rules (`--level purchase`: back to the CRM's default rule).
    Clear {
        direction: DirectionId,
        #[arg(long, value_parser = |s: &str| s.parse::<Level>())]
        level: Level,
    },
}

fn read_rules(file: &str) -> Result<Vec<FieldRule>, Failure> {
    let text = read_input(file)?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::input(format!("{file}: not JSON: {e}")))?;
    Ok(setup::crm_mapping::parse_rules(value)?)
}

pub async fn crm_fields(url: &str, c: CrmFieldsCommand) -> Result<(), Failure> {
    let missing = |id: DirectionId| Failure::input(format!("no direction {id}"));
    let mut conn = connect(url).await?;
    match c {
        CrmFieldsCommand::List { direction } => {
            let mapping = storage::directions::crm_fields(&mut conn, direction)
                .await?
                .ok_or_else(|| missing(direction))?;
            let purchase = storage::directions::purchase_rule(&mut conn, direction)
                .await?
                .ok_or_else(|| missing(direction))?;
            let mut lines: Vec<_> = Level::CONVERSATION
                .iter()
                .map(|l| json!({"level": l, "rules": mapping.rules(*l)}))
                .collect();
            lines.push(match purchase {
                PurchaseSetting::Default => json!({"level": Level::Purchase, "rule": "default",
                    "amocrm": PurchaseRule::default_for(CrmType::AmoCrm),
                    "bitrix24": PurchaseRule::default_for(CrmType::Bitrix24)}),
                PurchaseSetting::Off => json!({"level": Level::Purchase, "rule": false}),
                PurchaseSetting::Rule(r) => json!({"level": Level::Purchase, "rule": r}),
            });
            print_rows(&lines)?;
        }
        CrmFieldsCommand::Set {
            direction,
            level,
            rules,
        } if level == Level::Purchase => {
            let text = read_input(&rules)?;
            let value: Value = serde_json::from_str(&text)
                .map_err(|e| Failure::input(format!("{rules}: not JSON: {e}")))?;
            let setting = setup::crm_mapping::parse_purchase(&value)?;
            setup::crm_mapping::set_purchase(
                &mut conn,
                &setup::Actor::cli(),
                None,
                direction,
                &setting,
            )
            .await?;
            out!(
                "{}",
                json!({"id": direction, "level": level, "rule": setting.to_stored()})
            );
        }
        CrmFieldsCommand::Set {
            direction,
            level,
            rules,
        } => {
            let rules = read_rules(&rules)?;
            setup::crm_mapping::set_level(
                &mut conn,
                &setup::Actor::cli(),
                None,
                direction,
                level,
                &rules,
            )
            .await?;
            out!(
                "{}",
                json!({"id": direction, "level": level, "rules": rules.len()})
            );
        }
        CrmFieldsCommand::Clear { direction, level } if level == Level::Purchase => {
            setup::crm_mapping::set_purchase(
                &mut conn,
                &setup::Actor::cli(),
                None,
                direction,
                &PurchaseSetting::Default,
            )
            .await?;
            out!(
                "{}",
                json!({"id": direction, "level": level, "rule": "default"})
            );
        }
        CrmFieldsCommand::Clear { direction, level } => {
            setup::crm_mapping::set_level(
                &mut conn,
                &setup::Actor::cli(),
                None,
                direction,
                level,
                &[],
            )
            .await?;
            out!("{}", json!({"id": direction, "level": level, "rules": 0}));
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum CrmCommand {
    /// A connection's newest changes, one JSON line each, with what their
    /// evaluation found (levels reached, the dialog joined, or why none:
    /// `no_dialog`, `no_levels`, `no_crm_direction`, `unreadable`).
    Changes {
        connection: ConnectionId,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Connect a CRM account; prints the connection id and the webhook URL
    /// to paste into the CRM. Secrets come from standard input.
    #[command(subcommand)]
    Connect(ConnectCommand),
    /// The CRM's own fields, one JSON line each with its enum ids, to pick
    /// rules from (amoCRM: custom fields page by page, and for leads the
    /// pipelines' statuses as `status_id`; Bitrix24: `crm.{entity}.fields`).
    Fields {
        connection: ConnectionId,
        /// amoCRM: leads (default), contacts, companies; Bitrix24: deal (default), lead, contact.
        #[arg(long)]
        entity_type: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum ConnectCommand {
    /// amoCRM/Kommo. Standard input: the long-lived token, one line; with
    /// --oauth three lines: access token, refresh token, client secret.
    /// Paste the printed URL in amoCRM (Settings → Integrations → Web hooks).
    Amocrm {
        #[arg(long)]
        user_account: UserAccountId,
        /// The account's address, e.g. https://clinic.amocrm.ru or https://clinic.kommo.com.
        #[arg(long)]
        base_url: String,
        /// The account's subdomain (the webhooks' account[subdomain]).
        #[arg(long)]
        subdomain: String,
        /// The account's id (the webhooks' account[id]), when known.
        #[arg(long)]
        account_id: Option<String>,
        #[command(flatten)]
        oauth: OAuthArgs,
        /// The integration's redirect URI (amoCRM asks for it on refresh).
        #[arg(long)]
        redirect_uri: Option<String>,
        #[command(flatten)]
        common: ConnectArgs,
    },
    /// Bitrix24. Standard input: the incoming webhook URL
    /// (https://{portal}/rest/{user}/{secret}/) and the outgoing webhook's
    /// application token, a line each; with --oauth four lines: access
    /// token, refresh token, client secret, application token. Paste the
    /// printed URL as the outgoing webhook's handler.
    Bitrix24 {
        /// The portal's member id (the events' auth[member_id]), when known.
        #[arg(long)]
        member_id: Option<String>,
        #[command(flatten)]
        oauth: OAuthArgs,
        /// OAuth: the app's client endpoint, https://{portal}/rest/.
        #[arg(long)]
        client_endpoint: Option<String>,
        #[arg(long)]
        user_account: UserAccountId,
        #[command(flatten)]
        common: ConnectArgs,
    },
}

#[derive(clap::Args)]
pub struct OAuthArgs {
    /// Tokens of an OAuth integration/app (refreshed before they expire).
    #[arg(long, requires = "client_id")]
    oauth: bool,
    /// The integration's/app's client id.
    #[arg(long, requires = "oauth")]
    client_id: Option<String>,
    /// Seconds the access token has left (unknown: refreshed when refused).
    #[arg(long, requires = "oauth")]
    expires_in: Option<i64>,
}

#[derive(clap::Args)]
pub struct ConnectArgs {
    /// Region for phones written without a country code.
    #[arg(long, default_value = "RU")]
    default_region: String,
    /// Where webhook-gateway is reachable from the CRM.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    gateway_url: String,
}

/// The non-empty lines of standard input: exactly `names.len()` of them.
fn stdin_lines(names: &[&str]) -> Result<Vec<String>, Failure> {
    let lines: Vec<String> = read_input("-")?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if lines.len() != names.len() {
        return Err(Failure::input(format!(
            "standard input must hold {} line(s): {}",
            names.len(),
            names.join(", ")
        )));
    }
    Ok(lines)
}

fn http_url(what: &str, url: &str) -> Result<(), Failure> {
    Ok(setup::crm_connect::check_http_url(what, url)?)
}

pub async fn crm(url: &str, keys: &Keys, c: CrmCommand) -> Result<(), Failure> {
    match c {
        CrmCommand::Changes { connection, limit } => {
            let mut conn = connect(url).await?;
            let rows =
                storage::crm::recent_changes(&mut conn, connection, limit.clamp(1, 1000)).await?;
            print_rows(&rows)?;
        }
        CrmCommand::Connect(c) => connect_crm(url, keys, c).await?,
        CrmCommand::Fields {
            connection,
            entity_type,
        } => fields(url, keys, connection, entity_type).await?,
    }
    Ok(())
}

async fn connect_crm(url: &str, keys: &Keys, c: ConnectCommand) -> Result<(), Failure> {
    let expires_at = |o: &OAuthArgs| {
        o.expires_in
            .map(|s| chrono::Utc::now() + chrono::Duration::seconds(s.max(0)))
    };
    let mut conn = connect(url).await?;
    let (id, hook_path, gateway_url) = match c {
        ConnectCommand::Amocrm {
            user_account,
            base_url,
            subdomain,
            account_id,
            oauth,
            redirect_uri,
            common,
        } => {
            http_url("--base-url", &base_url)?;
            let lines = if oauth.oauth {
                stdin_lines(&["access token", "refresh token", "client secret"])?
            } else {
                stdin_lines(&["the amoCRM API token"])?
            };
            let secret = domain::api_key::random_secret();
            let id = setup::crm_connect::create(
                &mut conn,
                keys,
                &setup::Actor::cli(),
                &NewConnection {
                    user_account_id: user_account,
                    crm_type: CrmType::AmoCrm,
                    base_url: base_url.trim_end_matches('/'),
                    access_token: lines.first().map(String::as_str),
                    webhook_secret: Some(&secret),
                    default_region: &common.default_region,
                    account_subdomain: Some(&subdomain),
                    account_id: account_id.as_deref(),
                    member_id: None,
                    application_token: None,
                    refresh_token: lines.get(1).map(String::as_str),
                    token_expires_at: expires_at(&oauth),
                    oauth_client_id: oauth.client_id.as_deref(),
                    oauth_client_secret: lines.get(2).map(String::as_str),
                    oauth_redirect_uri: redirect_uri.as_deref(),
                },
            )
            .await?;
            (
                id,
                format!("/webhooks/amocrm/{id}?secret={secret}"),
                common.gateway_url,
            )
        }
        ConnectCommand::Bitrix24 {
            member_id,
            oauth,
            client_endpoint,
            user_account,
            common,
        } => {
            let (base_url, lines) = if oauth.oauth {
                let endpoint = client_endpoint.ok_or_else(|| {
                    Failure::input("--oauth needs --client-endpoint https://{portal}/rest/")
                })?;
                http_url("--client-endpoint", &endpoint)?;
                let lines = stdin_lines(&[
                    "access token",
                    "refresh token",
                    "client secret",
                    "application token",
                ])?;
                (endpoint, lines)
            } else {
                let mut lines = stdin_lines(&[
                    "the incoming webhook URL (https://{portal}/rest/{user}/{secret}/)",
                    "the application token",
                ])?;
                let webhook = lines.remove(0);
                http_url("the first line (the incoming webhook URL)", &webhook)?;
                (webhook, lines)
            };
            let (access, refresh, client_secret, application_token) = match lines.as_slice() {
                [a, r, s, t] => (
                    Some(a.as_str()),
                    Some(r.as_str()),
                    Some(s.as_str()),
                    t.as_str(),
                ),
                [t] => (None, None, None, t.as_str()),
                _ => return Err(Failure::input("unexpected standard input")),
            };
            let id = setup::crm_connect::create(
                &mut conn,
                keys,
                &setup::Actor::cli(),
                &NewConnection {
                    user_account_id: user_account,
                    crm_type: CrmType::Bitrix24,
                    base_url: &base_url,
                    access_token: access,
                    webhook_secret: None,
                    default_region: &common.default_region,
                    account_subdomain: None,
                    account_id: None,
                    member_id: member_id.as_deref(),
                    application_token: Some(application_token),
                    refresh_token: refresh,
                    token_expires_at: expires_at(&oauth),
                    oauth_client_id: oauth.client_id.as_deref(),
                    oauth_client_secret: client_secret,
                    oauth_redirect_uri: None,
                },
            )
            .await?;
            (id, format!("/webhooks/bitrix24/{id}"), common.gateway_url)
        }
    };
    let hook = format!("{}{hook_path}", gateway_url.trim_end_matches('/'));
    out!("{}", json!({"id": id, "webhook_url": hook}));
    Ok(())
}

/// The `[crm]` settings (pace, OAuth, timeout) from the environment.
fn crm_policy() -> Result<CrmPolicy, Failure> {
    #[derive(serde::Deserialize)]
    struct Own {
        #[serde(default)]
        crm: CrmSettings,
    }
    let own =
        runtime::settings::load_section::<Own>("").map_err(|e| Failure::input(format!("{e}")))?;
    CrmPolicy::new(&own.crm).map_err(|e| Failure::input(format!("{e:#}")))
}

async fn fields(
    url: &str,
    keys: &Keys,
    connection: ConnectionId,
    entity_type: Option<String>,
) -> Result<(), Failure> {
    let store = storage::Store::new(storage::connect_pool(url, 2)?, keys.clone());
    let lines = setup::crm_mapping::fields(
        store,
        crm_policy()?,
        None,
        connection,
        entity_type.as_deref(),
    )
    .await?;
    print_rows(&lines)?;
    Ok(())
}
