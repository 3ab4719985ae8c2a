//! What the dashboard and the analytics API compute from counts: the three
//! conversion rates, cost per event from ad spend, and which event a
//! direction's ads should optimise for now.

use serde::Serialize;

text_enum! {
    /// Where a spend row came from (`ad_spend.source`).
    pub enum SpendSource {
        Api = "api",
        Csv = "csv",
    }
}

text_enum! {
    /// A daily spend sync (`ad_spend_syncs.status`).
    pub enum SyncStatus {
        /// Not done yet: running under a lease, or waiting to retry.
        Pending = "pending",
        Done = "done",
        Failed = "failed",
    }
}

/// Events Meta accepted, per level.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LevelCounts {
    pub lead: i64,
    pub registration: i64,
    pub schedule: i64,
    pub purchase: i64,
}

impl LevelCounts {
    /// Counts `n` events of level number `level` (1..4; others are not ours).
    pub fn add_level(&mut self, level: i16, n: i64) {
        match crate::level::Level::from_number(level) {
            Some(crate::level::Level::Interest) => self.lead += n,
            Some(crate::level::Level::Qualified) => self.registration += n,
            Some(crate::level::Level::Scheduled) => self.schedule += n,
            Some(crate::level::Level::Purchase) => self.purchase += n,
            None => {}
        }
    }

    pub fn add(&mut self, o: &LevelCounts) {
        self.lead += o.lead;
        self.registration += o.registration;
        self.schedule += o.schedule;
        self.purchase += o.purchase;
    }

    pub fn get(&self, level: Level) -> i64 {
        match level {
            Level::Lead => self.lead,
            Level::Registration => self.registration,
            Level::Schedule => self.schedule,
        }
    }
}

/// An amount in minor units (cents) of one currency: ad spend, revenue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Money {
    pub cents: i64,
    pub currency: String,
}

/// Ad spend.
pub type Spend = Money;

/// Purchase values summed per currency (a business may sell in several):
/// never added across currencies.
pub fn add_revenue<'a>(into: &mut Vec<Money>, parts: impl IntoIterator<Item = &'a Money>) {
    for p in parts {
        match into.iter_mut().find(|m| m.currency == p.currency) {
            Some(m) => m.cents += p.cents,
            None => into.push(p.clone()),
        }
    }
    into.sort_by(|a, b| a.currency.cmp(&b.currency));
}

/// Revenue in one currency, and its return on the ad spend.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RevenueView {
    pub amount: f64,
    pub currency: String,
    /// Revenue ÷ spend, two decimals; only when the spend is in this
    /// currency (no conversion across currencies) and not zero.
    pub roas: Option<f64>,
}

/// Each currency's revenue with its ROAS against `spend`.
pub fn revenue_views(revenue: &[Money], spend: Option<&Spend>) -> Vec<RevenueView> {
    revenue
        .iter()
        .map(|r| RevenueView {
            amount: r.cents as f64 / 100.0,
            currency: r.currency.clone(),
            roas: spend
                .filter(|s| s.currency == r.currency && s.cents > 0)
                .map(|s| round2(r.cents as f64 / s.cents as f64)),
        })
        .collect()
}

/// Spend summed over ad accounts; `None` when there is none or currencies mix.
pub fn total_spend<'a>(parts: impl IntoIterator<Item = &'a Spend>) -> Option<Spend> {
    let mut total: Option<Spend> = None;
    for p in parts {
        match &mut total {
            None => total = Some(p.clone()),
            Some(t) if t.currency == p.currency => t.cents += p.cents,
            Some(_) => return None,
        }
    }
    total
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `part ÷ whole` in percent with one decimal; `None` when `whole` is 0.
pub fn percent(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| (part as f64 * 1000.0 / whole as f64).round() / 10.0)
}

