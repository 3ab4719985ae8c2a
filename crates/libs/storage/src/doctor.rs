//! What `capi doctor` reads: the spec's troubleshooting, as queries. Every
//! read can be narrowed to one user account and/or one direction (`Scope`);
//! none returns a phone number or a token's value.

use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::{ConnectionId, DirectionId, UserAccountId};
use serde::Serialize;
use uuid::Uuid;

/// Narrows the direction- and account-level checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scope {
    pub user_account: Option<UserAccountId>,
    pub direction: Option<DirectionId>,
}

/// A direction with CAPI on and what it needs to send.
#[derive(Clone, QueryableByName)]
pub struct CapiDirection {
    #[diesel(sql_type = SqlUuid)]
    pub id: DirectionId,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub pixel_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub waba_id: Option<String>,
    /// The ad account's token, else the user account's (sealed: open with
    /// `secrets::AD_ACCESS_TOKEN`).
    #[diesel(sql_type = Nullable<Text>, deserialize_as = Option<String>)]
    pub token: crate::secrets::Sealed,
    #[diesel(embed)]
    pub names: crate::directions::EventNameColumns,
}

impl CapiDirection {
    pub fn event_names(&self) -> domain::event_names::DirectionNames {
        self.names.clone().into()
    }
}

/// `$1`/`$2`: the scope's account and direction (NULL: any).
const SCOPE: &str =
    "($1::uuid IS NULL OR d.user_account_id = $1) AND ($2::uuid IS NULL OR d.id = $2)";

/// A direction's Meta setup: its pixel, WABA, token and event names.
const DIRECTION_SETUP: &str = "SELECT d.id, d.name, nullif(d.pixel_id, '') AS pixel_id, \
        nullif(d.whatsapp_business_account_id, '') AS waba_id, \
        nullif(coalesce(a.access_token, u.access_token), '') AS token, \
        d.event_name_interest, d.event_name_qualified, d.event_name_scheduled, \
        d.event_name_interest_other, d.event_name_qualified_other, d.event_name_scheduled_other \
 FROM account_directions d \
 LEFT JOIN ad_accounts a ON a.id = d.ad_account_id \
 JOIN user_accounts u ON u.id = d.user_account_id";

pub async fn capi_directions(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> Result<Vec<CapiDirection>, diesel::result::Error> {
    // SQL: an optional scope ($1/$2 may be NULL) and the token's fallback
    // (coalesce across two LEFT JOINs), as every doctor read does.
    diesel::sql_query(format!(
        "{DIRECTION_SETUP} WHERE d.capi_enabled AND {SCOPE} ORDER BY d.name, d.id"
    ))
    .bind::<Nullable<SqlUuid>, _>(scope.user_account)
    .bind::<Nullable<SqlUuid>, _>(scope.direction)
    .load(conn)
    .await
}

/// One direction's Meta setup, CAPI on or off (`capi direction dataset`).
pub async fn direction_setup(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
) -> Result<Option<CapiDirection>, diesel::result::Error> {
    use diesel::OptionalExtension;
    // SQL: the same read as `capi_directions`, for one direction by id.
    diesel::sql_query(format!("{DIRECTION_SETUP} WHERE d.id = $1"))
        .bind::<SqlUuid, _>(id)
        .get_result(conn)
        .await
        .optional()
}

/// Ad dialogs of the last 7 days per direction, and those without a click id.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct ClickIds {
    #[diesel(sql_type = SqlUuid)]
    pub direction_id: DirectionId,
    #[diesel(sql_type = Text)]
    pub direction_name: String,
    #[diesel(sql_type = BigInt)]
    pub ad_dialogs: i64,
    #[diesel(sql_type = BigInt)]
    pub without_ctwa_clid: i64,
    /// Up to five dialog ids without one (never a phone).
    #[diesel(sql_type = diesel::sql_types::Array<SqlUuid>)]
    pub examples: Vec<Uuid>,
}

