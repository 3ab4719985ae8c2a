//! Results per campaign, ad set or ad (`/analytics/ads` and the
//! dashboard's table): each row's new dialogs, accepted events per level,
//! purchases and revenue, spend, cost per level, conversion between levels
//! and ROAS. Two more rows keep the totals equal to the summary's cards:
//! "no ad id" (dialogs that carried none, events without a dialog, spend
//! insights did not break down to the level) and "ad not in insights"
//! (dialogs whose ad the synced insights never named).

use chrono::NaiveDate;
use domain::analytics::{self, Funnel, LevelCounts, Money};
use domain::ids::UserAccountId;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use storage::{AsyncPgConnection, DbError, ads as db, analytics as summary};

/// How far down the rows go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Campaign,
    Adset,
    Ad,
}

impl Group {
    pub const NAMES: &'static str = "campaign, adset or ad";

    pub fn parse(s: &str) -> Option<Group> {
        match s {
            "campaign" => Some(Group::Campaign),
            "adset" => Some(Group::Adset),
            "ad" => Some(Group::Ad),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Campaign => "campaign",
            Group::Adset => "adset",
            Group::Ad => "ad",
        }
    }
}

/// How the table is cut and sorted: `group`, `sort`, `order`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    pub group: Group,
    pub sort: Sort,
    pub descending: bool,
}

impl Default for View {
    /// Per campaign, by spend, largest first.
    fn default() -> View {
        View {
            group: Group::Campaign,
            sort: Sort::Spend,
            descending: true,
        }
    }
}

/// What a row stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// A campaign, ad set or ad that insights named.
    Insights,
    /// Dialogs without an ad id, events without a dialog, spend not broken down.
    NoAdId,
    /// Dialogs whose ad id the synced insights never named.
    NotInInsights,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdRow {
    pub kind: RowKind,
    /// The campaign's, ad set's or ad's id (`None` for the two other kinds).
    pub id: Option<String>,
    pub name: Option<String>,
    /// For ad set and ad rows, where they sit.
    pub campaign_name: Option<String>,
    pub adset_name: Option<String>,
    /// `leads` is the row's new dialogs.
    #[serde(flatten)]
    pub funnel: Funnel,
}

