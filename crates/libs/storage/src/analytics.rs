//! The analytics API's reads: events Meta accepted per local day, direction
//! and level; leads (new dialogs) per direction; ad spend per ad account;
//! one lead's three CAPI columns and the ROI table's page of leads. Every
//! read is scoped to one user account.

use crate::PreparedExt;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::{
    ExpressionMethods, OptionalExtension, QueryDsl, Queryable, QueryableByName,
    sql_types::{BigInt, Bool, Date, Int2, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::analytics::{Money, Spend};
use domain::ids::{DialogId, DirectionId, EventId, LeadId, UserAccountId};
use serde::Serialize;
use uuid::Uuid;

/// A direction of the account, with what the reports and analytics need of it.
#[derive(Debug, Clone, Queryable, Serialize)]
pub struct DirectionInfo {
    pub id: DirectionId,
    pub name: String,
    pub capi_enabled: bool,
    pub ad_account_id: Option<Uuid>,
    pub event_name_interest: String,
    pub event_name_qualified: String,
    pub event_name_scheduled: String,
}

/// The account's directions, by name.
pub async fn directions(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
) -> Result<Vec<DirectionInfo>, diesel::result::Error> {
    use crate::schema::account_directions::dsl as d;
    d::account_directions
        .filter(d::user_account_id.eq(account_id))
        .order((d::name, d::id))
        .select((
            d::id,
            d::name,
            d::capi_enabled,
            d::ad_account_id,
            d::event_name_interest,
            d::event_name_qualified,
            d::event_name_scheduled,
        ))
        .load(conn)
        .await
}

/// `sql` (static text, kept prepared) bound as every local-days read is:
/// $1 the account, $2 since, $3 until (local days, inclusive), $4 its time zone.
pub(crate) fn over_local_days<'a>(
    sql: &'static str,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &'a str,
) -> crate::Prepared<BoxedSqlQuery<'a, Pg, SqlQuery>> {
    diesel::sql_query(sql)
        .into_boxed()
        .bind::<SqlUuid, _>(account_id)
        .bind::<Date, _>(since)
        .bind::<Date, _>(until)
        .bind::<Text, _>(timezone)
        .prepared()
}

/// Events accepted on one local day, for one direction and level.
#[derive(Debug, Clone, QueryableByName)]
pub struct DayEvents {
    #[diesel(sql_type = Date)]
    pub day: NaiveDate,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub direction_id: Option<DirectionId>,
    #[diesel(sql_type = Int2)]
    pub event_level: i16,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// `events_by_day`: $1 account, $2 since, $3 until, $4 time zone.
pub const EVENTS_BY_DAY_SQL: &str = "SELECT (created_at AT TIME ZONE $4)::date AS day, direction_id, event_level, \
                count(DISTINCT event_id) AS n \
         FROM capi_events_log \
         WHERE user_account_id = $1 AND status = 'success' \
           AND created_at >= ($2::date::timestamp AT TIME ZONE $4) \
           AND created_at < (($3::date + 1)::timestamp AT TIME ZONE $4) \
         GROUP BY 1, 2, 3 ORDER BY 1";

/// Successes in the audit log from `since` to `until` (local days, inclusive).
pub async fn events_by_day(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
) -> Result<Vec<DayEvents>, diesel::result::Error> {
    // SQL: local days (AT TIME ZONE) over capi_events_log's (user_account_id, created_at) index.
    over_local_days(EVENTS_BY_DAY_SQL, account_id, since, until, timezone)
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct RevenueRow {
    #[diesel(sql_type = Nullable<SqlUuid>)]
    direction_id: Option<DirectionId>,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = BigInt)]
    cents: i64,
}

/// `revenue_by_direction`: $1 account, $2 since, $3 until, $4 time zone.
/// Purchases Meta accepted in the local days (each event once, as the
/// counts), their values summed per direction and currency.
pub const REVENUE_BY_DIRECTION_SQL: &str = "SELECT l.direction_id, cd.purchase_currency AS currency, \
                round(sum(cd.purchase_value) * 100)::bigint AS cents \
         FROM (SELECT DISTINCT direction_id, event_id FROM capi_events_log \
               WHERE user_account_id = $1 AND status = 'success' AND event_level = 4 \
                 AND created_at >= ($2::date::timestamp AT TIME ZONE $4) \
                 AND created_at < (($3::date + 1)::timestamp AT TIME ZONE $4)) l \
         JOIN capi_deliveries cd ON cd.event_id = l.event_id \
         GROUP BY 1, 2";

