//! CRM connections (`capi crm connect`) and a direction's CRM field rules
//! (`capi direction crm-fields`: `capi_interest_fields`,
//! `capi_qualified_fields`, `capi_scheduled_fields`; checked before they
//! are stored). Secrets are read from standard input, never from arguments.

use crate::{
    Failure,
    admin::{connect, generate_secret, print_rows},
    inspect::read_input,
};
use clap::Subcommand;
use domain::{
    crm::mapping::FieldRule,
    level::{CrmType, Level},
};
use serde_json::json;
use storage::crm::NewConnection;
use uuid::Uuid;

#[derive(Subcommand)]
pub enum CrmFieldsCommand {
    /// Print each level's rules, one JSON line per level.
    List { direction: Uuid },
    /// Replace one level's rules with a JSON array of rules, from a file (or - for stdin):
    /// `[{"field_id": "…", "enum_id": "…"}, {"field_id": "…", "enum_value": "…", "entity_type": "deal"}]`.
    Set {
        direction: Uuid,
        #[arg(long, value_parser = |s: &str| s.parse::<Level>())]
        level: Level,
        #[arg(long)]
        rules: String,
    },
    /// Remove one level's rules.
    Clear {
        direction: Uuid,
        #[arg(long, value_parser = |s: &str| s.parse::<Level>())]
        level: Level,
    },
}

fn read_rules(file: &str) -> Result<Vec<FieldRule>, Failure> {
    let text = read_input(file)?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::input(format!(
            "{file}: not a list of rules (field_id, enum_id or enum_value, entity_type): {e}"
        ))
    })
}

pub async fn crm_fields(url: &str, c: CrmFieldsCommand) -> Result<(), Failure> {
    let missing = |id: Uuid| Failure::input(format!("no direction {id}"));
    let mut conn = connect(url).await?;
    match c {
        CrmFieldsCommand::List { direction } => {
            let mapping = storage::directions::crm_fields(&mut conn, direction)
                .await?
                .ok_or_else(|| missing(direction))?;
            let lines: Vec<_> = Level::ALL
                .iter()
                .map(|l| json!({"level": l, "rules": mapping.rules(*l)}))
                .collect();
            print_rows(&lines)?;
        }
        CrmFieldsCommand::Set {
            direction,
            level,
            rules,
        } => {
            let rules = read_rules(&rules)?;
            if !storage::directions::set_crm_fields(&mut conn, direction, level, &rules).await? {
                return Err(missing(direction));
            }
            println!(
                "{}",
                json!({"id": direction, "level": level, "rules": rules.len()})
            );
        }
        CrmFieldsCommand::Clear { direction, level } => {
            if !storage::directions::set_crm_fields(&mut conn, direction, level, &[]).await? {
                return Err(missing(direction));
            }
            println!("{}", json!({"id": direction, "level": level, "rules": 0}));
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
        connection: Uuid,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Connect an amoCRM/Kommo account. Standard input: the API token
    /// (long-lived token). Prints the connection id and the webhook URL to
    /// paste into amoCRM (Settings → Integrations → Web hooks).
    ConnectAmocrm {
        #[arg(long)]
        user_account: Uuid,
        /// The account's address, e.g. https://clinic.amocrm.ru or https://clinic.kommo.com.
        #[arg(long)]
        base_url: String,
        /// The account's subdomain (the webhooks' account[subdomain]).
        #[arg(long)]
        subdomain: String,
        /// The account's id (the webhooks' account[id]), when known.
        #[arg(long)]
        account_id: Option<String>,
        /// Region for phones written without a country code.
        #[arg(long, default_value = "RU")]
        default_region: String,
        /// Where webhook-gateway is reachable from the CRM.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway_url: String,
    },
    /// Connect a Bitrix24 portal. Standard input, two lines: the incoming
    /// webhook URL (https://{portal}/rest/{user}/{secret}/) and the outgoing
    /// webhook's application token. Prints the handler URL for the outgoing webhook.
    ConnectBitrix24 {
        #[arg(long)]
        user_account: Uuid,
        /// The portal's member id (the events' auth[member_id]), when known.
        #[arg(long)]
        member_id: Option<String>,
        #[arg(long, default_value = "RU")]
        default_region: String,
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        gateway_url: String,
    },
}

/// The non-empty lines of standard input.
fn stdin_lines() -> Result<Vec<String>, Failure> {
    Ok(read_input("-")?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

pub async fn crm(url: &str, c: CrmCommand) -> Result<(), Failure> {
    match c {
        CrmCommand::Changes { connection, limit } => {
            let mut conn = connect(url).await?;
            let rows =
                storage::crm::recent_changes(&mut conn, connection, limit.clamp(1, 1000)).await?;
            print_rows(&rows)?;
        }
        CrmCommand::ConnectAmocrm {
            user_account,
            base_url,
            subdomain,
            account_id,
            default_region,
            gateway_url,
        } => {
            let [token] = <[String; 1]>::try_from(stdin_lines()?).map_err(|_| {
                Failure::input("standard input must hold the amoCRM API token, one line")
            })?;
            if !base_url.starts_with("https://") && !base_url.starts_with("http://") {
                return Err(Failure::input("--base-url must be an http(s) URL"));
            }
            let secret = generate_secret();
            let mut conn = connect(url).await?;
            let id = storage::crm::create_connection(
                &mut conn,
                &NewConnection {
                    user_account_id: user_account,
                    crm_type: CrmType::AmoCrm,
                    base_url: base_url.trim_end_matches('/'),
                    access_token: Some(&token),
                    webhook_secret: Some(&secret),
                    default_region: &default_region,
                    account_subdomain: Some(&subdomain),
                    account_id: account_id.as_deref(),
                    member_id: None,
                    application_token: None,
                },
            )
            .await?;
            let hook = format!(
                "{}/webhooks/amocrm/{id}?secret={secret}",
                gateway_url.trim_end_matches('/')
            );
            println!("{}", json!({"id": id, "webhook_url": hook}));
        }
        CrmCommand::ConnectBitrix24 {
            user_account,
            member_id,
            default_region,
            gateway_url,
        } => {
            let [rest_url, application_token] =
                <[String; 2]>::try_from(stdin_lines()?).map_err(|_| {
                    Failure::input(
                        "standard input must hold two lines: the incoming webhook URL, then the application token",
                    )
                })?;
            if !rest_url.starts_with("https://") && !rest_url.starts_with("http://") {
                return Err(Failure::input(
                    "the first line must be the incoming webhook URL (https://{portal}/rest/{user}/{secret}/)",
                ));
            }
            let mut conn = connect(url).await?;
            let id = storage::crm::create_connection(
                &mut conn,
                &NewConnection {
                    user_account_id: user_account,
                    crm_type: CrmType::Bitrix24,
                    base_url: &rest_url,
                    access_token: None,
                    webhook_secret: None,
                    default_region: &default_region,
                    account_subdomain: None,
                    account_id: None,
                    member_id: member_id.as_deref(),
                    application_token: Some(&application_token),
                },
            )
            .await?;
            let hook = format!(
                "{}/webhooks/bitrix24/{id}",
                gateway_url.trim_end_matches('/')
            );
            println!("{}", json!({"id": id, "webhook_url": hook}));
        }
    }
    Ok(())
}