impl AdRow {
    /// ROAS in the spend's currency, when there is one.
    pub fn roas(&self) -> Option<f64> {
        self.funnel.revenue.iter().find_map(|r| r.roas)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AdsTable {
    pub user_account_id: UserAccountId,
    pub since: NaiveDate,
    pub until: NaiveDate,
    pub timezone: String,
    pub group: Group,
    /// The rows' sums: equal to `/analytics/capi-stats`' totals.
    pub totals: Funnel,
    pub rows: Vec<AdRow>,
}

/// A row's key while the table is built.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Key {
    Insights(String),
    NoAdId,
    NotInInsights,
}

#[derive(Default)]
struct Sums {
    name: Option<String>,
    campaign_name: Option<String>,
    adset_name: Option<String>,
    dialogs: i64,
    events: LevelCounts,
    spend: Vec<Money>,
    revenue: Vec<Money>,
}

/// Where an ad sits: its ids and names at each level.
struct Place {
    campaign: (String, Option<String>),
    adset: (String, Option<String>),
    ad: (String, Option<String>),
}

impl From<&db::AdPlace> for Place {
    fn from(p: &db::AdPlace) -> Place {
        Place {
            campaign: (p.campaign_id.clone(), p.campaign_name.clone()),
            adset: (p.adset_id.clone(), p.adset_name.clone()),
            ad: (p.ad_id.clone(), p.ad_name.clone()),
        }
    }
}

impl Place {
    fn at(&self, group: Group) -> &(String, Option<String>) {
        match group {
            Group::Campaign => &self.campaign,
            Group::Adset => &self.adset,
            Group::Ad => &self.ad,
        }
    }
}

pub async fn table(
    conn: &mut AsyncPgConnection,
    account: UserAccountId,
    timezone: &str,
    since: NaiveDate,
    until: NaiveDate,
    view: View,
) -> Result<AdsTable, DbError> {
    let group = view.group;
    let capi_on: BTreeSet<_> = summary::directions(conn, account)
        .await?
        .into_iter()
        .filter(|d| d.capi_enabled)
        .map(|d| d.id)
        .collect();
    let dialogs = db::dialogs_by_ad(conn, account, since, until, timezone).await?;
    let events = db::events_by_ad(conn, account, since, until, timezone).await?;
    let revenue = db::revenue_by_ad(conn, account, since, until, timezone).await?;
    let spend = db::spend_by_ad(conn, account, since, until).await?;

    let mut places: HashMap<String, Place> = HashMap::new();
    for s in spend.iter().filter(|s| !s.place.ad_id.is_empty()) {
        places
            .entry(s.place.ad_id.clone())
            .or_insert_with(|| Place::from(&s.place));
    }
    let unplaced: Vec<String> = dialogs
        .iter()
        .filter_map(|d| d.ad_id.as_ref())
        .chain(events.iter().filter_map(|e| e.ad_id.as_ref()))
        .chain(revenue.iter().filter_map(|(ad, _)| ad.as_ref()))
        .filter(|ad| !places.contains_key(*ad))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for p in db::ad_places(conn, account, &unplaced).await? {
        places.insert(p.ad_id.clone(), Place::from(&p));
    }

    let mut rows: BTreeMap<Key, Sums> = BTreeMap::new();
    for d in dialogs.iter().filter(|d| capi_on.contains(&d.direction_id)) {
        row_of_ad(&mut rows, &places, group, d.ad_id.as_ref()).dialogs += d.n;
    }
    for e in &events {
        row_of_ad(&mut rows, &places, group, e.ad_id.as_ref())
            .events
            .add_level(e.event_level, e.n);
    }
    for (ad, money) in &revenue {
        let sums = row_of_ad(&mut rows, &places, group, ad.as_ref());
        analytics::add_revenue(&mut sums.revenue, [money]);
    }
    for s in &spend {
        let place = Place::from(&s.place);
        let id = &place.at(group).0;
        let sums = rows
            .entry(if id.is_empty() {
                Key::NoAdId
            } else {
                Key::Insights(id.clone())
            })
            .or_default();
        if !id.is_empty() {
            name_row(sums, &place, group);
        }
        let money = Money {
            cents: s.cents,
            currency: s.currency.clone(),
        };
        analytics::add_revenue(&mut sums.spend, [&money]);
    }

    let mut total = Sums::default();
    let rows: Vec<AdRow> = rows
        .into_iter()
        .map(|(key, s)| {
            total.dialogs += s.dialogs;
            total.events.add(&s.events);
            analytics::add_revenue(&mut total.spend, &s.spend);
            analytics::add_revenue(&mut total.revenue, &s.revenue);
            let (kind, id) = match key {
                Key::Insights(id) => (RowKind::Insights, Some(id)),
                Key::NoAdId => (RowKind::NoAdId, None),
                Key::NotInInsights => (RowKind::NotInInsights, None),
            };
            AdRow {
                kind,
                id,
                name: s.name,
                campaign_name: s.campaign_name,
                adset_name: s.adset_name,
                funnel: funnel_of(s.dialogs, s.events, &s.spend, &s.revenue),
            }
        })
        .collect();
    let mut rows = rows;
    sort(&mut rows, view.sort, view.descending);
    Ok(AdsTable {
        user_account_id: account,
        since,
        until,
        timezone: timezone.to_owned(),
        group,
        totals: funnel_of(total.dialogs, total.events, &total.spend, &total.revenue),
        rows,
    })
}

/// The row a dialog's (or event's) ad id counts in.
fn row_of_ad<'a>(
    rows: &'a mut BTreeMap<Key, Sums>,
    places: &HashMap<String, Place>,
    group: Group,
    ad: Option<&String>,
) -> &'a mut Sums {
    let place = ad.and_then(|ad| places.get(ad));
    let key = match (ad, place) {
        (None, _) => Key::NoAdId,
        (Some(_), None) => Key::NotInInsights,
        (Some(_), Some(place)) if place.at(group).0.is_empty() => Key::NoAdId,
        (Some(_), Some(place)) => Key::Insights(place.at(group).0.clone()),
    };
    let sums = rows.entry(key).or_default();
    if let Some(place) = place {
        name_row(sums, place, group);
    }
    sums
}