/// Revenue per direction and currency from `since` to `until` (local days, inclusive).
pub async fn revenue_by_direction(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
) -> Result<Vec<(Option<DirectionId>, Money)>, diesel::result::Error> {
    // SQL: the audit log's successes (its account/time index) joined to the deliveries' amounts by the unique event id; NUMERIC summed into integer cents in the database.
    let rows: Vec<RevenueRow> =
        over_local_days(REVENUE_BY_DIRECTION_SQL, account_id, since, until, timezone)
            .load(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.direction_id,
                Money {
                    cents: r.cents,
                    currency: r.currency,
                },
            )
        })
        .collect())
}

#[derive(QueryableByName)]
struct DirectionCount {
    #[diesel(sql_type = SqlUuid)]
    direction_id: DirectionId,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `leads_by_direction`: $1 account, $2 since, $3 until, $4 time zone.
pub const LEADS_BY_DIRECTION_SQL: &str = "SELECT ad.id AS direction_id, count(da.id) AS n \
         FROM account_directions ad JOIN dialog_analysis da ON da.direction_id = ad.id \
         WHERE ad.user_account_id = $1 \
           AND da.first_message >= ($2::date::timestamp AT TIME ZONE $4) \
           AND da.first_message < (($3::date + 1)::timestamp AT TIME ZONE $4) \
         GROUP BY ad.id";

/// New dialogs (leads) per direction: first message within the local days.
pub async fn leads_by_direction(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
) -> Result<Vec<(DirectionId, i64)>, diesel::result::Error> {
    // SQL: local days (AT TIME ZONE) over dialog_analysis' (direction_id, first_message) index.
    let rows: Vec<DirectionCount> =
        over_local_days(LEADS_BY_DIRECTION_SQL, account_id, since, until, timezone)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|r| (r.direction_id, r.n)).collect())
}

#[derive(QueryableByName)]
struct SpendRow {
    #[diesel(sql_type = SqlUuid)]
    ad_account_id: Uuid,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = BigInt)]
    cents: i64,
}

/// Spend per ad account of the account over the days (the ad account's own days).
pub async fn spend_by_ad_account(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<Vec<(Uuid, Spend)>, diesel::result::Error> {
    // SQL: NUMERIC summed and turned into integer cents in the database (no decimal type in Rust).
    let rows: Vec<SpendRow> = diesel::sql_query(
        "SELECT s.ad_account_id, s.currency, (sum(s.spend) * 100)::bigint AS cents \
         FROM ad_accounts a JOIN ad_spend s ON s.ad_account_id = a.id \
         WHERE a.user_account_id = $1 AND s.spend_date BETWEEN $2 AND $3 \
         GROUP BY s.ad_account_id, s.currency",
    )
    .bind::<SqlUuid, _>(account_id)
    .bind::<Date, _>(since)
    .bind::<Date, _>(until)
    .prepared()
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.ad_account_id,
                Spend {
                    cents: r.cents,
                    currency: r.currency,
                },
            )
        })
        .collect())
}

/// One CAPI column of a lead.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LevelColumn {
    pub sent: bool,
    pub sent_at: Option<DateTime<Utc>>,
    pub event_id: Option<String>,
}

/// One paid order of a lead: its amount and whether Meta has it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct PurchaseColumn {
    pub order_ref: String,
    pub value: f64,
    pub currency: String,
    /// `pending`, `success`, `error` or `skipped` (as the delivery).
    pub status: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub event_id: EventId,
}

