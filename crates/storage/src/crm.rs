//! CRM connections (per user account: which CRM account it is, and what
//! its webhooks must present) and the changes their webhooks report,
//! each stored once until it is evaluated.

use crate::schema::{account_directions, crm_changes, crm_connections};
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable, Selectable,
    SelectableHelper,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::{
    crm::mapping::{FieldRule, LevelMapping},
    level::{CapiSource, CrmType},
};
use secrecy::SecretString;
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

/// Stores changes, each (connection, key) once; returns the new rows' ids.
pub async fn record_changes(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    changes: &[NewChange<'_>],
) -> Result<Vec<i64>, diesel::result::Error> {
    use crm_changes::dsl as c;
    if changes.is_empty() {
        return Ok(Vec::new());
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
        .returning(c::id)
        .load(conn)
        .await
}

/// A stored change with what reading its entity needs.
#[derive(Debug, Clone)]
pub struct ChangeToEvaluate {
    pub id: i64,
    pub connection_id: Uuid,
    pub user_account_id: Uuid,
    pub crm_type: CrmType,
    pub entity: String,
    pub action: String,
    pub entity_id: String,
    pub evaluated: bool,
    /// amoCRM: the account's address; Bitrix24: the incoming webhook URL (a secret).
    pub base_url: SecretString,
    pub access_token: Option<SecretString>,
    pub default_region: String,
}

pub async fn change_to_evaluate(
    conn: &mut AsyncPgConnection,
    change_id: i64,
) -> Result<Option<ChangeToEvaluate>, diesel::result::Error> {
    use crm_changes::dsl as c;
    use crm_connections::dsl as k;
    type Row = (
        i64,
        Uuid,
        Uuid,
        CrmType,
        String,
        String,
        String,
        bool,
        String,
        Option<String>,
        String,
    );
    let row: Option<Row> = c::crm_changes
        .inner_join(k::crm_connections)
        .filter(c::id.eq(change_id))
        .select((
            c::id,
            c::connection_id,
            k::user_account_id,
            k::crm_type,
            c::entity,
            c::action,
            c::entity_id,
            c::evaluated_at.is_not_null(),
            k::base_url,
            k::access_token,
            k::default_region,
        ))
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(
        |(
            id,
            connection_id,
            user_account_id,
            crm_type,
            entity,
            action,
            entity_id,
            evaluated,
            base_url,
            token,
            default_region,
        )| {
            ChangeToEvaluate {
                id,
                connection_id,
                user_account_id,
                crm_type,
                entity,
                action,
                entity_id,
                evaluated,
                base_url: SecretString::from(base_url),
                access_token: token
                    .filter(|t| !t.trim().is_empty())
                    .map(SecretString::from),
                default_region,
            }
        },
    ))
}

/// Closes a change with what its evaluation found.
pub async fn mark_evaluated(
    conn: &mut AsyncPgConnection,
    change_id: i64,
    outcome: &Value,
) -> Result<(), diesel::result::Error> {
    use crm_changes::dsl as c;
    diesel::update(
        c::crm_changes
            .find(change_id)
            .filter(c::evaluated_at.is_null()),
    )
    .set((c::evaluated_at.eq(diesel::dsl::now), c::outcome.eq(outcome)))
    .execute(conn)
    .await?;
    Ok(())
}

/// A change as `capi crm changes` shows it.
#[derive(Debug, Clone, serde::Serialize, Queryable, Selectable)]
#[diesel(table_name = crm_changes, check_for_backend(diesel::pg::Pg))]
pub struct ChangeRow {
    pub id: i64,
    pub entity: String,
    pub action: String,
    pub entity_id: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
    pub evaluated_at: Option<chrono::DateTime<chrono::Utc>>,
    pub outcome: Option<Value>,
}

/// A connection's newest changes, newest first.
pub async fn recent_changes(
    conn: &mut AsyncPgConnection,
    connection_id: Uuid,
    limit: i64,
) -> Result<Vec<ChangeRow>, diesel::result::Error> {
    use crm_changes::dsl as c;
    c::crm_changes
        .filter(c::connection_id.eq(connection_id))
        .order(c::id.desc())
        .limit(limit)
        .select(ChangeRow::as_select())
        .load(conn)
        .await
}

/// A direction whose levels come from this CRM.
#[derive(Debug, Clone)]
pub struct CrmDirection {
    pub id: Uuid,
    pub mapping: LevelMapping,
}

/// The user account's directions with CAPI on, source `crm` and this CRM.
pub async fn crm_directions(
    conn: &mut AsyncPgConnection,
    user_account_id: Uuid,
    crm_type: CrmType,
) -> Result<Vec<CrmDirection>, diesel::result::Error> {
    use account_directions::dsl as d;
    let rows: Vec<(Uuid, Value, Value, Value)> = d::account_directions
        .filter(d::user_account_id.eq(user_account_id))
        .filter(d::capi_enabled.eq(true))
        .filter(d::capi_source.eq(CapiSource::Crm))
        .filter(d::capi_crm_type.eq(crm_type))
        .order(d::created_at)
        .select((
            d::id,
            d::capi_interest_fields,
            d::capi_qualified_fields,
            d::capi_scheduled_fields,
        ))
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(id, interest, qualified, scheduled)| {
            Ok(CrmDirection {
                id,
                mapping: level_mapping(interest, qualified, scheduled)?,
            })
        })
        .collect()
}

/// A direction's three stored rule lists as a mapping.
pub(crate) fn level_mapping(
    interest: Value,
    qualified: Value,
    scheduled: Value,
) -> Result<LevelMapping, diesel::result::Error> {
    let rules = |v: Value| -> Result<Vec<FieldRule>, diesel::result::Error> {
        serde_json::from_value(v).map_err(|e| diesel::result::Error::DeserializationError(e.into()))
    };
    Ok(LevelMapping {
        interest: rules(interest)?,
        qualified: rules(qualified)?,
        scheduled: rules(scheduled)?,
    })
}
