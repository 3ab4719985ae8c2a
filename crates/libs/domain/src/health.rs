//! Is the conversion signal reaching Meta? Each direction's CAPI status
//! from what the audit log holds: `capi doctor` and the dashboard's health
//! section both judge with [`assess`], so they never disagree.

use crate::meta_errors::Refusal;
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the database knows of one direction's sending.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    pub capi_enabled: bool,
    pub test_event_code: Option<String>,
    pub last_accepted_at: Option<DateTime<Utc>>,
    /// The newest accepted event that carried the test event code.
    pub last_test_accepted_at: Option<DateTime<Utc>>,
    /// The 90th percentile of the gaps between accepted events over the
    /// last 14 days, in seconds (`None` with fewer than three events).
    pub usual_gap_secs: Option<i64>,
    pub accepted_24h: i64,
    pub refused_24h: i64,
    /// Skipped attempts of the last 24 h by reason (`too_old`, `no_dialog`, …).
    pub skipped_24h: BTreeMap<String, i64>,
    pub last_refusal: Option<LastRefusal>,
    /// Events not sent yet (deliveries pending or failed, to be retried).
    pub waiting: i64,
    /// Ad dialogs of the last 7 days, and those that carried no click id.
    pub ad_dialogs_7d: i64,
    pub without_click_id_7d: i64,
}

/// Meta's newest refusal for the direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastRefusal {
    pub at: DateTime<Utc>,
    pub message: String,
    pub code: Option<i64>,
}

/// A direction's CAPI status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Meta accepted events in the last 24 h, no longer ago than usual.
    Active,
    /// The test event code is set: events go to Events Manager's test tab.
    Test,
    /// Meta refuses its events (newer than its last accepted one).
    Failing,
    /// No accepted event for longer than the direction's usual gap (or 24 h).
    Silent,
    /// CAPI is off.
    Off,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Test => "test",
            Status::Failing => "failing",
            Status::Silent => "silent",
            Status::Off => "off",
        }
    }
}

/// The verdict on one direction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub status: Status,
    /// For `test`: Meta accepted a test event.
    pub verified: bool,
    /// Why, for people.
    pub summary: String,
    /// Set when Meta refused the token or the dataset: what to do.
    pub banner: Option<Banner>,
    /// Share of the last 7 days' ad dialogs without a click id, %.
    pub without_click_id_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Banner {
    pub refusal: Refusal,
    pub message: String,
    pub what_to_do: &'static str,
}

/// Without a usual gap (few events), silence is a day without one.
const DEFAULT_SILENCE: Duration = Duration::hours(24);
/// The usual gap is stretched this much before a gap counts as silence.
const GAP_FACTOR: i64 = 3;
/// … and silence is never declared sooner than this.
const MIN_SILENCE: Duration = Duration::hours(1);

/// How long without an accepted event counts as silence for these facts.
pub fn silence_after(f: &Facts) -> Duration {
    f.usual_gap_secs
        .map(|g| (Duration::seconds(g.max(0)) * GAP_FACTOR as i32).max(MIN_SILENCE))
        .map_or(DEFAULT_SILENCE, |d| d.min(DEFAULT_SILENCE))
}

