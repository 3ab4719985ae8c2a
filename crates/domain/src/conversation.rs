//! A dialog's messages as the rules read them: who wrote each one, what it
//! said and when. Storage converts its rows into these at its boundary.

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
