//! Whether the bot answers a flushed burst, from the dialog's history alone.

use chrono::{DateTime, Duration, Utc};
use domain::conversation::{Author, Message};

/// The rules' settings.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// A human who wrote from the phone this recently owns the conversation.
    pub takeover_window: Duration,
    /// Customer messages older than this are backlog (e.g. after a reconnect).
    pub max_message_age: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Answer; the oldest unanswered customer message was sent then.
    Reply {
        unanswered_since: DateTime<Utc>,
    },
    Skip(&'static str),
}

/// `history` is oldest first.
pub fn decide(history: &[Message], now: DateTime<Utc>, rules: &Rules) -> Decision {
    let last_outgoing = history.iter().rposition(|m| m.author != Author::Customer);
    if let Some(i) = last_outgoing
        && history[i].author == Author::Operator
        && now - history[i].sent_at < rules.takeover_window
    {
        return Decision::Skip("operator_takeover");
    }
    let unanswered = &history[last_outgoing.map_or(0, |i| i + 1)..];
    let (Some(first), Some(last)) = (unanswered.first(), unanswered.last()) else {
        return Decision::Skip("nothing_unanswered");
    };
    if now - last.sent_at > rules.max_message_age {
        return Decision::Skip("too_old");
    }
    Decision::Reply {
        unanswered_since: first.sent_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs_ago: i64, author: Author, now: DateTime<Utc>) -> Message {
        Message {
            id: 0,
            author,
            text: Some("…".into()),
            sent_at: now - Duration::seconds(secs_ago),
        }
    }

    const RULES: Rules = Rules {
        takeover_window: Duration::minutes(30),
        max_message_age: Duration::minutes(10),
    };

    #[test]
    fn answers_the_customer_messages_after_the_last_reply() {
        let now = Utc::now();
        let h = [
            at(300, Author::Customer, now),
            at(290, Author::Bot, now),
            at(20, Author::Customer, now),
            at(10, Author::Customer, now),
        ];
        assert_eq!(
            decide(&h, now, &RULES),
            Decision::Reply {
                unanswered_since: h[2].sent_at
            }
        );
    }

    #[test]
    fn an_operator_within_the_window_takes_over_and_after_it_the_bot_resumes() {
        let now = Utc::now();
        let h = [
            at(120, Author::Customer, now),
            at(60, Author::Operator, now),
            at(5, Author::Customer, now),
        ];
        assert_eq!(decide(&h, now, &RULES), Decision::Skip("operator_takeover"));
        let h = [
            at(3600, Author::Operator, now),
            at(5, Author::Customer, now),
        ];
        assert!(matches!(decide(&h, now, &RULES), Decision::Reply { .. }));
    }

    #[test]
    fn nothing_to_answer_or_only_backlog_is_skipped() {
        let now = Utc::now();
        assert_eq!(
            decide(&[], now, &RULES),
            Decision::Skip("nothing_unanswered")
        );
        let h = [at(30, Author::Customer, now), at(10, Author::Bot, now)];
        assert_eq!(
            decide(&h, now, &RULES),
            Decision::Skip("nothing_unanswered")
        );
        let h = [at(3600, Author::Customer, now)];
        assert_eq!(decide(&h, now, &RULES), Decision::Skip("too_old"));
    }
}