/// A lead with the ROI table's CAPI columns: the three levels and its purchases.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LeadEvents {
    pub lead_id: LeadId,
    pub dialog_id: DialogId,
    pub direction_id: Option<DirectionId>,
    pub direction_name: Option<String>,
    pub contact_name: Option<String>,
    pub first_message: Option<DateTime<Utc>>,
    pub from_ad: bool,
    pub interest: LevelColumn,
    pub qualified: LevelColumn,
    pub scheduled: LevelColumn,
    /// Paid orders, oldest first.
    pub purchases: Vec<PurchaseColumn>,
}

#[derive(QueryableByName)]
struct LeadRow {
    #[diesel(sql_type = SqlUuid)]
    lead_id: LeadId,
    #[diesel(sql_type = SqlUuid)]
    dialog_id: DialogId,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    direction_id: Option<DirectionId>,
    #[diesel(sql_type = Nullable<Text>)]
    direction_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    contact_name: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_message: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    from_ad: bool,
    #[diesel(sql_type = Bool)]
    i_sent: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    i_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    i_id: Option<String>,
    #[diesel(sql_type = Bool)]
    q_sent: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    q_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    q_id: Option<String>,
    #[diesel(sql_type = Bool)]
    s_sent: bool,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    s_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    s_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    purchases: serde_json::Value,
}

impl From<LeadRow> for LeadEvents {
    fn from(r: LeadRow) -> LeadEvents {
        LeadEvents {
            lead_id: r.lead_id,
            dialog_id: r.dialog_id,
            direction_id: r.direction_id,
            direction_name: r.direction_name,
            contact_name: r.contact_name,
            first_message: r.first_message,
            from_ad: r.from_ad,
            interest: LevelColumn {
                sent: r.i_sent,
                sent_at: r.i_at,
                event_id: r.i_id,
            },
            qualified: LevelColumn {
                sent: r.q_sent,
                sent_at: r.q_at,
                event_id: r.q_id,
            },
            scheduled: LevelColumn {
                sent: r.s_sent,
                sent_at: r.s_at,
                event_id: r.s_id,
            },
            // Built by the query itself (LEAD_COLUMNS), so it always reads.
            purchases: serde_json::from_value(r.purchases).unwrap_or_default(),
        }
    }
}

/// The account of a dialog: its direction's, else its instance's.
const LEAD_COLUMNS: &str = "da.lead_id, da.id AS dialog_id, coalesce(da.direction_id, w.direction_id) AS direction_id, \
    ad.name AS direction_name, coalesce(da.contact_name, l.name) AS contact_name, da.first_message, da.from_ad, \
    da.capi_interest_sent AS i_sent, da.capi_interest_sent_at AS i_at, da.capi_interest_event_id AS i_id, \
    da.capi_qualified_sent AS q_sent, da.capi_qualified_sent_at AS q_at, da.capi_qualified_event_id AS q_id, \
    da.capi_scheduled_sent AS s_sent, da.capi_scheduled_sent_at AS s_at, da.capi_scheduled_event_id AS s_id, \
    (SELECT coalesce(jsonb_agg(jsonb_build_object('order_ref', cd.order_ref, 'value', cd.purchase_value::float8, \
        'currency', cd.purchase_currency, 'status', cd.status, \
        'sent_at', CASE WHEN cd.status = 'success' THEN cd.finished_at END, 'event_id', cd.event_id) \
        ORDER BY cd.claimed_at, cd.id), '[]'::jsonb) \
     FROM capi_deliveries cd WHERE cd.dialog_id = da.id AND cd.event_level = 4) AS purchases";

/// One lead of the account; `None` when it does not exist or belongs to another account.
pub async fn lead(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    lead_id: LeadId,
) -> Result<Option<LeadEvents>, diesel::result::Error> {
    // SQL: the account check follows the dialog's direction, else its
    // instance (coalesce across two joins), in the same statement.
    let row: Option<LeadRow> = diesel::sql_query(format!(
        "SELECT {LEAD_COLUMNS} FROM dialog_analysis da \
         JOIN leads l ON l.id = da.lead_id \
         LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = da.instance_name \
         LEFT JOIN account_directions ad ON ad.id = coalesce(da.direction_id, w.direction_id) \
         WHERE da.lead_id = $2 AND coalesce(ad.user_account_id, w.user_account_id) = $1 \
         LIMIT 1"
    ))
    .bind::<SqlUuid, _>(account_id)
    .bind::<SqlUuid, _>(lead_id)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(LeadEvents::from))
}

