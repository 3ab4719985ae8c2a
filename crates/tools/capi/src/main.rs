//! `capi`: the operator's command line. Outputs are one JSON object per line
//! (a stable interface for scripts); errors go to stderr with exit code 2
//! for bad input and 1 for everything else.

/// `println!` for the command's output, except that a closed standard output
/// (`capi … | head`) ends the process quietly, as it ends `ls` or `grep`
/// (status 141, 128 + SIGPIPE), instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        if let Err(e) = writeln!(std::io::stdout().lock(), $($arg)*) {
            crate::stdout_closed(e)
        }
    }};
}

/// Standard output failed: quietly for a closed pipe, with a message otherwise.
fn stdout_closed(e: std::io::Error) -> ! {
    if e.kind() != std::io::ErrorKind::BrokenPipe {
        eprintln!("capi: cannot write the output: {e}");
        std::process::exit(1);
    }
    std::process::exit(141)
}

mod admin;
mod audit;
mod crm;
mod customer;
mod dataset;
mod doctor;
mod events;
mod inspect;
mod lead;
mod qualification;
mod reports;
mod secrets;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "capi",
    version,
    about = "WhatsApp/CRM → Meta Conversions API: operator tool"
)]
struct Cli {
    /// PostgreSQL URL (commands that touch the database).
    #[arg(
        long,
        global = true,
        env = "CAPI_DATABASE__URL",
        default_value = "postgres://capi@127.0.0.1:54329/capi",
        hide_env_values = true
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Apply pending database migrations (safe to run concurrently).
    Migrate,
    /// Normalize and hash one user_data value by Meta's rules.
    Normalize {
        /// em, ph, fn, ln, ct, st, zp, country, external_id, ge or db.
        key: String,
        value: String,
        /// Country calling code added to phone numbers written without one.
        #[arg(long)]
        default_country_code: Option<String>,
    },
    /// Meta events without a database: `event preview`.
    #[command(subcommand)]
    Event(events::EventCommand),
    /// Parse a webhook body the way the gateway does and print what it found.
    ParseWebhook {
        #[arg(value_enum)]
        source: inspect::WebhookSource,
        /// The body, or - for standard input.
        file: String,
    },
    /// CRM connections (amoCRM/Kommo, Bitrix24).
    #[command(subcommand)]
    Crm(crm::CrmCommand),
    /// The levels a CRM entity reaches under a direction's field rules.
    CrmMatch {
        #[arg(long, value_enum)]
        crm: inspect::Crm,
        /// lead, deal or contact.
        #[arg(long)]
        entity_type: String,
        /// The CRM API's answer for the entity (amoCRM v4 object; Bitrix24 `{"result":{…}}` or the object).
        #[arg(long)]
        entity: String,
        /// `{"interest":[…],"qualified":[…],"scheduled":[…]}`.
        #[arg(long)]
        mapping: String,
    },
    /// User accounts (the customers of this product).
    #[command(subcommand)]
    Account(admin::AccountCommand),
    /// A lead's paid orders (the purchase level by hand).
    #[command(subcommand)]
    Lead(lead::LeadCommand),
    /// A customer's personal data: erasure.
    #[command(subcommand)]
    Customer(customer::CustomerCommand),
    /// Meta ad accounts and their access tokens.
    #[command(subcommand)]
    AdAccount(admin::AdAccountCommand),
    /// Directions (business lines) and their CAPI settings.
    #[command(subcommand)]
    Direction(admin::DirectionCommand),
    /// WhatsApp instances and the direction each belongs to.
    #[command(subcommand)]
    Instance(admin::InstanceCommand),
    /// WhatsApp Cloud API numbers (listed with `capi instance list`).
    #[command(subcommand)]
    Number(admin::NumberCommand),
    /// The encryption keys of stored credentials: generate, status, rotate.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
    /// Daily conversation reports.
    #[command(subcommand)]
    Report(reports::ReportCommand),
    /// Ad spend (for accounts without insights API access).
    #[command(subcommand)]
    Spend(reports::SpendCommand),
    /// API keys of the reports API.
    #[command(subcommand)]
    ApiKey(reports::ApiKeyCommand),
    /// Print a short-lived sign-in link to an account's dashboard
    /// (reports.dashboard_secret must match the reports service's).
    DashboardLink {
        #[arg(long)]
        user_account: domain::ids::UserAccountId,
        /// viewer: the read-only dashboard; editor: may also change the
        /// account's set-up in the browser (every change is audited).
        #[arg(long, default_value = "viewer", value_parser = |s: &str| s.parse::<domain::api_key::Role>())]
        role: domain::api_key::Role,
    },
    /// Dashboard sessions: end all of one account's.
    #[command(subcommand)]
    DashboardSessions(reports::DashboardSessionsCommand),
    /// The spec's troubleshooting in one command: setup, Meta's view of each
    /// token, shared pixels, missing click ids, failed and skipped events,
    /// dead letters, outbox backlog, queue depths, model and CRM failures.
    /// Exit 0 healthy, 1 warnings, 2 errors.
    Doctor {
        #[arg(long)]
        user_account: Option<domain::ids::UserAccountId>,
        #[arg(long)]
        direction: Option<domain::ids::DirectionId>,
        /// One JSON object instead of lines.
        #[arg(long)]
        json: bool,
        /// Do not ask Meta about each token.
        #[arg(long)]
        offline: bool,
    },
    /// Exit 0 when the service on this machine answers `GET /health` (the
    /// container image's HEALTHCHECK); its port from CAPI_HTTP__PORT.
    Healthcheck {
        #[arg(long, env = "CAPI_HTTP__PORT", default_value_t = 8080)]
        port: u16,
    },
    /// The broker's exchange and queues under a prefix, with the service
    /// consuming each (what KEDA scales on), as JSON.
    Topology {
        #[arg(long, env = "CAPI_AMQP__PREFIX", default_value = "capi")]
        prefix: String,
    },
    /// Model calls and tokens per direction, day and purpose.
    /// Set-up changes (directions, numbers, CRM mapping, the bot) from the
    /// dashboard and this CLI: who, when, before → after.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    Usage {
        /// The last this many days (UTC).
        #[arg(long, default_value_t = 7)]
        days: i32,
    },
    /// Run a labeled set of conversations through the qualification request
    /// (the model configured by CAPI_LLM__*) and print precision/recall per level.
    EvalQualification {
        /// The labeled set (JSON).
        #[arg(long, default_value = "scripts/eval/qualification-set.json")]
        set: String,
        /// The qualification prompt to test (default: the generic one).
        #[arg(long)]
        prompt_file: Option<String>,
        /// The business name the generic prompt uses.
        #[arg(long, default_value = "the business")]
        business: String,
    },
}