pub async fn missing_click_ids(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> Result<Vec<ClickIds>, diesel::result::Error> {
    // SQL: counts with FILTER and a bounded array of example ids per direction.
    diesel::sql_query(format!(
        "SELECT d.id AS direction_id, d.name AS direction_name, count(*) AS ad_dialogs, \
                count(*) FILTER (WHERE da.ctwa_clid IS NULL) AS without_ctwa_clid, \
                coalesce((array_agg(da.id ORDER BY da.first_message DESC) FILTER (WHERE da.ctwa_clid IS NULL))[1:5], '{{}}') AS examples \
         FROM account_directions d JOIN dialog_analysis da ON da.direction_id = d.id \
         WHERE da.from_ad AND da.first_message > now() - interval '7 days' AND {SCOPE} \
         GROUP BY d.id, d.name HAVING count(*) FILTER (WHERE da.ctwa_clid IS NULL) > 0 ORDER BY d.name"
    ))
    .bind::<Nullable<SqlUuid>, _>(scope.user_account)
    .bind::<Nullable<SqlUuid>, _>(scope.direction)
    .load(conn)
    .await
}

/// Attempts of the last 24 hours by status and reason (error class or why skipped).
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct AttemptCount {
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// `capi_events_log` rows are scoped through their own account and direction columns.
const LOG_SCOPE: &str =
    "($1::uuid IS NULL OR l.user_account_id = $1) AND ($2::uuid IS NULL OR l.direction_id = $2)";

pub async fn attempts_24h(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> Result<Vec<AttemptCount>, diesel::result::Error> {
    // SQL: an optional scope ($1/$2 may be NULL) over the audit log's time index.
    diesel::sql_query(format!(
        "SELECT l.status, l.reason, count(*) AS n FROM capi_events_log l \
         WHERE l.created_at > now() - interval '24 hours' AND {LOG_SCOPE} \
         GROUP BY l.status, l.reason ORDER BY n DESC"
    ))
    .bind::<Nullable<SqlUuid>, _>(scope.user_account)
    .bind::<Nullable<SqlUuid>, _>(scope.direction)
    .load(conn)
    .await
}

/// Meta's most frequent error messages of the last 24 hours.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct TopMessage {
    #[diesel(sql_type = Text)]
    pub message: String,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

pub async fn top_errors_24h(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> Result<Vec<TopMessage>, diesel::result::Error> {
    // SQL: an optional scope ($1/$2 may be NULL), grouped and limited.
    diesel::sql_query(format!(
        "SELECT l.error_message AS message, count(*) AS n FROM capi_events_log l \
         WHERE l.created_at > now() - interval '24 hours' AND l.status = 'error' \
           AND l.error_message IS NOT NULL AND {LOG_SCOPE} \
         GROUP BY l.error_message ORDER BY n DESC LIMIT 3"
    ))
    .bind::<Nullable<SqlUuid>, _>(scope.user_account)
    .bind::<Nullable<SqlUuid>, _>(scope.direction)
    .load(conn)
    .await
}

/// Model calls that failed in the last 24 hours: qualification analyses and bot replies.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct ModelFailures {
    #[diesel(sql_type = BigInt)]
    pub analyses: i64,
    #[diesel(sql_type = BigInt)]
    pub analyses_failed: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_analysis_error: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub replies_failed: i64,
}

pub async fn model_failures(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> Result<ModelFailures, diesel::result::Error> {
    // SQL: scalar subqueries over two tables, each scoped through the dialog's direction.
    diesel::sql_query(format!(
        "SELECT (SELECT count(*) FROM qualification_runs r JOIN account_directions d ON d.id = r.direction_id \
                 WHERE r.created_at > now() - interval '24 hours' AND {SCOPE}) AS analyses, \
                (SELECT count(*) FROM qualification_runs r JOIN account_directions d ON d.id = r.direction_id \
                 WHERE r.created_at > now() - interval '24 hours' AND r.status = 'error' AND {SCOPE}) AS analyses_failed, \
                (SELECT r.error FROM qualification_runs r JOIN account_directions d ON d.id = r.direction_id \
                 WHERE r.created_at > now() - interval '24 hours' AND r.status = 'error' AND {SCOPE} \
                 ORDER BY r.id DESC LIMIT 1) AS last_analysis_error, \
                (SELECT count(*) FROM bot_replies b JOIN dialog_analysis da ON da.id = b.dialog_id \
                 JOIN account_directions d ON d.id = da.direction_id \
                 WHERE b.updated_at > now() - interval '24 hours' AND b.status = 'failed' AND {SCOPE}) AS replies_failed"
    ))
    .bind::<Nullable<SqlUuid>, _>(scope.user_account)
    .bind::<Nullable<SqlUuid>, _>(scope.direction)
    .get_result(conn)
    .await
}

/// A CRM connection whose changes could not be read in the last 24 hours.
#[derive(Debug, Clone, QueryableByName, Serialize)]
pub struct CrmFailing {
    #[diesel(sql_type = SqlUuid)]
    pub connection_id: ConnectionId,
    #[diesel(sql_type = Text)]
    pub crm_type: String,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    #[diesel(sql_type = BigInt)]
    pub changes: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Bool)]
    pub has_token: bool,
}

pub async fn crm_failing(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> Result<Vec<CrmFailing>, diesel::result::Error> {
    // SQL: the outcome's JSON (`result`, `error`) aggregated per connection;
    // scoped by account only (a connection serves all its account's directions).
    diesel::sql_query(
        "SELECT c.id AS connection_id, c.crm_type, \
                count(*) FILTER (WHERE ch.outcome->>'result' = 'unreadable') AS failed, count(*) AS changes, \
                (array_agg(ch.outcome->>'error' ORDER BY ch.id DESC) FILTER (WHERE ch.outcome->>'result' = 'unreadable'))[1] AS last_error, \
                c.access_token IS NOT NULL AS has_token \
         FROM crm_connections c JOIN crm_changes ch ON ch.connection_id = c.id \
         WHERE ch.received_at > now() - interval '24 hours' AND ($1::uuid IS NULL OR c.user_account_id = $1) \
         GROUP BY c.id, c.crm_type \
         HAVING count(*) FILTER (WHERE ch.outcome->>'result' = 'unreadable') > 0 ORDER BY c.id",
    )
    .bind::<Nullable<SqlUuid>, _>(scope.user_account)
    .load(conn)
    .await
}
