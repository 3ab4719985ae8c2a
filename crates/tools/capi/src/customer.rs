//! `capi customer forget|export|sweep`: a customer's erasure or access
//! request (LGPD, GDPR, 152-FZ) answered in one command
//! (`storage::customers`), and the retention sweep run by hand
//! (`storage::retention`).

use crate::{Failure, connect};
use clap::Subcommand;
use domain::ids::UserAccountId;
use serde_json::json;

#[derive(Subcommand)]
pub enum CustomerCommand {
    /// Erase one person's personal data everywhere it is held (message
    /// texts, phone, LID/BSUID, names, hashed phones in the audit log, CRM
    /// bodies naming them) and cancel their events not sent yet. Dialogs
    /// and events stay, anonymised, so past reports do not change.
    /// Idempotent: a second run changes nothing. Prints counts per kind.
    Forget {
        /// The person's phone with country code (any formatting: +55 11 99999-9999).
        #[arg(long)]
        phone: String,
        /// Only this user account's data (default: every account's).
        #[arg(long)]
        user_account: Option<UserAccountId>,
    },
    /// Everything held about one person, as one JSON document (an access
    /// request): dialogs, messages, levels with times, events sent with
    /// their ids, the bot's replies, CRM changes naming the phone.
    Export {
        /// The person's phone with country code (any formatting).
        #[arg(long)]
        phone: String,
        /// Only this user account's data (default: every account's).
        #[arg(long)]
        user_account: Option<UserAccountId>,
    },
    /// Blank now what is past each account's retention window (`account
    /// set --retain-messages/--retain-crm-bodies`): what the reports
    /// service does every `reports.retention_every`. Prints counts per kind.
    Sweep {
        /// Rows per transaction.
        #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(i64).range(1..=100_000))]
        batch: i64,
        /// Pause between batches (e.g. 20ms), room for the writers.
        #[arg(long, default_value = "20ms", value_parser = |s: &str| domain::duration::parse(s))]
        pause: std::time::Duration,
    },
}

fn phone_arg(raw: &str) -> Result<String, Failure> {
    domain::customer::phone_digits(raw).ok_or_else(|| {
        Failure::input("--phone: a phone number with its country code (6 to 15 digits)")
    })
}

pub async fn customer(url: &str, c: CustomerCommand) -> Result<(), Failure> {
    let (phone, user_account) = match c {
        CustomerCommand::Export {
            phone,
            user_account,
        } => {
            let phone = phone_arg(&phone)?;
            let mut conn = connect(url).await?;
            let doc = storage::customers::export(&mut conn, &phone, user_account).await?;
            out!("{doc}");
            return Ok(());
        }
        CustomerCommand::Forget {
            phone,
            user_account,
        } => (phone_arg(&phone)?, user_account),
        CustomerCommand::Sweep { batch, pause } => {
            let mut conn = connect(url).await?;
            let started = std::time::Instant::now();
            let swept = storage::retention::sweep(&mut conn, batch, pause, || false).await?;
            out!(
                "{}",
                json!({"blanked": swept, "seconds": started.elapsed().as_secs_f64()})
            );
            return Ok(());
        }
    };
    let mut conn = connect(url).await?;
    let by = format!(
        "capi customer forget (user {})",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let erased = storage::customers::forget(&mut conn, &phone, user_account, &by).await?;
    out!("{}", json!({"erased": erased}));
    Ok(())
}
