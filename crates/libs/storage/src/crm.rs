//! CRM connections (per user account: which CRM account it is, and what
//! its webhooks must present) and the changes their webhooks report,
//! each stored once until it is evaluated.

use crate::PreparedExt;
use crate::schema::{account_directions, crm_changes, crm_connections};
use crate::secrets;
use diesel::{
    ExpressionMethods, Insertable, OptionalExtension, QueryDsl, Queryable, QueryableByName,
    Selectable, SelectableHelper,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::{ConnectionId, DirectionId, UserAccountId};
use domain::{
    crm::mapping::{FieldRule, LevelMapping},
    level::{CapiSource, CrmType, NoDialog},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// What the gateway checks a CRM webhook against. Secrets never print.
#[derive(Clone)]
pub struct Connection {
    pub id: ConnectionId,
    pub user_account_id: UserAccountId,
    pub crm_type: CrmType,
    /// amoCRM: the secret in the webhook URL.
    pub webhook_secret: Option<SecretString>,
    pub account_subdomain: Option<String>,
    pub account_id: Option<String>,
    pub member_id: Option<String>,
    /// Bitrix24: what `auth[application_token]` must be.
    pub application_token: Option<SecretString>,
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

#[derive(Queryable, Selectable)]
#[diesel(table_name = crm_connections, check_for_backend(diesel::pg::Pg))]
struct ConnectionRow {
    id: ConnectionId,
    user_account_id: UserAccountId,
    crm_type: CrmType,
    webhook_secret: Option<String>,
    account_subdomain: Option<String>,
    account_id: Option<String>,
    member_id: Option<String>,
    application_token: Option<String>,
}

pub async fn connection(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    id: ConnectionId,
) -> Result<Option<Connection>, diesel::result::Error> {
    let Some(r) = crm_connections::table
        .find(id)
        .select(ConnectionRow::as_select())
        .get_result(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    Ok(Some(Connection {
        id: r.id,
        user_account_id: r.user_account_id,
        crm_type: r.crm_type,
        webhook_secret: keys.open(secrets::CRM_WEBHOOK_SECRET, r.webhook_secret.as_deref())?,
        account_subdomain: r.account_subdomain,
        account_id: r.account_id,
        member_id: r.member_id,
        application_token: keys.open(
            secrets::CRM_APPLICATION_TOKEN,
            r.application_token.as_deref(),
        )?,
    }))
}

/// A connection as an operator creates it. `Debug` shows no credential.
#[derive(Clone, Insertable)]
#[diesel(table_name = crm_connections)]
pub struct NewConnection<'a> {
    pub user_account_id: UserAccountId,
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
    /// OAuth: the refresh token, when the access token expires, and the app.
    pub refresh_token: Option<&'a str>,
    pub token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    pub oauth_client_id: Option<&'a str>,
    pub oauth_client_secret: Option<&'a str>,
    pub oauth_redirect_uri: Option<&'a str>,
}

impl std::fmt::Debug for NewConnection<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConnection")
            .field("user_account_id", &self.user_account_id)
            .field("crm_type", &self.crm_type)
            .field("account_subdomain", &self.account_subdomain)
            .field("member_id", &self.member_id)
            .field("has_access_token", &self.access_token.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> NewConnection<'a> {
    /// A connection with nothing but its account, CRM and base URL (phones
    /// without a country code read as Russian); fill in the rest.
    pub fn new(user_account_id: UserAccountId, crm_type: CrmType, base_url: &'a str) -> Self {
        NewConnection {
            user_account_id,
            crm_type,
            base_url,
            access_token: None,
            webhook_secret: None,
            default_region: "RU",
            account_subdomain: None,
            account_id: None,
            member_id: None,
            application_token: None,
            refresh_token: None,
            token_expires_at: None,
            oauth_client_id: None,
            oauth_client_secret: None,
            oauth_redirect_uri: None,
        }
    }
}

pub async fn create_connection(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    c: &NewConnection<'_>,
) -> Result<ConnectionId, diesel::result::Error> {
    let base_url = keys.seal(secrets::CRM_BASE_URL, c.base_url)?;
    let access_token = keys.seal_opt(secrets::CRM_ACCESS_TOKEN, c.access_token)?;
    let webhook_secret = keys.seal_opt(secrets::CRM_WEBHOOK_SECRET, c.webhook_secret)?;
    let application_token = keys.seal_opt(secrets::CRM_APPLICATION_TOKEN, c.application_token)?;
    let refresh_token = keys.seal_opt(secrets::CRM_REFRESH_TOKEN, c.refresh_token)?;
    let oauth_client_secret =
        keys.seal_opt(secrets::CRM_OAUTH_CLIENT_SECRET, c.oauth_client_secret)?;
    let sealed = NewConnection {
        base_url: &base_url,
        access_token: access_token.as_deref(),
        webhook_secret: webhook_secret.as_deref(),
        application_token: application_token.as_deref(),
        refresh_token: refresh_token.as_deref(),
        oauth_client_secret: oauth_client_secret.as_deref(),
        ..c.clone()
    };
    diesel::insert_into(crm_connections::table)
        .values(&sealed)
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

/// Stores changes of any connections, each (connection, key) once, in one
/// statement; returns the new rows as (id, connection, key). A change twice
/// in `changes` is stored once.
pub async fn record_changes(
    conn: &mut AsyncPgConnection,
    changes: &[(ConnectionId, NewChange<'_>)],
) -> Result<Vec<(i64, ConnectionId, String)>, diesel::result::Error> {
    use crm_changes::dsl as c;
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<_> = changes
        .iter()
        .map(|(connection_id, ch)| {
            (
                c::connection_id.eq(*connection_id),
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
        .returning((c::id, c::connection_id, c::change_key))
        .load(conn)
        .await
}

/// A stored change.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = crm_changes, check_for_backend(diesel::pg::Pg))]
pub struct StoredChange {
    pub id: i64,
    pub connection_id: ConnectionId,
    pub entity: String,
    pub action: String,
    pub entity_id: String,
    pub evaluated_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn change(
    conn: &mut AsyncPgConnection,
    change_id: i64,
) -> Result<Option<StoredChange>, diesel::result::Error> {
    crm_changes::table
        .find(change_id)
        .select(StoredChange::as_select())
        .get_result(conn)
        .await
        .optional()
}

pub use crm::session::{Access, OAuthClient};

#[derive(Queryable, Selectable)]
#[diesel(table_name = crm_connections, check_for_backend(diesel::pg::Pg))]
struct AccessRow {
    id: ConnectionId,
    user_account_id: UserAccountId,
    crm_type: CrmType,
    base_url: String,
    access_token: Option<String>,
    refresh_token: Option<String>,
    token_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    oauth_client_id: Option<String>,
    oauth_client_secret: Option<String>,
    oauth_redirect_uri: Option<String>,
    default_region: String,
}

impl AccessRow {
    fn open(self, keys: &crate::secrets::Keys) -> Result<Access, secrets::SecretError> {
        let r = self;
        let open = |column, s: Option<String>| {
            keys.open(column, s.as_deref())
                .map(|s| s.filter(|t| !t.expose_secret().trim().is_empty()))
        };
        let oauth = match (
            r.oauth_client_id,
            open(secrets::CRM_OAUTH_CLIENT_SECRET, r.oauth_client_secret)?,
        ) {
            (Some(client_id), Some(client_secret)) if !client_id.is_empty() => Some(OAuthClient {
                client_id,
                client_secret,
                redirect_uri: r.oauth_redirect_uri,
            }),
            _ => None,
        };
        Ok(Access {
            connection_id: r.id,
            user_account_id: r.user_account_id,
            crm_type: r.crm_type,
            base_url: open(secrets::CRM_BASE_URL, Some(r.base_url))?
                .unwrap_or_else(|| SecretString::from(String::new())),
            access_token: open(secrets::CRM_ACCESS_TOKEN, r.access_token)?,
            refresh_token: open(secrets::CRM_REFRESH_TOKEN, r.refresh_token)?,
            token_expires_at: r.token_expires_at,
            oauth,
            default_region: r.default_region,
        })
    }
}

/// How to call the connection's CRM.
pub async fn access(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    connection_id: ConnectionId,
) -> Result<Option<Access>, diesel::result::Error> {
    let row: Option<AccessRow> = crm_connections::table
        .find(connection_id)
        .select(AccessRow::as_select())
        .get_result(conn)
        .await
        .optional()?;
    Ok(row.map(|r| r.open(keys)).transpose()?)
}

/// The same, with the connection's row locked until the transaction ends:
/// whoever holds it is the one who may refresh the token.
pub async fn lock_access(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    connection_id: ConnectionId,
) -> Result<Option<Access>, diesel::result::Error> {
    let locked: Option<ConnectionId> = crm_connections::table
        .find(connection_id)
        .select(crm_connections::id)
        .for_update()
        .get_result(conn)
        .await
        .optional()?;
    match locked {
        Some(_) => access(conn, keys, connection_id).await,
        None => Ok(None),
    }
}

/// Stores a refreshed token pair (inside the transaction holding the lock).
pub async fn store_tokens(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    connection_id: ConnectionId,
    access_token: &str,
    refresh_token: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Result<(), diesel::result::Error> {
    use crm_connections::dsl as k;
    let access_token = keys.seal(secrets::CRM_ACCESS_TOKEN, access_token)?;
    let refresh_token = keys.seal(secrets::CRM_REFRESH_TOKEN, refresh_token)?;
    diesel::update(k::crm_connections.find(connection_id))
        .set((
            k::access_token.eq(access_token),
            k::refresh_token.eq(refresh_token),
            k::token_expires_at.eq(expires_at),
            k::token_refreshed_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Wait {
    #[diesel(sql_type = diesel::sql_types::Double)]
    wait_ms: f64,
}

/// Reserves the connection's next request moment (shared by every replica:
/// the generic cell rate algorithm on one row): requests `interval` apart,
/// up to `burst` at once. Returns how long to wait before sending.
pub async fn reserve_request(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
    interval: std::time::Duration,
    burst: u32,
) -> Result<std::time::Duration, diesel::result::Error> {
    use diesel::sql_types::{Double, Uuid as SqlUuid};
    let t = interval.as_secs_f64();
    // SQL: an upsert that moves the pace on by the database clock (`greatest(next_at, now())`) and returns the wait in one round trip.
    let w: Wait = diesel::sql_query(
        "INSERT INTO crm_request_pace AS p (connection_id, next_at) \
         VALUES ($1, now() + make_interval(secs => $2)) \
         ON CONFLICT (connection_id) DO UPDATE \
           SET next_at = greatest(p.next_at, now()) + make_interval(secs => $2) \
         RETURNING extract(epoch FROM greatest(p.next_at - make_interval(secs => $3), now()) - now())::float8 * 1000 AS wait_ms",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Double, _>(t)
    .bind::<Double, _>(t * f64::from(burst.max(1)))
    .prepared()
    .get_result(conn)
    .await?;
    Ok(std::time::Duration::from_secs_f64(
        w.wait_ms.max(0.0) / 1000.0,
    ))
}

/// The CRM said to wait: no replica sends to it for `wait` (callers add
/// the burst window, which would otherwise go at once when the wait ends).
pub async fn hold_requests(
    conn: &mut AsyncPgConnection,
    connection_id: ConnectionId,
    wait: std::time::Duration,
) -> Result<(), diesel::result::Error> {
    use diesel::sql_types::{Double, Uuid as SqlUuid};
    // SQL: the same upsert on the database clock, never moving the pace back.
    diesel::sql_query(
        "INSERT INTO crm_request_pace AS p (connection_id, next_at) \
         VALUES ($1, now() + make_interval(secs => $2)) \
         ON CONFLICT (connection_id) DO UPDATE \
           SET next_at = greatest(p.next_at, now() + make_interval(secs => $2))",
    )
    .bind::<SqlUuid, _>(connection_id)
    .bind::<Double, _>(wait.as_secs_f64())
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes a change with what its evaluation found; `false` when it was
/// already closed (by another replica).
pub async fn mark_evaluated(
    conn: &mut AsyncPgConnection,
    change_id: i64,
    outcome: &Value,
) -> Result<bool, diesel::result::Error> {
    use crm_changes::dsl as c;
    let n = diesel::update(
        c::crm_changes
            .find(change_id)
            .filter(c::evaluated_at.is_null()),
    )
    .set((c::evaluated_at.eq(diesel::dsl::now), c::outcome.eq(outcome)))
    .execute(conn)
    .await?;
    Ok(n == 1)
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
    connection_id: ConnectionId,
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
    pub id: DirectionId,
    pub mapping: LevelMapping,
    /// When no dialog has the contact's phone.
    pub no_dialog: NoDialog,
    pub pixel_id: Option<String>,
    /// Meta event names per level and action source.
    pub event_names: domain::event_names::DirectionNames,
    /// When a CRM entity counts as a purchase, and for how much.
    pub purchase: domain::crm::purchase::PurchaseSetting,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = account_directions, check_for_backend(diesel::pg::Pg))]
struct CrmDirectionRow {
    id: DirectionId,
    capi_interest_fields: Value,
    capi_qualified_fields: Value,
    capi_scheduled_fields: Value,
    capi_crm_no_dialog: NoDialog,
    pixel_id: Option<String>,
    #[diesel(embed)]
    names: crate::directions::EventNameColumns,
    capi_purchase_rule: Option<Value>,
}

/// The user account's directions with CAPI on, source `crm` and this CRM.
pub async fn crm_directions(
    conn: &mut AsyncPgConnection,
    user_account_id: UserAccountId,
    crm_type: CrmType,
) -> Result<Vec<CrmDirection>, diesel::result::Error> {
    use account_directions::dsl as d;
    let rows: Vec<CrmDirectionRow> = d::account_directions
        .filter(d::user_account_id.eq(user_account_id))
        .filter(d::capi_enabled.eq(true))
        .filter(d::capi_source.eq(CapiSource::Crm))
        .filter(d::capi_crm_type.eq(crm_type))
        .order(d::created_at)
        .select(CrmDirectionRow::as_select())
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(CrmDirection {
                id: r.id,
                mapping: level_mapping(
                    r.capi_interest_fields,
                    r.capi_qualified_fields,
                    r.capi_scheduled_fields,
                )?,
                no_dialog: r.capi_crm_no_dialog,
                pixel_id: r.pixel_id,
                event_names: r.names.into(),
                purchase: domain::crm::purchase::PurchaseSetting::from_stored(
                    r.capi_purchase_rule.as_ref(),
                )
                .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?,
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

/// A connection as the set-up pages list it: no secrets (the address's
/// host only: a Bitrix24 incoming webhook URL holds its secret in the path).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConnectionSummary {
    pub id: ConnectionId,
    pub crm_type: CrmType,
    pub host: String,
}

/// The account's CRM connections, oldest first.
pub async fn list_connections(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    account: UserAccountId,
) -> Result<Vec<ConnectionSummary>, diesel::result::Error> {
    use crm_connections::dsl as c;
    let rows: Vec<(ConnectionId, CrmType, String)> = c::crm_connections
        .filter(c::user_account_id.eq(account))
        .order(c::created_at)
        .select((c::id, c::crm_type, c::base_url))
        .load(conn)
        .await?;
    rows.into_iter()
        .map(|(id, crm_type, sealed)| {
            let url = keys
                .open(secrets::CRM_BASE_URL, Some(&sealed))?
                .map(|u| u.expose_secret().to_owned())
                .unwrap_or_default();
            let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
            let host = rest.split('/').next().unwrap_or_default().to_owned();
            Ok(ConnectionSummary { id, crm_type, host })
        })
        .collect()
}
