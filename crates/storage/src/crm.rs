//! CRM connections (per user account: which CRM account it is, and what
//! its webhooks must present) and the changes their webhooks report,
//! each stored once until it is evaluated.

use crate::schema::{crm_changes, crm_connections};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::level::CrmType;
use serde_json::Value;
use uuid::Uuid;

/// What the gateway checks a CRM webhook against. Secrets never print.
#[derive(Clone, Queryable, Selectable)]
#[diesel(table_name = crm_connections, check_for_backend(diesel::pg::Pg))]
pub struct Connection {
    pub id: Uuid,
    pub user_account_id: Uuid,
    pub crm_type: CrmType,
    /// amoCRM: the secret in the webhook URL.
    pub webhook_secret: Option<String>,
    pub account_subdomain: Option<String>,
    pub account_id: Option<String>,
    pub member_id: Option<String>,
    /// Bitrix24: what `auth[application_token]` must be.
    pub application_token: Option<String>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("crm_type", &self.crm_type)
            .field("account_subdomain", &self.account_subdomain)
            .field("member_id", &self.member_id)
            .finish_non_exhaustive()
    }
}

pub async fn connection(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<Option<Connection>, diesel::result::Error> {
    crm_connections::table
        .find(id)
        .select(Connection::as_select())
        .get_result(conn)
        .await
        .optional()
}

/// A connection as an operator creates it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = crm_connections)]
pub struct NewConnection<'a> {
    pub user_account_id: Uuid,
    pub crm_type: CrmType,
    /// The API base (amoCRM `https://x.amocrm.ru`; Bitrix24 the REST endpoint).
    pub base_url: &'a str,
    pub access_token: Option<&'a str>,
    pub webhook_secret: Option<&'a str>,
    pub default_region: &'a str,
    pub account_subdomain: Option<&'a str>,
    pub account_id: Option<&'a str>,
    pub member_id: Option<&'a str>,
    pub application_token: Option<&'a str>,
}

pub async fn create_connection(
    conn: &mut AsyncPgConnection,
    c: &NewConnection<'_>,
) -> Result<Uuid, diesel::result::Error> {
    diesel::insert_into(crm_connections::table)
        .values(c)
        .returning(crm_connections::id)
        .get_result(conn)
        .await
}

/// One reported change.
#[derive(Debug, Clone)]
pub struct NewChange<'a> {
    pub entity: &'a str,
    pub action: &'a str,
    pub entity_id: &'a str,
    /// The same for every delivery of the change.
    pub key: &'a str,
    pub change: &'a Value,
}

/// Stores changes, each (connection, key) once; returns how many were new.
pub async fn record_changes(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    changes: &[NewChange<'_>],
) -> Result<usize, diesel::result::Error> {
    use crm_changes::dsl as c;
    if changes.is_empty() {
        return Ok(0);
    }
    let rows: Vec<_> = changes
        .iter()
        .map(|ch| {
            (
                c::connection_id.eq(connection_id),
                c::entity.eq(ch.entity),
                c::action.eq(ch.action),
                c::entity_id.eq(ch.entity_id),
                c::change_key.eq(ch.key),
                c::change.eq(ch.change),
            )
        })
        .collect();
    diesel::insert_into(c::crm_changes)
        .values(&rows)
        .on_conflict((c::connection_id, c::change_key))
        .do_nothing()
        .execute(conn)
        .await
}

/// The changes of a connection not yet evaluated, oldest first.
pub async fn unevaluated(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
) -> Result<Vec<(String, String, String)>, diesel::result::Error> {
    use crm_changes::dsl as c;
    c::crm_changes
        .filter(c::connection_id.eq(connection_id))
        .filter(c::evaluated_at.is_null())
        .order(c::id)
        .select((c::entity, c::action, c::entity_id))
        .load(conn)
        .await
}