/// The account's dialogs (through its directions, and its instances for
/// dialogs without one) whose first message falls in the local days
/// ($1 account, $2 since, $3 until, $4 time zone).
const LEADS_SCOPE: &str = "FROM dialog_analysis da \
     JOIN leads l ON l.id = da.lead_id \
     LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = da.instance_name \
     LEFT JOIN account_directions ad ON ad.id = coalesce(da.direction_id, w.direction_id) \
     WHERE (da.direction_id IN (SELECT id FROM account_directions WHERE user_account_id = $1) \
            OR (da.direction_id IS NULL AND da.instance_name IN \
                (SELECT instance_name FROM whatsapp_phone_numbers WHERE user_account_id = $1))) \
       AND da.first_message >= ($2::date::timestamp AT TIME ZONE $4) \
       AND da.first_message < (($3::date + 1)::timestamp AT TIME ZONE $4)";

/// A page of the account's leads whose first message falls in the local
/// days, newest first, and how many there are in all.
pub async fn leads_page(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
    page: i64,
    per_page: i64,
) -> Result<(Vec<LeadEvents>, i64), diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Total {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    // SQL: LEADS_SCOPE counted, then one page of it.
    let total: Total = diesel::sql_query(format!("SELECT count(*) AS n {LEADS_SCOPE}"))
        .bind::<SqlUuid, _>(account_id)
        .bind::<Date, _>(since)
        .bind::<Date, _>(until)
        .bind::<Text, _>(timezone)
        .get_result(conn)
        .await?;
    let rows: Vec<LeadRow> = diesel::sql_query(format!(
        "SELECT {LEAD_COLUMNS} {LEADS_SCOPE} ORDER BY da.first_message DESC, da.id LIMIT $5 OFFSET $6"
    ))
    .bind::<SqlUuid, _>(account_id)
    .bind::<Date, _>(since)
    .bind::<Date, _>(until)
    .bind::<Text, _>(timezone)
    .bind::<BigInt, _>(per_page)
    .bind::<BigInt, _>((page - 1).max(0) * per_page)
    .load(conn)
    .await?;
    Ok((rows.into_iter().map(LeadEvents::from).collect(), total.n))
}

/// Where the previous batch of an export ended: its last lead's first
/// message and dialog id.
pub type LeadsAfter = (DateTime<Utc>, DialogId);

/// The local days' bounds on `da.first_message` ($2 since, $3 until, $4 zone).
const RANGE: &str = "da.first_message >= ($2::date::timestamp AT TIME ZONE $4) \
     AND da.first_message < (($3::date + 1)::timestamp AT TIME ZONE $4)";
/// After the previous batch's last lead ($5 its first message, $6 its
/// dialog): the bound on `first_message` lets the index range start there.
const KEYSET: &str = "($5::timestamptz IS NULL OR (da.first_message <= $5 \
     AND (da.first_message, da.id) < ($5, $6)))";

