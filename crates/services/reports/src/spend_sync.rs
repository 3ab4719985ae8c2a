//! The daily ad-spend sync: once per ad account and UTC day (a claimed row
//! in `ad_spend_syncs`, so replicas split the accounts), the last
//! `reports.spend_days` complete days of spend per ad (with its campaign
//! and ad set, ids and names) from the Marketing API insights endpoint,
//! every page followed, into `ad_spend`.
//! Throttling (codes 4, 17, 613, 80000–80014, or 429) backs off for that ad
//! account only, as in capi-sender; token problems end the day's sync as
//! `failed` (visible in `capi spend syncs`).

use crate::{Background, metrics::Metrics};
use chrono::{NaiveDate, Utc};
use domain::meta_errors::Verdict;
use meta_graph::Graph;
use runtime::{
    CancellationToken,
    periodic::{First, every},
};
use serde_json::Value;
use storage::{Store, spend};

const LEASE_SECS: i32 = 600;
/// At most this many pages per sync (500 rows each): a loop guard.
const MAX_PAGES: usize = 200;
const THROTTLED_BACKOFF_SECS: [i64; 3] = [900, 3600, 4 * 3600];
const TRANSIENT_BACKOFF_SECS: [i64; 3] = [60, 600, 3600];
const MAX_ATTEMPTS: i32 = 8;

/// What each insights row is asked for.
const INSIGHTS_FIELDS: &str =
    "campaign_id,campaign_name,adset_id,adset_name,ad_id,ad_name,spend,account_currency,date_start";

/// Why a fetch stopped.
pub type FetchError = meta_graph::GraphError;

