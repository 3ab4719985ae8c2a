//! The numbers behind `/analytics/capi-stats`, `/analytics/optimisation`
//! and the dashboard, computed one way for both.
//!
//! - events: successes in the audit log (`capi_events_log`), per local day
//!   of the account, direction and level;
//! - leads: new dialogs (first message in the range) of the account's
//!   directions; the account's row 2 uses the directions with CAPI on;
//! - spend: the account's ad accounts' spend over the range (all of them,
//!   as the spec's `totalSpend`); a direction's, the spend of the ads its
//!   dialogs came from (an ad whose dialogs went to several directions
//!   split by their dialogs; `spend_basis: ads`), else — no dialog of it
//!   came from an ad insights knows — its ad account's whole spend
//!   (`spend_basis: ad_account`, `spend_shared` when other directions use
//!   the same ad account);
//! - revenue: the values of the purchases Meta accepted, per currency, and
//!   ROAS (revenue ÷ spend) only where the spend is in the same currency.

use chrono::NaiveDate;
use domain::analytics::{self, Advice, Funnel, LevelCounts, Money, Spend, Window};
use domain::ids::{DirectionId, UserAccountId};
use serde::Serialize;
use std::collections::BTreeMap;
use storage::{AsyncPgConnection, DbError, analytics as db};
use uuid::Uuid;

/// Where a direction's spend comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendBasis {
    /// The spend of the ads its dialogs came from.
    Ads,
    /// Its ad account's whole spend (no dialog came from a known ad).
    AdAccount,
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectionStats {
    pub direction_id: DirectionId,
    pub name: String,
    pub capi_enabled: bool,
    pub spend_shared: bool,
    /// `None` when the direction has no spend at all.
    pub spend_basis: Option<SpendBasis>,
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
    let by_ads = spend_by_ads(conn, account, since, until, timezone).await?;
    let rows: Vec<DirectionStats> = directions
        .iter()
        .map(|d| {
            let from_ads = by_ads.get(&d.id).and_then(analytics::total_spend);
            let (ad_spend, basis) = match from_ads {
                Some(s) => (Some(s), Some(SpendBasis::Ads)),
                None => {
                    let whole = d.ad_account_id.and_then(|a| spend.get(&a)).cloned();
                    let basis = whole.as_ref().map(|_| SpendBasis::AdAccount);
                    (whole, basis)
                }
            };
            DirectionStats {
                direction_id: d.id,
                name: d.name.clone(),
                capi_enabled: d.capi_enabled,
                spend_shared: basis == Some(SpendBasis::AdAccount)
                    && d.ad_account_id.is_some_and(|a| {
                        directions
                            .iter()
                            .filter(|o| o.ad_account_id == Some(a))
                            .count()
                            > 1
                    }),
                spend_basis: basis,
                funnel: analytics::funnel(
                    leads.get(&d.id).copied().unwrap_or(0),
                    per_direction.get(&Some(d.id)).copied().unwrap_or_default(),
                    ad_spend.as_ref(),
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

/// Each direction's share of the spend of the ads its new dialogs came
/// from: an ad's spend split between directions by their dialogs from it
/// (in cents, the remainder to the direction with most). Only ads that
/// insights broke down and that brought a dialog count.
async fn spend_by_ads(
    conn: &mut AsyncPgConnection,
    account: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
) -> Result<BTreeMap<DirectionId, Vec<Money>>, DbError> {
    let mut dialogs: BTreeMap<String, Vec<(DirectionId, i64)>> = BTreeMap::new();
    for d in storage::ads::dialogs_by_ad(conn, account, since, until, timezone).await? {
        if let Some(ad) = d.ad_id {
            dialogs.entry(ad).or_default().push((d.direction_id, d.n));
        }
    }
    let mut out: BTreeMap<DirectionId, Vec<Money>> = BTreeMap::new();
    for s in storage::ads::spend_by_ad(conn, account, since, until).await? {
        let Some(split) = dialogs.get_mut(&s.place.ad_id) else {
            continue;
        };
        split.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let all: i128 = split.iter().map(|(_, n)| i128::from(*n)).sum();
        let shares: Vec<i64> = split
            .iter()
            .map(|(_, n)| {
                i64::try_from(i128::from(s.cents) * i128::from(*n) / all.max(1)).unwrap_or(0)
            })
            .collect();
        let remainder = s.cents - shares.iter().sum::<i64>();
        for (i, ((direction, _), share)) in split.iter().zip(shares).enumerate() {
            let money = Money {
                cents: share + if i == 0 { remainder } else { 0 },
                currency: s.currency.clone(),
            };
            analytics::add_revenue(out.entry(*direction).or_default(), [&money]);
        }
    }
    Ok(out)
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
