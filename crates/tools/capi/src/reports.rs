//! Commands for what the marketer sees: an account's report settings, the
//! daily report (regenerated on demand), ad spend imports, API keys and
//! dashboard links.

use crate::{Failure, connect, print_rows};
use chrono::NaiveDate;
use clap::Subcommand;
use domain::ids::UserAccountId;
use serde_json::json;
use storage::{api_keys, reports, spend};
use uuid::Uuid;

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Count the account's local day and store its report. An existing
    /// report is updated only if its content changed; a report already
    /// sent to Telegram is never sent again.
    Generate {
        #[arg(long)]
        user_account: UserAccountId,
        /// The local day, YYYY-MM-DD.
        #[arg(long)]
        date: NaiveDate,
    },
    /// The stored report of a day (text, directions_data, delivery).
    Show {
        #[arg(long)]
        user_account: UserAccountId,
        #[arg(long)]
        date: NaiveDate,
    },
    /// The account's recent reports and their Telegram delivery.
    List {
        #[arg(long)]
        user_account: UserAccountId,
        #[arg(long, default_value_t = 14)]
        limit: i64,
    },
}

pub async fn report(url: &str, c: ReportCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    match c {
        ReportCommand::Generate { user_account, date } => {
            let account = reports::account(&mut conn, user_account)
                .await?
                .ok_or_else(|| Failure::input(format!("no user account {user_account}")))?;
            let (report, stored) = reports::generate(&mut conn, &account, date, true).await?;
            let stored = match stored {
                reports::Stored::Created => "created",
                reports::Stored::Updated => "updated",
                reports::Stored::Unchanged => "unchanged",
            };
            out!(
                "{}",
                json!({"user_account_id": user_account, "report_date": date, "stored": stored,
                       "text": domain::report::render(&report), "directions_data": report.directions})
            );
        }
        ReportCommand::Show { user_account, date } => {
            let r = reports::get(&mut conn, user_account, date)
                .await?
                .ok_or_else(|| Failure::input(format!("no report of {user_account} for {date}")))?;
            print_rows(&[r])?;
        }
        ReportCommand::List {
            user_account,
            limit,
        } => {
            print_rows(&reports::list(&mut conn, user_account, limit).await?)?;
        }
    }
    Ok(())
}

#[derive(Subcommand)]
pub enum SpendCommand {
    /// Import spend from a CSV file (header: date,spend and optionally
    /// campaign_id, campaign_name, currency), for ad accounts without API
    /// access. All rows or none: a bad row names its line.
    Import {
        file: String,
        #[arg(long)]
        ad_account: Uuid,
        /// The currency of rows without a currency column.
        #[arg(long, default_value = "USD")]
        currency: String,
    },
}

pub async fn spend(url: &str, c: SpendCommand) -> Result<(), Failure> {
    match c {
        SpendCommand::Import {
            file,
            ad_account,
            currency,
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::input(format!("{file}: {e}")))?;
            let rows = parse_spend_csv(&text, &currency).map_err(Failure::input)?;
            let mut conn = connect(url).await?;
            if !spend::ad_account_exists(&mut conn, ad_account).await? {
                return Err(Failure::input(format!("no ad account {ad_account}")));
            }
            let n = spend::upsert(
                &mut conn,
                ad_account,
                &rows,
                domain::analytics::SpendSource::Csv,
            )
            .await?;
            out!("{}", json!({"ad_account_id": ad_account, "rows": n}));
        }
    }
    Ok(())
}

/// The rows of a spend CSV; the error names the line and the column.
pub fn parse_spend_csv(text: &str, default_currency: &str) -> Result<Vec<spend::SpendRow>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| format!("the header line: {e}"))?
        .clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(date_col), Some(spend_col)) = (col("date"), col("spend")) else {
        return Err("the header must name at least the columns date and spend".into());
    };
    let (campaign_col, name_col, currency_col) =
        (col("campaign_id"), col("campaign_name"), col("currency"));
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| format!("line {line}: {e}"))?;
        let field = |c: Option<usize>| c.and_then(|c| record.get(c)).filter(|v| !v.is_empty());
        let date = field(Some(date_col))
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| format!("line {line}: date: expected YYYY-MM-DD"))?;
        let amount = field(Some(spend_col))
            .filter(|s| {
                s.parse::<f64>()
                    .is_ok_and(|x| x.is_finite() && (0.0..1e12).contains(&x))
            })
            .ok_or_else(|| {
                format!("line {line}: spend: expected a non-negative amount like 12.30")
            })?;
        let currency = field(currency_col).unwrap_or(default_currency);
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_alphabetic()) {
            return Err(format!("line {line}: currency: expected a 3-letter code"));
        }
        rows.push(spend::SpendRow {
            date,
            campaign_id: field(campaign_col).unwrap_or_default().to_owned(),
            campaign_name: field(name_col).map(str::to_owned),
            spend: amount.to_owned(),
            currency: currency.to_ascii_uppercase(),
            ..Default::default()
        });
    }
    Ok(rows)
}

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key for the reports API; prints it once (only its hash is kept).
    Create {
        #[arg(long)]
        user_account: UserAccountId,
        #[arg(long, default_value = "api")]
        name: String,
    },
    /// Revoke a key by id: it stops working at once.
    Revoke { id: Uuid },
    List {
        #[arg(long)]
        user_account: UserAccountId,
    },
}

