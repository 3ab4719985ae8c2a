//! Ids that cross crates, each its own type: a direction's id cannot be
//! passed where a dialog's is expected. On the wire (serde) and in
//! PostgreSQL (with the `diesel` feature: a `UUID` column) each is the bare
//! UUID, mapped here once.

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "diesel", derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow))]
        #[cfg_attr(feature = "diesel", diesel(sql_type = diesel::sql_types::Uuid))]
        pub struct $name(uuid::Uuid);

        impl $name {
            pub const fn uuid(self) -> uuid::Uuid {
                self.0
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> $name {
                $name(id)
            }
        }

        impl From<$name> for uuid::Uuid {
            fn from(id: $name) -> uuid::Uuid {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<$name, uuid::Error> {
                s.parse().map($name)
            }
        }

        #[cfg(feature = "diesel")]
        impl diesel::serialize::ToSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <uuid::Uuid as diesel::serialize::ToSql<diesel::sql_types::Uuid, diesel::pg::Pg>>::to_sql(
                    &self.0, out,
                )
            }
        }

        #[cfg(feature = "diesel")]
        impl diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg> for $name {
            fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                <uuid::Uuid as diesel::deserialize::FromSql<diesel::sql_types::Uuid, diesel::pg::Pg>>::from_sql(bytes)
                    .map($name)
            }
        }
    };
}

uuid_id! {
    /// A conversation: one customer in one WhatsApp number's chat
    /// (`dialog_analysis.id`).
    DialogId
}

uuid_id! {
    /// A direction: one business line with its CAPI settings
    /// (`account_directions.id`).
    DirectionId
}

uuid_id! {
    /// A business using the system (`user_accounts.id`).
    UserAccountId
}

uuid_id! {
    /// A customer across dialogs (`leads.id`).
    LeadId
}

uuid_id! {
    /// A CRM connection (`crm_connections.id`).
    ConnectionId
}

/// A CAPI event's id: the deduplication key Meta sees (`event_id`), a
/// UUIDv5 of (dialog, level) or (dialog, order) as text
/// (`domain::capi_event::event_id`); `capi_deliveries.event_id`.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
#[cfg_attr(
    feature = "diesel",
    derive(diesel::expression::AsExpression, diesel::deserialize::FromSqlRow)
)]
#[cfg_attr(feature = "diesel", diesel(sql_type = diesel::sql_types::Text))]
pub struct EventId(String);

impl EventId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for EventId {
    fn from(id: String) -> EventId {
        EventId(id)
    }
}

impl From<&str> for EventId {
    fn from(id: &str) -> EventId {
        EventId(id.to_owned())
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(feature = "diesel")]
impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for EventId {
    fn to_sql<'b>(
        &'b self,
        out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
    ) -> diesel::serialize::Result {
        <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
            &self.0, out,
        )
    }
}

#[cfg(feature = "diesel")]
impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for EventId {
    fn from_sql(bytes: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
        <String as diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg>>::from_sql(
            bytes,
        )
        .map(EventId)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_its_uuid_on_the_wire_and_in_text() {
        let u = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let d = DialogId::from(u);
        assert_eq!(
            serde_json::to_value(d).ok(),
            Some(serde_json::json!(u.to_string()))
        );
        assert_eq!(d.to_string(), u.to_string());
        assert_eq!(u.to_string().parse::<DialogId>().ok(), Some(d));
        let back: Option<DialogId> = serde_json::from_value(serde_json::json!(u)).ok();
        assert_eq!(back, Some(d));
        assert_eq!(uuid::Uuid::from(d), u);
    }
}