pub fn assess(f: &Facts, now: DateTime<Utc>) -> Health {
    let refused_since_accepted = f
        .last_refusal
        .as_ref()
        .filter(|r| f.last_accepted_at.is_none_or(|a| r.at > a))
        .filter(|_| f.refused_24h > 0);
    let banner = refused_since_accepted.and_then(|r| {
        Refusal::of_code(r.code).map(|refusal| Banner {
            refusal,
            message: r.message.clone(),
            what_to_do: refusal.what_to_do(),
        })
    });
    let without_click_id_pct = crate::analytics::percent(f.without_click_id_7d, f.ad_dialogs_7d);
    let ago = |t: DateTime<Utc>| {
        let m = (now - t).num_minutes().max(0);
        if m < 120 {
            format!("{m} min ago")
        } else if m < 48 * 60 {
            format!("{} h ago", m / 60)
        } else {
            format!("{} days ago", m / 1440)
        }
    };
    let (status, verified, summary) = if !f.capi_enabled {
        (
            Status::Off,
            false,
            "CAPI is off for this direction".to_owned(),
        )
    } else if let Some(r) = refused_since_accepted {
        (
            Status::Failing,
            false,
            format!(
                "Meta refuses its events ({} refused in 24 h, {} waiting): {}",
                f.refused_24h, f.waiting, r.message
            ),
        )
    } else if f.test_event_code.is_some() {
        let verified = f.last_test_accepted_at.is_some();
        let summary = match f.last_test_accepted_at {
            Some(t) => format!(
                "test mode: Meta accepted a test event {} (Events Manager → Test events); remove the test code to go live",
                ago(t)
            ),
            None => "test mode: no test event accepted yet".to_owned(),
        };
        (Status::Test, verified, summary)
    } else {
        match f.last_accepted_at {
            None => (
                Status::Silent,
                false,
                "Meta has accepted no event yet".to_owned(),
            ),
            Some(t) if now - t > silence_after(f) => (
                Status::Silent,
                false,
                format!(
                    "last accepted event {}: a longer silence than usual",
                    ago(t)
                ),
            ),
            Some(t) => (
                Status::Active,
                false,
                format!("{} accepted in 24 h, last {}", f.accepted_24h, ago(t)),
            ),
        }
    };
    Health {
        status,
        verified,
        summary,
        banner,
        without_click_id_pct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_780_000_000, 0).unwrap_or_default()
    }

    fn on() -> Facts {
        Facts {
            capi_enabled: true,
            ..Facts::default()
        }
    }

    #[test]
    fn each_status_from_its_facts() {
        let t = |mins: i64| Some(now() - Duration::minutes(mins));
        assert_eq!(assess(&Facts::default(), now()).status, Status::Off);
        assert_eq!(assess(&on(), now()).status, Status::Silent);
        let active = Facts {
            last_accepted_at: t(30),
            accepted_24h: 12,
            usual_gap_secs: Some(600),
            ..on()
        };
        assert_eq!(assess(&active, now()).status, Status::Active);
        // A busy direction (a 10-minute gap) quiet for 2 hours is silent;
        // one that sends twice a day is not, until a day has passed.
        let quiet = Facts {
            last_accepted_at: t(120),
            ..active.clone()
        };
        assert_eq!(assess(&quiet, now()).status, Status::Silent);
        let sparse = Facts {
            usual_gap_secs: Some(12 * 3600),
            last_accepted_at: t(20 * 60),
            ..on()
        };
        assert_eq!(assess(&sparse, now()).status, Status::Active);
        let old = Facts {
            last_accepted_at: t(25 * 60),
            ..sparse
        };
        assert_eq!(assess(&old, now()).status, Status::Silent);

        let test = Facts {
            test_event_code: Some("TEST1".into()),
            ..on()
        };
        assert_eq!(
            (assess(&test, now()).status, assess(&test, now()).verified),
            (Status::Test, false)
        );
        let verified = Facts {
            last_test_accepted_at: t(5),
            last_accepted_at: t(5),
            ..test
        };
        assert_eq!(
            (
                assess(&verified, now()).status,
                assess(&verified, now()).verified
            ),
            (Status::Test, true)
        );
    }

    #[test]
    fn a_refusal_newer_than_the_last_acceptance_fails_and_a_token_one_raises_the_banner() {
        let refused = |code| Facts {
            last_accepted_at: Some(now() - Duration::hours(3)),
            refused_24h: 4,
            waiting: 4,
            last_refusal: Some(LastRefusal {
                at: now() - Duration::minutes(2),
                message: "Error validating access token: Session has expired".into(),
                code,
            }),
            ..on()
        };
        let h = assess(&refused(Some(190)), now());
        assert_eq!(h.status, Status::Failing);
        assert!(h.summary.contains("4 waiting"), "{}", h.summary);
        assert_eq!(h.banner.as_ref().map(|b| b.refusal), Some(Refusal::Token));
        let h = assess(&refused(Some(200)), now());
        assert_eq!(h.banner.map(|b| b.refusal), Some(Refusal::Dataset));
        // A malformed event (2804xxx-style, code 100 is a dataset's; 1 is transient) is failing without a banner.
        assert_eq!(assess(&refused(Some(1)), now()).banner, None);
        // Accepted again since: no longer failing.
        let recovered = Facts {
            last_accepted_at: Some(now() - Duration::minutes(1)),
            accepted_24h: 1,
            ..refused(Some(190))
        };
        let h = assess(&recovered, now());
        assert_eq!((h.status, h.banner), (Status::Active, None));
    }

    #[test]
    fn the_share_of_ad_dialogs_without_a_click_id() {
        let f = Facts {
            ad_dialogs_7d: 8,
            without_click_id_7d: 2,
            ..on()
        };
        assert_eq!(assess(&f, now()).without_click_id_pct, Some(25.0));
        assert_eq!(assess(&on(), now()).without_click_id_pct, None);
    }
}