pub async fn api_key(url: &str, c: ApiKeyCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    match c {
        ApiKeyCommand::Create { user_account, name } => {
            if reports::account(&mut conn, user_account).await?.is_none() {
                return Err(Failure::input(format!("no user account {user_account}")));
            }
            let key = domain::api_key::generate();
            let id = api_keys::create(
                &mut conn,
                user_account,
                &name,
                &domain::api_key::hash(&key),
                &domain::api_key::display_prefix(&key),
            )
            .await?;
            out!(
                "{}",
                json!({"id": id, "user_account_id": user_account, "key": key})
            );
        }
        ApiKeyCommand::Revoke { id } => {
            if !api_keys::revoke(&mut conn, id).await? {
                return Err(Failure::input(format!("no live API key {id}")));
            }
            out!("{}", json!({"id": id, "revoked": true}));
        }
        ApiKeyCommand::List { user_account } => {
            print_rows(&api_keys::list(&mut conn, user_account).await?)?
        }
    }
    Ok(())
}

/// `capi dashboard-link`: a short-lived sign-in link to the account's
/// dashboard, for a viewer or an editor.
pub async fn dashboard_link(
    url: &str,
    user_account: UserAccountId,
    role: domain::api_key::Role,
) -> Result<(), Failure> {
    #[derive(serde::Deserialize)]
    struct Own {
        reports: dashboard_link::LinkSettings,
    }
    let s = runtime::settings::load_section::<Own>(dashboard_link::DEFAULTS)
        .map_err(anyhow::Error::from)?
        .reports;
    let mut conn = connect(url).await?;
    let Some(generation) = storage::dashboard::generation(&mut conn, user_account).await? else {
        return Err(Failure::input(format!("no user account {user_account}")));
    };
    let (link, expires) = s
        .link(user_account, generation, role)
        .map_err(|e| Failure::input(format!("{e:#}")))?;
    out!(
        "{}",
        json!({"user_account_id": user_account, "role": role, "url": link, "expires_unix": expires})
    );
    Ok(())
}

/// `capi dashboard-sessions`.
#[derive(clap::Subcommand)]
pub enum DashboardSessionsCommand {
    /// End every dashboard session of the account, and every sign-in link
    /// of it not yet used, at once (other accounts keep theirs).
    Revoke {
        #[arg(long)]
        user_account: UserAccountId,
    },
}

pub async fn dashboard_sessions(url: &str, c: DashboardSessionsCommand) -> Result<(), Failure> {
    let DashboardSessionsCommand::Revoke { user_account } = c;
    let mut conn = connect(url).await?;
    let Some((generation, ended)) = storage::dashboard::revoke(&mut conn, user_account).await?
    else {
        return Err(Failure::input(format!("no user account {user_account}")));
    };
    out!(
        "{}",
        json!({"user_account_id": user_account, "sessions_ended": ended, "generation": generation})
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spend_csv_rows_and_errors() {
        let rows = parse_spend_csv(
            "date,campaign_id,campaign_name,spend,currency\n2026-11-30,42,\"Spring, promo\",12.30,eur\n2026-11-29,,,0,\n",
            "USD",
        );
        let rows = rows.unwrap_or_default();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].campaign_name.as_deref(), Some("Spring, promo"));
        assert_eq!(rows[0].currency, "EUR");
        assert_eq!(rows[1].currency, "USD");
        assert_eq!(rows[1].campaign_id, "");
        assert_eq!(
            parse_spend_csv("date,spend\n2026-11-30,abc\n", "USD")
                .err()
                .as_deref(),
            Some("line 2: spend: expected a non-negative amount like 12.30")
        );
        assert_eq!(
            parse_spend_csv("date,spend\n30.11.2026,1\n", "USD")
                .err()
                .as_deref(),
            Some("line 2: date: expected YYYY-MM-DD")
        );
        assert!(parse_spend_csv("day,amount\n", "USD").is_err());
    }
}
