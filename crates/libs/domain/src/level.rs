//! The three conversion levels of a dialog and the rules around them.

use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// How far a customer got. Levels are cumulative: reaching N implies every
/// lower level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(
    feature = "diesel",
    derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)
)]
#[cfg_attr(feature = "diesel", diesel(sql_type = diesel::sql_types::SmallInt))]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// 1: the customer sent 2+ messages (WhatsApp) or a CRM field matched.
    Interest,
    /// 2: the customer answered the qualification questions.
    Qualified,
    /// 3: the customer booked a consultation or meeting.
    Scheduled,
    /// 4: the customer paid: reached from the CRM (a won deal) or by hand
    /// (`capi lead purchase`), never by the model. Unlike the three levels it
    /// is claimed once per (dialog, order reference) and carries a value.
    Purchase,
}

impl Level {
    pub const ALL: [Level; 4] = [
        Level::Interest,
        Level::Qualified,
        Level::Scheduled,
        Level::Purchase,
    ];

    /// The levels reached by the conversation (the model or the CRM's
    /// field rules): each claimed once per dialog, its name configurable.
    pub const CONVERSATION: [Level; 3] = [Level::Interest, Level::Qualified, Level::Scheduled];

    /// 1 to 4, as sent in `custom_data.event_level`.
    pub fn number(self) -> i16 {
        match self {
            Level::Interest => 1,
            Level::Qualified => 2,
            Level::Scheduled => 3,
            Level::Purchase => 4,
        }
    }

    pub fn from_number(n: i16) -> Option<Level> {
        Self::ALL.into_iter().find(|l| l.number() == n)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Interest => "interest",
            Level::Qualified => "qualified",
            Level::Scheduled => "scheduled",
            Level::Purchase => "purchase",
        }
    }

    /// This level and every lower one, lowest first.
    pub fn with_lower(self) -> impl Iterator<Item = Level> {
        Self::ALL.into_iter().filter(move |l| *l <= self)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| {
                format!("unknown level '{s}' (interest, qualified, scheduled, purchase)")
            })
    }
}

crate::text_enum! {
    /// Where a direction's levels come from (`account_directions.capi_source`).
    pub enum CapiSource {
        Whatsapp = "whatsapp",
        Crm = "crm",
    }
}

crate::text_enum! {
    /// What a crm direction does when a CRM entity reaches a level but no
    /// WhatsApp dialog of the direction has the contact's phone
    /// (`account_directions.capi_crm_no_dialog`).
    pub enum NoDialog {
        /// Send nothing; the audit log says `skipped`, reason `no_dialog`.
        Skip = "skip",
        /// Send the event with the contact's hashed phone only (no click id,
        /// `action_source: other`): Meta can still match the person.
        PhoneOnly = "phone_only",
    }
}

crate::text_enum! {
    /// Which CRM a direction's CRM source is (`capi_crm_type`, `crm_connections.crm_type`).
    pub enum CrmType {
        AmoCrm = "amocrm",
        Bitrix24 = "bitrix24",
    }
}

/// Stored as its number (`event_level SMALLINT`, checked 1..4).
#[cfg(feature = "diesel")]
mod sql {
    use super::Level;
    use diesel::{
        deserialize::{self, FromSql},
        pg::{Pg, PgValue},
        serialize::{self, Output, ToSql},
        sql_types::SmallInt,
    };

    impl ToSql<SmallInt, Pg> for Level {
        fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
            ToSql::<SmallInt, Pg>::to_sql(&self.number(), &mut out.reborrow())
        }
    }

    impl FromSql<SmallInt, Pg> for Level {
        fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
            let n = <i16 as FromSql<SmallInt, Pg>>::from_sql(bytes)?;
            Level::from_number(n).ok_or_else(|| format!("no level {n}").into())
        }
    }
}

/// Level 1 on the WhatsApp source: the customer has sent at least this many messages.
pub const INTEREST_MIN_CUSTOMER_MESSAGES: i64 = 2;

/// The WhatsApp-source rule for level 1.
pub fn reaches_interest(customer_messages: i64) -> bool {
    customer_messages >= INTEREST_MIN_CUSTOMER_MESSAGES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_cumulative_and_numbered() {
        assert_eq!(
            Level::Scheduled.with_lower().collect::<Vec<_>>(),
            Level::CONVERSATION.to_vec()
        );
        assert_eq!(
            Level::Purchase.with_lower().collect::<Vec<_>>(),
            Level::ALL.to_vec()
        );
        assert_eq!(
            Level::Interest.with_lower().collect::<Vec<_>>(),
            vec![Level::Interest]
        );
        for l in Level::ALL {
            assert_eq!(Level::from_number(l.number()), Some(l));
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
        }
        assert_eq!(Level::from_number(5), None);
        assert_eq!(Level::from_number(0), None);
    }

    #[test]
    fn interest_needs_two_customer_messages() {
        assert!(!reaches_interest(1));
        assert!(reaches_interest(2));
    }
}