/// A connection to the database the command works on.
pub(crate) async fn connect(url: &str) -> Result<diesel_async::AsyncPgConnection, Failure> {
    storage::connect(url).await.map_err(|e| Failure {
        code: 1,
        message: format!("cannot connect to PostgreSQL: {e:#}"),
    })
}

/// One JSON line per row on standard output.
pub(crate) fn print_rows<T: serde::Serialize>(rows: &[T]) -> Result<(), Failure> {
    for r in rows {
        out!(
            "{}",
            serde_json::to_string(r).map_err(|e| Failure::from(anyhow::Error::from(e)))?
        );
    }
    Ok(())
}

/// An error with the exit code it deserves.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        Failure {
            code: 1,
            message: format!("{e:#}"),
        }
    }
}

impl From<setup::SetupError> for Failure {
    fn from(e: setup::SetupError) -> Failure {
        Failure {
            code: if e.is_input() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

impl From<storage::DbError> for Failure {
    fn from(e: storage::DbError) -> Failure {
        Failure {
            code: 1,
            message: format!("database: {e}"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let keys = match secrets::keys_from_env() {
        Ok(keys) => keys,
        Err(f) => {
            eprintln!("capi: {}", f.message);
            return ExitCode::from(f.code);
        }
    };
    if let Command::Doctor {
        user_account,
        direction,
        json,
        offline,
    } = cli.command
    {
        let scope = storage::doctor::Scope {
            user_account,
            direction,
        };
        return doctor::doctor(
            &cli.database_url,
            doctor::Options {
                scope,
                json,
                offline,
                keys,
            },
        )
        .await;
    }
    let result = match cli.command {
        Command::Doctor { .. } => Ok(()),
        Command::Healthcheck { port } => admin::healthcheck(port).await,
        Command::Topology { prefix } => inspect::topology(&prefix),
        Command::Migrate => admin::migrate(&cli.database_url, &keys).await,
        Command::Normalize {
            key,
            value,
            default_country_code,
        } => inspect::normalize(&key, &value, default_country_code),
        Command::ParseWebhook { source, file } => inspect::parse_webhook(source, &file),
        Command::Event(c) => events::event(c),
        Command::Crm(c) => crm::crm(&cli.database_url, &keys, c).await,
        Command::CrmMatch {
            crm,
            entity_type,
            entity,
            mapping,
        } => inspect::crm_match(crm, &entity_type, &entity, &mapping),
        Command::Account(c) => admin::account(&cli.database_url, &keys, c).await,
        Command::Lead(c) => lead::lead(&cli.database_url, c).await,
        Command::Customer(c) => customer::customer(&cli.database_url, c).await,
        Command::AdAccount(c) => admin::ad_account(&cli.database_url, &keys, c).await,
        Command::Direction(c) => admin::direction(&cli.database_url, &keys, c).await,
        Command::Instance(c) => admin::instance(&cli.database_url, &keys, c).await,
        Command::Number(c) => admin::number(&cli.database_url, &keys, c).await,
        Command::Secrets(c) => secrets::secrets(&cli.database_url, &keys, c).await,
        Command::Report(c) => reports::report(&cli.database_url, c).await,
        Command::Spend(c) => reports::spend(&cli.database_url, c).await,
        Command::ApiKey(c) => reports::api_key(&cli.database_url, c).await,
        Command::DashboardLink { user_account, role } => {
            reports::dashboard_link(&cli.database_url, user_account, role).await
        }
        Command::DashboardSessions(c) => reports::dashboard_sessions(&cli.database_url, c).await,
        Command::Audit(c) => audit::audit(&cli.database_url, c).await,
        Command::Usage { days } => qualification::usage(&cli.database_url, days).await,
        Command::EvalQualification {
            set,
            prompt_file,
            business,
        } => qualification::eval(&set, prompt_file, &business).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("capi: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