/// Spend per ad and day from `since` to `until`, every page
/// (`GET /act_{id}/insights`, `level=ad`, one row per ad and day).
pub async fn fetch(
    graph: &Graph,
    meta_ad_account_id: &str,
    token: &secrecy::SecretString,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<Vec<spend::SpendRow>, FetchError> {
    let account = if meta_ad_account_id.starts_with("act_") {
        meta_ad_account_id.to_owned()
    } else {
        format!("act_{meta_ad_account_id}")
    };
    let token = secrecy::ExposeSecret::expose_secret(token);
    let range =
        serde_json::json!({"since": since.to_string(), "until": until.to_string()}).to_string();
    let mut page = graph
        .get(
            &format!("{account}/insights"),
            &[
                ("level", "ad"),
                ("time_increment", "1"),
                ("fields", INSIGHTS_FIELDS),
                ("time_range", range.as_str()),
                ("limit", "500"),
            ],
            token,
        )
        .await?;
    let mut rows = Vec::new();
    for _ in 0..MAX_PAGES {
        for item in page["data"].as_array().into_iter().flatten() {
            if let Some(row) = parse_row(item) {
                rows.push(row);
            }
        }
        match page["paging"]["next"].as_str() {
            Some(next) => {
                let next = next.to_owned();
                page = graph.get_url(&next, token).await?;
            }
            None => break,
        }
    }
    Ok(rows)
}

/// One insights row; rows without a date, a readable spend or an ISO 4217
/// currency are skipped (what is stored is shown on the dashboard).
fn parse_row(item: &Value) -> Option<spend::SpendRow> {
    let date = NaiveDate::parse_from_str(item["date_start"].as_str()?, "%Y-%m-%d").ok()?;
    let amount = match &item["spend"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    amount
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite() && *x >= 0.0)?;
    let id = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
    let name = |key: &str| item[key].as_str().map(str::to_owned);
    Some(spend::SpendRow {
        date,
        campaign_id: id("campaign_id"),
        campaign_name: name("campaign_name"),
        adset_id: id("adset_id"),
        adset_name: name("adset_name"),
        ad_id: id("ad_id"),
        ad_name: name("ad_name"),
        spend: amount,
        currency: currency(item)?,
    })
}

/// `account_currency` when it is an ISO 4217 code (USD when Meta left it out).
fn currency(item: &Value) -> Option<String> {
    let code = item["account_currency"].as_str().unwrap_or("USD");
    match iso_currency::Currency::from_code(code) {
        Some(c) => Some(c.code().to_owned()),
        None => {
            tracing::warn!(
                currency = %code.chars().take(16).collect::<String>(),
                "insights row with a currency that is not ISO 4217 skipped"
            );
            None
        }
    }
}

pub(crate) async fn run(bg: Background, graph: Graph) {
    let days = bg.config.spend_days;
    every(bg.config.tick, First::Now, &bg.stop, || async {
        if let Err(e) = sync_due(&bg.store, &graph, days, &bg.metrics, &bg.stop).await {
            tracing::warn!(error = format!("{e:#}"), "spend sync: will retry");
        }
    })
    .await
}

/// Runs every sync due; returns how many finished.
pub async fn sync_due(
    store: &Store,
    graph: &Graph,
    days: u32,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> anyhow::Result<usize> {
    let mut done = 0;
    while !stop.is_cancelled() {
        let job = {
            let mut conn = store.pool().get().await?;
            spend::claim_sync(&mut conn, store.keys(), LEASE_SECS).await?
        };
        let Some(job) = job else { break };
        let until = job.sync_date - chrono::Duration::days(1);
        let since = job.sync_date - chrono::Duration::days(i64::from(days));
        let fetched = fetch(
            graph,
            &job.meta_ad_account_id,
            &job.access_token,
            since,
            until,
        )
        .await;
        let mut conn = store.pool().get().await?;
        match fetched {
            Ok(rows) => {
                spend::upsert(
                    &mut conn,
                    job.ad_account_id,
                    &rows,
                    domain::analytics::SpendSource::Api,
                )
                .await?;
                let n = i32::try_from(rows.len()).unwrap_or(i32::MAX);
                spend::finish_sync(&mut conn, &job, Ok(n)).await?;
                tracing::info!(ad_account_id = %job.ad_account_id, rows = n, "ad spend synced");
                metrics.spend_sync("done");
                done += 1;
            }
            Err(e) => {
                let schedule = match e.verdict {
                    Verdict::Throttled => Some(&THROTTLED_BACKOFF_SECS),
                    Verdict::Transient => Some(&TRANSIENT_BACKOFF_SECS),
                    _ => None,
                };
                let retry = schedule.filter(|_| job.attempts < MAX_ATTEMPTS).map(|s| {
                    let i = usize::try_from(job.attempts - 1)
                        .unwrap_or(0)
                        .min(s.len() - 1);
                    Utc::now() + chrono::Duration::seconds(s[i])
                });
                tracing::warn!(ad_account_id = %job.ad_account_id, error = %e.message, retry = retry.is_some(), "ad spend sync failed");
                metrics.spend_sync(if retry.is_some() { "retry" } else { "failed" });
                spend::finish_sync(&mut conn, &job, Err((&e.message, retry))).await?;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_need_a_date_and_a_readable_amount() {
        let ok = serde_json::json!({"campaign_id": "7", "campaign_name": "Spring", "spend": "12.30",
                                    "account_currency": "EUR", "date_start": "2026-11-30"});
        let row = parse_row(&ok);
        assert_eq!(row.as_ref().map(|r| r.spend.as_str()), Some("12.30"));
        assert_eq!(row.map(|r| r.currency), Some("EUR".to_owned()));
        assert!(parse_row(&serde_json::json!({"spend": "1", "date_start": "x"})).is_none());
        assert!(
            parse_row(&serde_json::json!({"spend": "-1", "date_start": "2026-11-30"})).is_none()
        );
        assert!(
            parse_row(&serde_json::json!({"spend": "NaN", "date_start": "2026-11-30"})).is_none()
        );
        for bad in ["<b>EUR</b>", "eur", "XXXX", "", "ZZZ"] {
            let row = serde_json::json!({"spend": "1", "date_start": "2026-11-30", "account_currency": bad});
            assert!(parse_row(&row).is_none(), "{bad}");
        }
        let row = serde_json::json!({"spend": "1", "date_start": "2026-11-30", "account_currency": "BRL"});
        assert_eq!(parse_row(&row).map(|r| r.currency), Some("BRL".to_owned()));
    }
}