fn name_row(sums: &mut Sums, place: &Place, group: Group) {
    let keep = |slot: &mut Option<String>, name: &Option<String>| {
        if slot.is_none() {
            slot.clone_from(name);
        }
    };
    keep(&mut sums.name, &place.at(group).1);
    if group != Group::Campaign {
        keep(&mut sums.campaign_name, &place.campaign.1);
    }
    if group == Group::Ad {
        keep(&mut sums.adset_name, &place.adset.1);
    }
}

/// The funnel of a row; spend in several currencies has no single figure.
fn funnel_of(dialogs: i64, events: LevelCounts, spend: &[Money], revenue: &[Money]) -> Funnel {
    let spend = analytics::total_spend(spend);
    analytics::funnel(dialogs, events, spend.as_ref(), revenue)
}

/// What the table can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Name,
    Dialogs,
    Lead,
    Registration,
    Schedule,
    Purchase,
    Spend,
    CostPerLead,
    CostPerRegistration,
    CostPerSchedule,
    Roas,
}

impl Sort {
    pub const ALL: [(&'static str, Sort); 11] = [
        ("name", Sort::Name),
        ("dialogs", Sort::Dialogs),
        ("lead", Sort::Lead),
        ("registration", Sort::Registration),
        ("schedule", Sort::Schedule),
        ("purchase", Sort::Purchase),
        ("spend", Sort::Spend),
        ("cost_per_lead", Sort::CostPerLead),
        ("cost_per_registration", Sort::CostPerRegistration),
        ("cost_per_schedule", Sort::CostPerSchedule),
        ("roas", Sort::Roas),
    ];

    pub fn parse(s: &str) -> Option<Sort> {
        Sort::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }

    pub fn as_str(self) -> &'static str {
        Sort::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("spend", |(n, _)| n)
    }
}

/// Sorts the rows of campaigns, ad sets or ads by `by` (descending unless
/// `descending` is false; a missing figure last either way), the rows
/// without an ad id and not in insights after them.
pub fn sort(rows: &mut [AdRow], by: Sort, descending: bool) {
    let figure = |r: &AdRow| -> Option<f64> {
        let f = &r.funnel;
        match by {
            Sort::Name => None,
            Sort::Dialogs => Some(f.leads as f64),
            Sort::Lead => Some(f.events.lead as f64),
            Sort::Registration => Some(f.events.registration as f64),
            Sort::Schedule => Some(f.events.schedule as f64),
            Sort::Purchase => Some(f.events.purchase as f64),
            Sort::Spend => f.spend.as_ref().map(|s| s.amount),
            Sort::CostPerLead => f.costs.cost_per_lead,
            Sort::CostPerRegistration => f.costs.cost_per_registration,
            Sort::CostPerSchedule => f.costs.cost_per_schedule,
            Sort::Roas => r.roas(),
        }
    };
    rows.sort_by(|a, b| {
        let order = match by {
            Sort::Name => a.name.cmp(&b.name),
            _ => match (figure(a), figure(b)) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Greater,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (None, None) => std::cmp::Ordering::Equal,
            },
        };
        let missing_last = |r: &AdRow| by != Sort::Name && figure(r).is_none();
        a.kind
            .cmp(&b.kind)
            .then(missing_last(a).cmp(&missing_last(b)))
            .then(if descending { order.reverse() } else { order })
            .then(a.id.cmp(&b.id))
    });
}
