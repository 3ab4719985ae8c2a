//! The rules: which dialogs get events at all, and when a dialog is worth a
//! model call. Pure functions of what the database says, unit-tested.

use chrono::{DateTime, Utc};
use domain::level::{CapiSource, Level};
use domain::qualification::DialogForQualification;
use serde::Deserialize;
use std::time::Duration;

/// Why a dialog gets no event (logged, so an operator can see it).
pub fn not_eligible(d: &DialogForQualification) -> Option<&'static str> {
    if d.direction_id.is_none() {
        return Some("dialog has no direction (instance not mapped)");
    }
    if d.capi_enabled != Some(true) {
        return Some("CAPI is disabled for the direction");
    }
    if d.capi_source != Some(CapiSource::Whatsapp) {
        return Some("the direction's CAPI source is not whatsapp");
    }
    if d.pixel_id.as_deref().is_none_or(|p| p.trim().is_empty()) {
        return Some("the direction has no pixel");
    }
    None
}

/// When to ask the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Once the customer has gone quiet after a burst, only when something
    /// new can be learnt (the default).
    Economy,
    /// One analysis per customer message, every time (the spec's naive way;
    /// kept as the benchmark's baseline).
    PerMessage,
}

#[derive(Debug, Clone, Copy)]
pub struct Rules {
    pub policy: Policy,
    /// After a burst, wait this long for more before analysing (0: at once).
    pub quiet_period: Duration,
    /// Analyse anyway once the oldest unread customer message is this old.
    pub max_wait: Duration,
}

/// What to do about the model for one `dialog.ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No call; the reason is logged.
    Skip(&'static str),
    /// Come back after this long (a newer burst may still come).
    Defer(Duration),
    /// Analyse the conversation up to this customer message.
    Analyze(i64),
    /// Analyse after each customer message since the last analysis.
    AnalyzeEach,
}

