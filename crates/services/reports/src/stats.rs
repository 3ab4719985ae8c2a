//! The numbers behind `/analytics/capi-stats`, `/analytics/optimisation`
//! and the dashboard, computed one way for both.
//!
//! - events: successes in the audit log (`capi_events_log`), per local day
//!   of the account, direction and level;
//! - leads: new dialogs (first message in the range) of the account's
//!   directions; the account's row 2 uses the directions with CAPI on;
//! - spend: the account's ad accounts' spend over the range (all of them,
//!   as the spec's `totalSpend`); a direction's, its ad account's spend
//!   (`spend_shared` when other directions use the same ad account);
//! - revenue: the values of the purchases Meta accepted, per currency, and
//!   ROAS (revenue ÷ spend) only where the spend is in the same currency.

use chrono::NaiveDate;
use domain::analytics::{self, Advice, Funnel, LevelCounts, Money, Spend, Window};
use domain::ids::{DirectionId, UserAccountId};
use serde::Serialize;
use std::collections::BTreeMap;
use storage::{AsyncPgConnection, DbError, analytics as db};
use uuid::Uuid;

#[derive(Debug, Clone, Serialize)]
pub struct DirectionStats {
    pub direction_id: DirectionId,
    pub name: String,
    pub capi_enabled: bool,
    pub spend_shared: bool,
    #[serde(flatten)]
    pub funnel: Funnel,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayStats {
    pub date: NaiveDate,
    #[serde(flatten)]
    pub events: LevelCounts,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapiStats {
    pub user_account_id: UserAccountId,
    pub since: NaiveDate,
    pub until: NaiveDate,
    pub timezone: String,
    pub capi_enabled: bool,
    #[serde(flatten)]
    pub totals: Funnel,
    pub directions: Vec<DirectionStats>,
    pub daily: Vec<DayStats>,
}

pub async fn capi_stats(
    conn: &mut AsyncPgConnection,
    account: UserAccountId,
    timezone: &str,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<CapiStats, DbError> {
    let directions = db::directions(conn, account).await?;
    let events = db::events_by_day(conn, account, since, until, timezone).await?;
    let leads: BTreeMap<DirectionId, i64> =
        db::leads_by_direction(conn, account, since, until, timezone)
            .await?
            .into_iter()
            .collect();
    let spend: BTreeMap<Uuid, Spend> = db::spend_by_ad_account(conn, account, since, until)
        .await?
        .into_iter()
        .collect();
    let mut revenue: BTreeMap<Option<DirectionId>, Vec<Money>> = BTreeMap::new();
    let mut total_revenue: Vec<Money> = Vec::new();
    for (direction, money) in
        db::revenue_by_direction(conn, account, since, until, timezone).await?
    {
        analytics::add_revenue(revenue.entry(direction).or_default(), [&money]);
        analytics::add_revenue(&mut total_revenue, [&money]);
    }
    let mut per_direction: BTreeMap<Option<DirectionId>, LevelCounts> = BTreeMap::new();
    let mut per_day: BTreeMap<NaiveDate, LevelCounts> = BTreeMap::new();
    let mut total = LevelCounts::default();
    for e in &events {
        per_direction
            .entry(e.direction_id)
            .or_default()
            .add_level(e.event_level, e.n);
        per_day
            .entry(e.day)
            .or_default()
            .add_level(e.event_level, e.n);
        total.add_level(e.event_level, e.n);
    }
    let rows: Vec<DirectionStats> = directions
        .iter()
        .map(|d| {
            let ad_spend = d.ad_account_id.and_then(|a| spend.get(&a));
            DirectionStats {
                direction_id: d.id,
                name: d.name.clone(),
                capi_enabled: d.capi_enabled,
                spend_shared: d.ad_account_id.is_some_and(|a| {
                    directions
                        .iter()
                        .filter(|o| o.ad_account_id == Some(a))
                        .count()
                        > 1
                }),
                funnel: analytics::funnel(
                    leads.get(&d.id).copied().unwrap_or(0),
                    per_direction.get(&Some(d.id)).copied().unwrap_or_default(),
                    ad_spend,
                    revenue.get(&Some(d.id)).map_or(&[], Vec::as_slice),
                ),
            }
        })
        .collect();
    let capi_leads: i64 = directions
        .iter()
        .filter(|d| d.capi_enabled)
        .map(|d| leads.get(&d.id).copied().unwrap_or(0))
        .sum();
    let total_spend = analytics::total_spend(spend.values());
    let daily = since
        .iter_days()
        .take_while(|d| *d <= until)
        .map(|date| DayStats {
            date,
            events: per_day.get(&date).copied().unwrap_or_default(),
        })
        .collect();
    Ok(CapiStats {
        user_account_id: account,
        since,
        until,
        timezone: timezone.to_owned(),
        capi_enabled: directions.iter().any(|d| d.capi_enabled),
        totals: analytics::funnel(capi_leads, total, total_spend.as_ref(), &total_revenue),
        directions: rows,
        daily,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectionAdvice {
    pub direction_id: DirectionId,
    pub name: String,
    /// The event name the direction sends for the advised level.
    pub event_name: String,
    #[serde(flatten)]
    pub advice: Advice,
}

#[derive(Debug, Clone, Serialize)]
pub struct Optimisation {
    pub user_account_id: UserAccountId,
    /// The last 7 complete local days end here (yesterday).
    pub last_7_days: [NaiveDate; 2],
    pub previous_7_days: [NaiveDate; 2],
    pub min_events: i64,
    pub stable_within_pct: f64,
    pub directions: Vec<DirectionAdvice>,
}

/// Advice for every direction with CAPI on, from the 7 complete days
/// before `today` against the 7 days before those.
pub async fn optimisation(
    conn: &mut AsyncPgConnection,
    account: UserAccountId,
    timezone: &str,
    today: NaiveDate,
) -> Result<Optimisation, DbError> {
    let day = chrono::Duration::days;
    let last = [today - day(7), today - day(1)];
    let previous = [today - day(14), today - day(8)];
    let now = capi_stats(conn, account, timezone, last[0], last[1]).await?;
    let before = capi_stats(conn, account, timezone, previous[0], previous[1]).await?;
    let infos = db::directions(conn, account).await?;
    let window = |s: &CapiStats, id: DirectionId| {
        s.directions
            .iter()
            .find(|d| d.direction_id == id)
            .map(|d| Window {
                events: d.funnel.events,
                spend: d.funnel.spend.as_ref().map(|v| Spend {
                    cents: (v.amount * 100.0).round() as i64,
                    currency: v.currency.clone(),
                }),
            })
            .unwrap_or_default()
    };
    let directions = infos
        .iter()
        .filter(|d| d.capi_enabled)
        .map(|d| {
            let advice = analytics::advise(&window(&now, d.id), &window(&before, d.id));
            let event_name = match advice.optimise_for {
                analytics::Level::Lead => &d.event_name_interest,
                analytics::Level::Registration => &d.event_name_qualified,
                analytics::Level::Schedule => &d.event_name_scheduled,
            };
            DirectionAdvice {
                direction_id: d.id,
                name: d.name.clone(),
                event_name: event_name.clone(),
                advice,
            }
        })
        .collect();
    Ok(Optimisation {
        user_account_id: account,
        last_7_days: last,
        previous_7_days: previous,
        min_events: analytics::MIN_EVENTS,
        stable_within_pct: analytics::STABLE_PCT,
        directions,
    })
}