/// Up to `limit` of the account's leads in the local days, newest first,
/// after `after` (keyset paging: each batch starts where the last ended,
/// so an export of any size reads batch by batch).
pub async fn leads_batch(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
    after: Option<LeadsAfter>,
    limit: i64,
) -> Result<Vec<LeadEvents>, diesel::result::Error> {
    // SQL: the same leads as LEADS_SCOPE, picked per direction (and per
    // instance for dialogs without one) through LATERAL keyset probes on the
    // (direction_id, first_message) index — a batch reads about `limit` rows
    // per direction whatever the range holds — then merged and joined.
    let rows: Vec<LeadRow> = diesel::sql_query(format!(
        "WITH picked AS ( \
           SELECT x.id, x.first_message FROM account_directions dirs CROSS JOIN LATERAL ( \
             SELECT da.id, da.first_message FROM dialog_analysis da \
             WHERE da.direction_id = dirs.id AND da.lead_id IS NOT NULL AND {RANGE} AND {KEYSET} \
             ORDER BY da.first_message DESC, da.id DESC LIMIT $7) x \
           WHERE dirs.user_account_id = $1 \
           UNION ALL \
           SELECT y.id, y.first_message FROM whatsapp_phone_numbers i CROSS JOIN LATERAL ( \
             SELECT da.id, da.first_message FROM dialog_analysis da \
             WHERE da.instance_name = i.instance_name AND da.direction_id IS NULL \
               AND da.lead_id IS NOT NULL AND {RANGE} AND {KEYSET} \
             ORDER BY da.first_message DESC, da.id DESC LIMIT $7) y \
           WHERE i.user_account_id = $1 \
           ORDER BY first_message DESC, id DESC LIMIT $7) \
         SELECT {LEAD_COLUMNS} FROM picked p JOIN dialog_analysis da ON da.id = p.id \
         JOIN leads l ON l.id = da.lead_id \
         LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = da.instance_name \
         LEFT JOIN account_directions ad ON ad.id = coalesce(da.direction_id, w.direction_id) \
         ORDER BY da.first_message DESC, da.id DESC"
    ))
    .bind::<SqlUuid, _>(account_id)
    .bind::<Date, _>(since)
    .bind::<Date, _>(until)
    .bind::<Text, _>(timezone)
    .bind::<Nullable<Timestamptz>, _>(after.map(|a| a.0))
    .bind::<SqlUuid, _>(after.map_or(Uuid::nil(), |a| a.1.into()))
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(LeadEvents::from).collect())
}

/// One attempt to send a lead's event, as the audit log holds it.
#[derive(Debug, Clone, QueryableByName, Serialize, PartialEq)]
pub struct Attempt {
    #[diesel(sql_type = Timestamptz)]
    pub at: DateTime<Utc>,
    #[diesel(sql_type = Int2)]
    pub level: i16,
    #[diesel(sql_type = Text)]
    pub event_name: String,
    #[diesel(sql_type = Text)]
    pub event_id: String,
    /// `success`, `error` or `skipped`.
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub attempt: i32,
    /// Why it was skipped (`too_old`, `no_pixel`, `no_dialog`, …) or the error's class.
    #[diesel(sql_type = Nullable<Text>)]
    pub reason: Option<String>,
    /// Meta's message, for a refusal.
    #[diesel(sql_type = Nullable<Text>)]
    pub message: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Int4>)]
    pub http_status: Option<i32>,
}

/// Every attempt for the dialog's events, oldest first (at most 500: a
/// dialog's four levels and its purchases never need more).
pub async fn attempts(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
) -> Result<Vec<Attempt>, diesel::result::Error> {
    // SQL: the audit log by dialog (its dialog_id index), the level as its number.
    diesel::sql_query(
        "SELECT created_at AS at, event_level AS level, event_name, event_id, status, attempt, reason, \
                error_message AS message, http_status \
         FROM capi_events_log WHERE dialog_id = $1 ORDER BY created_at, id LIMIT 500",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .load(conn)
    .await
}

/// A direction with CAPI on and how long ago Meta last accepted one of its
/// events (since the direction was created, when none ever was).
#[derive(Debug, Clone, QueryableByName)]
pub struct DirectionSilence {
    #[diesel(sql_type = SqlUuid)]
    pub direction_id: DirectionId,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = BigInt)]
    pub seconds: i64,
}

pub async fn direction_silences(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<DirectionSilence>, diesel::result::Error> {
    // SQL: a LATERAL newest-row probe per direction on the partial
    // (direction_id, created_at) index of successes.
    diesel::sql_query(
        "SELECT d.id AS direction_id, d.name, \
                extract(epoch FROM now() - coalesce(last.created_at, d.created_at))::bigint AS seconds \
         FROM account_directions d LEFT JOIN LATERAL ( \
           SELECT l.created_at FROM capi_events_log l \
           WHERE l.direction_id = d.id AND l.status = 'success' ORDER BY l.created_at DESC LIMIT 1) last ON true \
         WHERE d.capi_enabled",
    )
    .prepared()
    .load(conn)
    .await
}