/// Spend ÷ events, in currency units with two decimals; `None` without both.
pub fn cost_per(spend: Option<&Spend>, events: i64) -> Option<f64> {
    match spend {
        Some(s) if events > 0 => Some(round2(s.cents as f64 / 100.0 / events as f64)),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversions {
    /// CAPI Lead events ÷ leads (new dialogs), %.
    pub leads_to_lead_pct: Option<f64>,
    pub lead_to_registration_pct: Option<f64>,
    pub registration_to_schedule_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Costs {
    pub cost_per_lead: Option<f64>,
    pub cost_per_registration: Option<f64>,
    pub cost_per_schedule: Option<f64>,
    pub cost_per_purchase: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpendView {
    pub amount: f64,
    pub currency: String,
}

/// The nine cards' numbers (and the leads behind row 2).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Funnel {
    pub leads: i64,
    #[serde(flatten)]
    pub events: LevelCounts,
    pub conversions: Conversions,
    pub spend: Option<SpendView>,
    #[serde(flatten)]
    pub costs: Costs,
    /// Accepted purchases' values per currency, by currency code.
    pub revenue: Vec<RevenueView>,
}

pub fn funnel(leads: i64, events: LevelCounts, spend: Option<&Spend>, revenue: &[Money]) -> Funnel {
    Funnel {
        leads,
        events,
        conversions: Conversions {
            leads_to_lead_pct: percent(events.lead, leads),
            lead_to_registration_pct: percent(events.registration, events.lead),
            registration_to_schedule_pct: percent(events.schedule, events.registration),
        },
        spend: spend.map(|s| SpendView {
            amount: s.cents as f64 / 100.0,
            currency: s.currency.clone(),
        }),
        costs: Costs {
            cost_per_lead: cost_per(spend, events.lead),
            cost_per_registration: cost_per(spend, events.registration),
            cost_per_schedule: cost_per(spend, events.schedule),
            cost_per_purchase: cost_per(spend, events.purchase),
        },
        revenue: revenue_views(revenue, spend),
    }
}

/// The event a direction's ads optimise for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Lead,
    Registration,
    Schedule,
}

impl Level {
    pub fn label(self) -> &'static str {
        match self {
            Level::Lead => "Lead",
            Level::Registration => "CompleteRegistration",
            Level::Schedule => "Schedule",
        }
    }
}

/// Events of a level needed in the last 7 days before moving up to it.
pub const MIN_EVENTS: i64 = 50;
/// Cost per event is stable when the last 7 days' differs from the 7 days
/// before by at most this many percent.
pub const STABLE_PCT: f64 = 20.0;

/// One 7-day window of a direction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Window {
    pub events: LevelCounts,
    pub spend: Option<Spend>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LevelCheck {
    pub level: Level,
    pub events_last_7_days: i64,
    pub cost_last_7_days: Option<f64>,
    pub cost_previous_7_days: Option<f64>,
    /// Change of cost per event, %; `None` when either cost is unknown.
    pub cost_change_pct: Option<f64>,
    pub enough_events: bool,
    pub cost_stable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advice {
    pub optimise_for: Level,
    pub event: &'static str,
    pub reason: String,
    pub checks: Vec<LevelCheck>,
}

fn check(level: Level, last: &Window, previous: &Window) -> LevelCheck {
    let n = last.events.get(level);
    let cost_last = cost_per(last.spend.as_ref(), n);
    let cost_previous = cost_per(previous.spend.as_ref(), previous.events.get(level));
    let change = match (cost_last, cost_previous) {
        (Some(a), Some(b)) if b > 0.0 => Some(((a - b) / b * 1000.0).round() / 10.0),
        _ => None,
    };
    LevelCheck {
        level,
        events_last_7_days: n,
        cost_last_7_days: cost_last,
        cost_previous_7_days: cost_previous,
        cost_change_pct: change,
        enough_events: n >= MIN_EVENTS,
        cost_stable: change.is_some_and(|c| c.abs() <= STABLE_PCT),
    }
}

/// The spec's strategy: optimise for Lead first; move up to the next level
/// once it had 50+ events in the last 7 days at a stable cost per event
/// (within ±20 % of the 7 days before). Without spend the cost cannot be
/// judged, so the advice does not move up.
pub fn advise(last: &Window, previous: &Window) -> Advice {
    let checks: Vec<LevelCheck> = [Level::Lead, Level::Registration, Level::Schedule]
        .into_iter()
        .map(|l| check(l, last, previous))
        .collect();
    let mut current = Level::Lead;
    let mut reason = if checks[0].enough_events {
        format!(
            "{} Lead events in the last 7 days: enough for Meta's learning phase",
            checks[0].events_last_7_days
        )
    } else {
        format!(
            "only {} Lead events in the last 7 days (Meta's learning phase wants {MIN_EVENTS}+ a week): stay on Lead",
            checks[0].events_last_7_days
        )
    };
    for c in &checks[1..] {
        if c.enough_events && c.cost_stable {
            current = c.level;
            reason = format!(
                "{} {} events in the last 7 days at a stable cost ({:+.1} % against the week before)",
                c.events_last_7_days,
                c.level.label(),
                c.cost_change_pct.unwrap_or_default()
            );
            continue;
        }
        let why = if !c.enough_events {
            format!(
                "{} has {} of {MIN_EVENTS} events in the last 7 days",
                c.level.label(),
                c.events_last_7_days
            )
        } else if c.cost_change_pct.is_none() {
            format!(
                "{} has enough events but its cost cannot be judged (no spend for both weeks: sync or import spend)",
                c.level.label()
            )
        } else {
            format!(
                "{}'s cost per event moved {:+.1} % (stable is within ±{STABLE_PCT} %)",
                c.level.label(),
                c.cost_change_pct.unwrap_or_default()
            )
        };
        reason = format!("{reason}; not yet {}: {why}", c.level.label());
        break;
    }
    Advice {
        optimise_for: current,
        event: current.label(),
        reason,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(lead: i64, registration: i64, schedule: i64, cents: Option<i64>) -> Window {
        Window {
            events: LevelCounts {
                lead,
                registration,
                schedule,
                purchase: 0,
            },
            spend: cents.map(|cents| Spend {
                cents,
                currency: "USD".into(),
            }),
        }
    }

    #[test]
    fn funnel_rates_and_costs() {
        let spend = Spend {
            cents: 100_000,
            currency: "USD".into(),
        };
        let f = funnel(
            200,
            LevelCounts {
                lead: 80,
                registration: 20,
                schedule: 0,
                purchase: 4,
            },
            Some(&spend),
            &[
                Money {
                    cents: 150_050,
                    currency: "EUR".into(),
                },
                Money {
                    cents: 250_000,
                    currency: "USD".into(),
                },
            ],
        );
        assert_eq!(f.conversions.leads_to_lead_pct, Some(40.0));
        assert_eq!(f.conversions.lead_to_registration_pct, Some(25.0));
        assert_eq!(f.conversions.registration_to_schedule_pct, Some(0.0));
        assert_eq!(f.costs.cost_per_lead, Some(12.5));
        assert_eq!(f.costs.cost_per_registration, Some(50.0));
        assert_eq!(f.costs.cost_per_schedule, None);
        assert_eq!(f.costs.cost_per_purchase, Some(250.0));
        assert_eq!(
            f.revenue,
            [
                RevenueView {
                    amount: 1500.5,
                    currency: "EUR".into(),
                    roas: None
                },
                RevenueView {
                    amount: 2500.0,
                    currency: "USD".into(),
                    roas: Some(2.5)
                },
            ],
            "ROAS only in the spend's currency"
        );
    }

    #[test]
    fn revenue_adds_up_per_currency_only() {
        let m = |cents, currency: &str| Money {
            cents,
            currency: currency.into(),
        };
        let mut total = Vec::new();
        add_revenue(&mut total, &[m(100, "RUB"), m(50, "USD")]);
        add_revenue(&mut total, &[m(250, "USD")]);
        assert_eq!(total, [m(100, "RUB"), m(300, "USD")]);
        let mut counts = LevelCounts::default();
        for level in [1, 2, 3, 4, 4, 5, 0] {
            counts.add_level(level, 1);
        }
        assert_eq!(
            (
                counts.lead,
                counts.registration,
                counts.schedule,
                counts.purchase
            ),
            (1, 1, 1, 2),
            "unknown levels are not counted as bookings"
        );
    }

    #[test]
    fn moves_up_only_with_enough_events_at_a_stable_cost() {
        // 60 registrations at $10 (was $9.5: +5.3 %): move to Registration;
        // schedules too few.
        let a = advise(
            &window(200, 60, 10, Some(60_000)),
            &window(190, 60, 8, Some(57_000)),
        );
        assert_eq!(a.optimise_for, Level::Registration);
        assert!(a.reason.contains("Schedule has 10 of 50"), "{}", a.reason);
        // The same counts with a cost jump of +50 %: stay on Lead.
        let b = advise(
            &window(200, 60, 10, Some(90_000)),
            &window(190, 60, 8, Some(60_000)),
        );
        assert_eq!(b.optimise_for, Level::Lead);
        assert!(b.reason.contains("+50.0 %"), "{}", b.reason);
        // No spend: cannot judge, stay.
        let c = advise(&window(200, 60, 60, None), &window(190, 60, 60, None));
        assert_eq!(c.optimise_for, Level::Lead);
        // Everything enough and stable: Schedule.
        let d = advise(
            &window(500, 120, 55, Some(100_000)),
            &window(480, 110, 50, Some(95_000)),
        );
        assert_eq!(d.optimise_for, Level::Schedule);
        assert_eq!(d.event, "Schedule");
    }
}
