//! `capi customer forget`: a customer's erasure request (LGPD, GDPR,
//! 152-FZ) answered in one command (`storage::customers`).

use crate::{Failure, admin::connect};
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