impl Rules {
    /// `seq` is the burst this `dialog.ready` was sent for; `attempt` 1 is
    /// its first delivery.
    pub fn plan(
        &self,
        d: &DialogForQualification,
        seq: i64,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Plan {
        let Some(last) = d.last_customer_message_id else {
            return Plan::Skip("no customer message");
        };
        let read = d.analyzed_message_id.unwrap_or(0);
        if self.policy == Policy::PerMessage {
            return if last > read {
                Plan::AnalyzeEach
            } else {
                Plan::Skip("no new customer message since the last analysis")
            };
        }
        if !domain::level::reaches_interest(d.customer_messages) {
            return Plan::Skip("no analysis before the customer's second message");
        }
        let claimed = |l: Level| d.claimed_levels.contains(&l);
        if claimed(Level::Qualified) && claimed(Level::Scheduled) {
            return Plan::Skip("levels 2 and 3 already claimed");
        }
        if last <= read {
            return Plan::Skip("no new customer message since the last analysis");
        }
        // Against the newest burst *received*, not the newest flushed: a
        // burst still in the buffer gets its own `dialog.ready` when it is
        // flushed (queued with its message), which reads both, so the two
        // bursts cost one call. `max_wait` still holds: it is checked on the
        // first delivery of each flushed `dialog.ready`.
        if seq < d.buffer_seq {
            return Plan::Skip("a newer burst will be analysed");
        }
        let waited = d
            .first_unanalyzed_at
            .and_then(|t| (now - t).to_std().ok())
            .unwrap_or_default();
        if attempt <= 1 && !self.quiet_period.is_zero() && waited < self.max_wait {
            return Plan::Defer(self.quiet_period);
        }
        Plan::Analyze(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn dialog() -> DialogForQualification {
        DialogForQualification {
            dialog_id: domain::ids::DialogId::from(uuid::Uuid::nil()),
            direction_id: Some(domain::ids::DirectionId::from(Uuid::nil())),
            direction_name: Some("Clinic".into()),
            capi_enabled: Some(true),
            capi_source: Some(CapiSource::Whatsapp),
            pixel_id: Some("1".into()),
            qualification_prompt: None,
            customer_messages: 3,
            second_customer_message_at: None,
            last_customer_message_id: Some(30),
            last_customer_message_at: None,
            first_unanalyzed_at: Some(Utc::now()),
            analyzed_message_id: Some(10),
            buffer_seq: 5,
            claimed_levels: vec![Level::Interest],
        }
    }

    fn economy() -> Rules {
        Rules {
            policy: Policy::Economy,
            quiet_period: Duration::from_secs(60),
            max_wait: Duration::from_secs(600),
        }
    }

    #[test]
    fn a_fresh_burst_waits_for_quiet_then_the_newest_burst_is_analysed() {
        let (d, now) = (dialog(), Utc::now());
        assert_eq!(
            economy().plan(&d, 5, 1, now),
            Plan::Defer(Duration::from_secs(60))
        );
        assert_eq!(economy().plan(&d, 5, 2, now), Plan::Analyze(30));
        assert_eq!(
            economy().plan(&d, 4, 2, now),
            Plan::Skip("a newer burst will be analysed")
        );
    }

    #[test]
    fn two_bursts_across_the_quiet_period_are_analysed_once() {
        let now = Utc::now();
        // Burst 5 flushed; its dialog.ready waits out the quiet period.
        let mut d = dialog();
        assert_eq!(
            economy().plan(&d, 5, 1, now),
            Plan::Defer(Duration::from_secs(60))
        );
        // Meanwhile the customer writes burst 6, not yet flushed: burst 5's
        // second look leaves it to burst 6's dialog.ready…
        d.buffer_seq = 6;
        assert_eq!(
            economy().plan(&d, 5, 2, now),
            Plan::Skip("a newer burst will be analysed")
        );
        // …which, once 6 is flushed and the customer quiet, reads both.
        d.last_customer_message_id = Some(31);
        assert_eq!(
            economy().plan(&d, 6, 1, now),
            Plan::Defer(Duration::from_secs(60))
        );
        assert_eq!(economy().plan(&d, 6, 2, now), Plan::Analyze(31));
    }

    #[test]
    fn a_long_conversation_is_analysed_at_least_every_max_wait() {
        let mut d = dialog();
        d.first_unanalyzed_at = Some(Utc::now() - chrono::Duration::minutes(11));
        assert_eq!(economy().plan(&d, 5, 1, Utc::now()), Plan::Analyze(30));
    }

    #[test]
    fn nothing_new_both_levels_claimed_or_one_message_means_no_call() {
        let now = Utc::now();
        let mut d = dialog();
        d.analyzed_message_id = Some(30);
        assert_eq!(
            economy().plan(&d, 5, 2, now),
            Plan::Skip("no new customer message since the last analysis")
        );
        let mut d = dialog();
        d.claimed_levels = Level::ALL.to_vec();
        assert_eq!(
            economy().plan(&d, 5, 2, now),
            Plan::Skip("levels 2 and 3 already claimed")
        );
        let mut d = dialog();
        d.customer_messages = 1;
        assert_eq!(
            economy().plan(&d, 5, 2, now),
            Plan::Skip("no analysis before the customer's second message")
        );
    }

    #[test]
    fn the_per_message_policy_analyses_every_new_customer_message() {
        let rules = Rules {
            policy: Policy::PerMessage,
            ..economy()
        };
        let mut d = dialog();
        d.customer_messages = 1;
        d.claimed_levels = Level::ALL.to_vec();
        assert_eq!(rules.plan(&d, 1, 1, Utc::now()), Plan::AnalyzeEach);
        d.analyzed_message_id = Some(30);
        assert!(matches!(rules.plan(&d, 1, 1, Utc::now()), Plan::Skip(_)));
    }

    #[test]
    fn only_whatsapp_directions_with_capi_and_a_pixel_are_eligible() {
        assert_eq!(not_eligible(&dialog()), None);
        let mut d = dialog();
        d.capi_source = Some(CapiSource::Crm);
        assert_eq!(
            not_eligible(&d),
            Some("the direction's CAPI source is not whatsapp")
        );
        let mut d = dialog();
        d.pixel_id = Some(" ".into());
        assert_eq!(not_eligible(&d), Some("the direction has no pixel"));
    }
}
