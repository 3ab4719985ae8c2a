//! A dialog's messages as the rules read them: who wrote each one, what it
//! said and when. Storage converts its rows into these at its boundary.

use crate::ids::DirectionId;
use chrono::{DateTime, Utc};

crate::text_enum! {
    /// Who wrote a message (`dialog_messages.author`).
    pub enum Author {
        Customer = "customer",
        /// A human at the business, writing from the phone or WhatsApp Web.
        Operator = "operator",
        Bot = "bot",
    }
}

/// One message of a dialog's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its row id: ids grow in the order messages were stored.
    pub id: i64,
    pub author: Author,
    pub text: Option<String>,
    pub sent_at: DateTime<Utc>,
}

crate::text_enum! {
    /// Where a burst's bot reply stands (`bot_replies.status`).
    pub enum ReplyStatus {
        Pending = "pending",
        /// The model answered but Evolution API could not take it yet.
        Generated = "generated",
        Sent = "sent",
        /// A rule said not to answer.
        Skipped = "skipped",
        Failed = "failed",
    }
}

impl ReplyStatus {
    /// Still to be sent: a handler may take it.
    pub fn is_open(self) -> bool {
        matches!(self, ReplyStatus::Pending | ReplyStatus::Generated)
    }
}

/// Whom the bot would answer in a dialog, and whether its direction and
/// instance let it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotTarget {
    pub direction_id: Option<DirectionId>,
    pub direction_bot_enabled: Option<bool>,
    pub instance_bot_enabled: Option<bool>,
    pub contact_phone: Option<String>,
    pub contact_lid: Option<String>,
}

impl BotTarget {
    /// Why the bot may not answer here at all, if it may not.
    pub fn switched_off(&self) -> Option<&'static str> {
        if self.direction_id.is_none() {
            return Some("no_direction");
        }
        if self.direction_bot_enabled == Some(false) {
            return Some("bot_disabled_for_direction");
        }
        if self.instance_bot_enabled == Some(false) {
            return Some("bot_disabled_for_instance");
        }
        None
    }

    /// The contact's phone, digits only, when known.
    pub fn phone_digits(&self) -> Option<String> {
        self.contact_phone
            .as_deref()
            .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
            .filter(|p| !p.is_empty())
    }

    /// The number to send to: the phone's digits, else the contact's LID JID.
    pub fn recipient(&self) -> Option<String> {
        self.phone_digits().or_else(|| {
            self.contact_lid
                .as_deref()
                .filter(|l| !l.is_empty())
                .map(|l| {
                    if l.contains('@') {
                        l.to_owned()
                    } else {
                        format!("{l}@lid")
                    }
                })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> BotTarget {
        BotTarget {
            direction_id: Some(DirectionId::from(uuid::Uuid::nil())),
            direction_bot_enabled: Some(true),
            instance_bot_enabled: Some(true),
            contact_phone: Some("+55 11 99999-9999".into()),
            contact_lid: Some("66417458159826".into()),
        }
    }

    #[test]
    fn the_phone_wins_then_the_lid_is_addressed_as_a_jid() {
        assert_eq!(target().recipient().as_deref(), Some("5511999999999"));
        let t = BotTarget {
            contact_phone: None,
            ..target()
        };
        assert_eq!(t.recipient().as_deref(), Some("66417458159826@lid"));
        let t = BotTarget {
            contact_phone: Some("".into()),
            contact_lid: None,
            ..target()
        };
        assert_eq!(t.recipient(), None);
    }

    #[test]
    fn a_direction_or_an_instance_can_switch_the_bot_off() {
        assert_eq!(target().switched_off(), None);
        let t = BotTarget {
            direction_id: None,
            ..target()
        };
        assert_eq!(t.switched_off(), Some("no_direction"));
        let t = BotTarget {
            instance_bot_enabled: Some(false),
            ..target()
        };
        assert_eq!(t.switched_off(), Some("bot_disabled_for_instance"));
    }
}
