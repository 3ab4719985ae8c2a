//! CAPI deliveries: claiming a level once, leasing it for a send, and
//! recording every attempt in `capi_events_log`.

use crate::{
    PreparedExt,
    schema::{capi_deliveries, dialog_analysis},
};
use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, OptionalExtension, QueryDsl, QueryableByName, Selectable, SelectableHelper,
    sql_types::{Array, BigInt, Bool, Int2, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::{DialogId, DirectionId, EventId, UserAccountId};
use domain::{
    delivery::{AttemptStatus, DeliveryStatus},
    event_names::{ActionSource, name_or_default},
    level::Level,
};
use serde_json::Value;
use uuid::Uuid;

/// Claims `level` for a dialog. True for exactly one caller however many
/// replicas race; the caller queues the event in the same transaction.
pub async fn claim_level(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
    level: Level,
    event_id: &EventId,
    event_time: DateTime<Utc>,
) -> Result<bool, diesel::result::Error> {
    use capi_deliveries::dsl as d;
    let claimed: Option<i64> = diesel::insert_into(d::capi_deliveries)
        .values((
            d::dialog_id.eq(dialog_id),
            d::event_level.eq(level),
            d::event_id.eq(event_id),
            d::event_time.eq(event_time),
        ))
        .on_conflict((d::dialog_id, d::event_level, d::order_ref))
        .do_nothing()
        .returning(d::id)
        .get_result(conn)
        .await
        .optional()?;
    Ok(claimed.is_some())
}

/// Claims a purchase for a dialog: true once per (dialog, order
/// reference), however often the deal is edited or its webhook redelivered.
/// The caller queues the event in the same transaction.
pub async fn claim_purchase(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
    purchase: &domain::crm::purchase::Purchase,
    event_id: &EventId,
    event_time: DateTime<Utc>,
) -> Result<bool, diesel::result::Error> {
    // SQL: the amount is bound as text and cast to NUMERIC (exact, as the CRM wrote it) without a decimal crate; the conflict target is the (dialog, level, order) key.
    let claimed: Vec<Claimed> = diesel::sql_query(
        "INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, order_ref, purchase_value, purchase_currency) \
         VALUES ($1, $2, $3, $4, $5, $6::numeric, $7) \
         ON CONFLICT (dialog_id, event_level, order_ref) DO NOTHING RETURNING id",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .bind::<Int2, _>(Level::Purchase)
    .bind::<Text, _>(event_id)
    .bind::<Timestamptz, _>(event_time)
    .bind::<Text, _>(&purchase.order_ref)
    .bind::<Text, _>(&purchase.amount.text)
    .bind::<Text, _>(&purchase.currency)
    .load(conn)
    .await?;
    Ok(!claimed.is_empty())
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = BigInt)]
    #[allow(dead_code)]
    id: i64,
}

/// Everything needed to build and send one event. The token is read here
/// and nowhere else.
#[derive(Clone, QueryableByName)]
pub struct DeliveryContext {
    #[diesel(sql_type = BigInt)]
    pub delivery_id: i64,
    #[diesel(sql_type = Text)]
    pub status: DeliveryStatus,
    #[diesel(sql_type = Text)]
    pub event_id: EventId,
    #[diesel(sql_type = Timestamptz)]
    pub event_time: DateTime<Utc>,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    #[diesel(sql_type = Int2)]
    pub event_level: Level,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub lease_until: Option<DateTime<Utc>>,
    /// When its last request left, if nobody recorded the answer yet.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub sending_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = SqlUuid)]
    pub dialog_id: DialogId,
    #[diesel(sql_type = Nullable<Text>)]
    pub contact_phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub ctwa_clid: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub direction_id: Option<DirectionId>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub user_account_id: Option<UserAccountId>,
    #[diesel(sql_type = Nullable<Text>)]
    pub pixel_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub waba_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub event_name_interest: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub event_name_qualified: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub event_name_scheduled: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub event_name_interest_other: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub event_name_qualified_other: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub event_name_scheduled_other: Option<String>,
    /// The ad account's Meta token, else the user account's (sealed; open
    /// with `secrets::AD_ACCESS_TOKEN`).
    #[diesel(sql_type = Nullable<Text>, deserialize_as = Option<String>)]
    pub access_token: crate::secrets::Sealed,
    /// The secret of the app behind that token (`secrets::AD_APP_SECRET`).
    #[diesel(sql_type = Nullable<Text>, deserialize_as = Option<String>)]
    pub app_secret: crate::secrets::Sealed,
    /// Throttling is per ad account.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub ad_account_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub test_event_code: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub ldu_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub ldu_country: Option<i32>,
    #[diesel(sql_type = Nullable<Int4>)]
    pub ldu_state: Option<i32>,
    /// When the level was claimed (the start of the queue lag).
    #[diesel(sql_type = Timestamptz)]
    pub claimed_at: DateTime<Utc>,
    /// A purchase's deal or order (empty for the other levels)…
    #[diesel(sql_type = Text)]
    pub order_ref: String,
    /// …its amount…
    #[diesel(sql_type = Nullable<diesel::sql_types::Double>)]
    pub purchase_value: Option<f64>,
    /// …and ISO 4217 currency.
    #[diesel(sql_type = Nullable<Text>)]
    pub purchase_currency: Option<String>,
}

impl std::fmt::Debug for DeliveryContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryContext")
            .field("delivery_id", &self.delivery_id)
            .field("dialog_id", &self.dialog_id)
            .field("status", &self.status)
            .field("access_token", &self.access_token)
            .finish_non_exhaustive()
    }
}

impl DeliveryContext {
    /// The direction's Meta event name for `level` on `source` (a dialog
    /// without a direction: the default).
    pub fn event_name(&self, level: Level, source: ActionSource) -> &str {
        let [interest, qualified, scheduled] = match source {
            ActionSource::BusinessMessaging => [
                &self.event_name_interest,
                &self.event_name_qualified,
                &self.event_name_scheduled,
            ],
            ActionSource::Other => [
                &self.event_name_interest_other,
                &self.event_name_qualified_other,
                &self.event_name_scheduled_other,
            ],
        };
        let configured = match level {
            Level::Interest => interest,
            Level::Qualified => qualified,
            Level::Scheduled => scheduled,
            Level::Purchase => &None,
        };
        name_or_default(configured.as_deref(), level, source)
    }

    /// What the event reports: the level, or for a purchase its amount.
    pub fn conversion(&self) -> domain::capi_event::Conversion<'_> {
        use domain::capi_event::{Conversion, PurchaseFacts};
        match (self.event_level, &self.purchase_currency) {
            (Level::Purchase, Some(currency)) => Conversion::Purchase(PurchaseFacts {
                value: self.purchase_value.unwrap_or(f64::NAN),
                currency,
                order_ref: &self.order_ref,
            }),
            (level, _) => Conversion::Level(level),
        }
    }

    /// `business_messaging` when the dialog has a click id.
    pub fn action_source(&self) -> ActionSource {
        ActionSource::for_click(self.ctwa_clid.as_deref())
    }
}

/// The delivery with this event id (the bus message names it).
pub async fn delivery_context(
    conn: &mut AsyncPgConnection,
    event_id: &EventId,
) -> Result<Option<DeliveryContext>, diesel::result::Error> {
    Ok(delivery_contexts(conn, std::slice::from_ref(event_id))
        .await?
        .pop())
}

/// [`delivery_context`] for many event ids in one query.
pub async fn delivery_contexts(
    conn: &mut AsyncPgConnection,
    event_ids: &[EventId],
) -> Result<Vec<DeliveryContext>, diesel::result::Error> {
    // SQL: the event ids arrive as one array (the unique `event_id` index finds each), so a batch's deliveries load in one statement with their direction, ad account and token; the WABA a Cloud number's webhooks named comes before the direction's.
    diesel::sql_query(
        "SELECT cd.id AS delivery_id, cd.status, cd.event_id, cd.event_time, cd.attempts, cd.event_level, cd.lease_until, cd.sending_at, \
           d.id AS dialog_id, d.contact_phone, d.ctwa_clid, d.direction_id, ad.user_account_id, ad.pixel_id, \
           COALESCE(w.waba_id, ad.whatsapp_business_account_id) AS waba_id, ad.event_name_interest, ad.event_name_qualified, \
           ad.event_name_scheduled, ad.event_name_interest_other, ad.event_name_qualified_other, ad.event_name_scheduled_other, \
           COALESCE(NULLIF(acc.access_token, ''), NULLIF(u.access_token, '')) AS access_token, \
           CASE WHEN NULLIF(acc.access_token, '') IS NOT NULL THEN acc.app_secret ELSE u.app_secret END AS app_secret, \
           ad.ad_account_id, ad.test_event_code, ad.ldu_enabled, ad.ldu_country, ad.ldu_state, cd.claimed_at, \
           cd.order_ref, cd.purchase_value::float8 AS purchase_value, cd.purchase_currency \
         FROM capi_deliveries cd \
         JOIN dialog_analysis d ON d.id = cd.dialog_id \
         LEFT JOIN account_directions ad ON ad.id = d.direction_id \
         LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = d.instance_name \
         LEFT JOIN ad_accounts acc ON acc.id = ad.ad_account_id \
         LEFT JOIN user_accounts u ON u.id = ad.user_account_id \
         WHERE cd.event_id = ANY($1)",
    )
    .bind::<Array<Text>, _>(event_ids)
    .prepared()
    .load(conn)
    .await
}

#[derive(QueryableByName)]
struct Leased {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Int4)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    uncertain: bool,
}

/// A lease taken by [`lease_many`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    pub delivery_id: i64,
    /// The attempt number: the fencing token.
    pub attempt: i32,
    /// The previous attempt's request left and nobody recorded its answer
    /// (its sender died): Meta may already have the event.
    pub uncertain: bool,
}

/// Takes the send lease of pending deliveries (finished ones and ones another
/// sender holds are left out) in one statement. A delivery whose request
/// left with no answer recorded is taken only `uncertain_grace_secs` after
/// its lease ran out: a slow sender (not a dead one) records first.
pub async fn lease_many(
    conn: &mut AsyncPgConnection,
    delivery_ids: &[i64],
    lease_secs: i64,
    uncertain_grace_secs: i64,
) -> Result<Vec<Taken>, diesel::result::Error> {
    // SQL: a lease on the database clock (`now() + make_interval`), taken only where none runs (and, for a marked one, its grace is over too), for many rows, returning the fencing token.
    let rows: Vec<Leased> = diesel::sql_query(
        "UPDATE capi_deliveries SET lease_until = now() + make_interval(secs => $2), attempts = attempts + 1 \
         WHERE id = ANY($1) AND status = 'pending' AND (lease_until IS NULL OR lease_until < now()) \
           AND (sending_at IS NULL OR lease_until IS NULL OR lease_until + make_interval(secs => $3) < now()) \
         RETURNING id, attempts, sending_at IS NOT NULL AS uncertain",
    )
    .bind::<Array<BigInt>, _>(delivery_ids)
    .bind::<diesel::sql_types::Double, _>(lease_secs as f64)
    .bind::<diesel::sql_types::Double, _>(uncertain_grace_secs as f64)
    .prepared()
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Taken {
            delivery_id: r.id,
            attempt: r.attempts,
            uncertain: r.uncertain,
        })
        .collect())
}

/// Marks deliveries as being sent by `sender` and renews their leases, but
/// only where the attempt number is still the one the sender took (a fencing
/// token): a delivery another handler has leased since — after this lease
/// expired — is left out, so it is not sent twice. Returns the delivery ids
/// still owned; only those may go into the request.
pub async fn mark_sending(
    conn: &mut AsyncPgConnection,
    owned: &[(i64, i32)],
    lease_secs: i64,
    sender: &str,
) -> Result<Vec<i64>, diesel::result::Error> {
    let ids: Vec<i64> = owned.iter().map(|o| o.0).collect();
    let attempts: Vec<i32> = owned.iter().map(|o| o.1).collect();
    // SQL: fencing: `UPDATE … FROM unnest(ids, attempts)` renews and marks only the leases whose attempt is still ours.
    let rows: Vec<DeliveryId> = diesel::sql_query(
        "UPDATE capi_deliveries cd SET lease_until = now() + make_interval(secs => $3), sending_at = now(), sending_by = $4 \
         FROM unnest($1::bigint[], $2::int4[]) AS x(id, attempts) \
         WHERE cd.id = x.id AND cd.attempts = x.attempts AND cd.status = 'pending' RETURNING cd.id",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<Int4>, _>(&attempts)
    .bind::<diesel::sql_types::Double, _>(lease_secs as f64)
    .bind::<Text, _>(sender)
    .prepared()
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[derive(QueryableByName)]
struct DeliveryId {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Hands leases back unused (the sender is stopping before their request
/// left): free at once for another sender, and the attempt not counted.
/// Fenced like [`mark_sending`]; returns how many were handed back.
pub async fn return_unsent(
    conn: &mut AsyncPgConnection,
    owned: &[(i64, i32)],
) -> Result<usize, diesel::result::Error> {
    if owned.is_empty() {
        return Ok(0);
    }
    let ids: Vec<i64> = owned.iter().map(|o| o.0).collect();
    let attempts: Vec<i32> = owned.iter().map(|o| o.1).collect();
    // SQL: fencing as in mark_sending; the attempt the lease took is given back.
    diesel::sql_query(
        "UPDATE capi_deliveries cd SET lease_until = NULL, attempts = cd.attempts - 1, sending_at = NULL, sending_by = NULL \
         FROM unnest($1::bigint[], $2::int4[]) AS x(id, attempts) \
         WHERE cd.id = x.id AND cd.attempts = x.attempts AND cd.status = 'pending'",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<Int4>, _>(&attempts)
    .execute(conn)
    .await
}

/// One row of `capi_events_log`. `request` must not contain the token.
#[derive(Debug, Clone)]
pub struct LogEntry<'a> {
    /// `None` for a level reached in a CRM that no dialog could be joined to.
    pub dialog_id: Option<DialogId>,
    pub direction_id: Option<DirectionId>,
    pub user_account_id: Option<UserAccountId>,
    pub level: Level,
    pub event_name: &'a str,
    pub event_id: &'a EventId,
    pub pixel_id: Option<&'a str>,
    pub status: AttemptStatus,
    pub attempt: i32,
    pub reason: Option<&'a str>,
    pub request: Option<&'a Value>,
    pub response: Option<&'a Value>,
    pub http_status: Option<i32>,
    pub error_message: Option<&'a str>,
    pub duration_ms: Option<i32>,
    pub batch_id: Option<Uuid>,
    pub batch_size: Option<i32>,
    pub fbtrace_id: Option<&'a str>,
}

#[derive(diesel::Insertable)]
#[diesel(table_name = crate::schema::capi_events_log)]
struct NewLogRow<'a> {
    dialog_id: Option<DialogId>,
    direction_id: Option<DirectionId>,
    user_account_id: Option<UserAccountId>,
    event_level: Level,
    event_name: &'a str,
    event_id: &'a EventId,
    pixel_id: Option<&'a str>,
    status: AttemptStatus,
    attempt: i32,
    reason: Option<&'a str>,
    request: Option<&'a Value>,
    response: Option<&'a Value>,
    http_status: Option<i32>,
    error_message: Option<&'a str>,
    duration_ms: Option<i32>,
    batch_id: Option<Uuid>,
    batch_size: Option<i32>,
    fbtrace_id: Option<&'a str>,
}

impl<'a> From<&'a LogEntry<'a>> for NewLogRow<'a> {
    fn from(e: &'a LogEntry<'a>) -> Self {
        NewLogRow {
            dialog_id: e.dialog_id,
            direction_id: e.direction_id,
            user_account_id: e.user_account_id,
            event_level: e.level,
            event_name: e.event_name,
            event_id: e.event_id,
            pixel_id: e.pixel_id,
            status: e.status,
            attempt: e.attempt,
            reason: e.reason,
            request: e.request,
            response: e.response,
            http_status: e.http_status,
            error_message: e.error_message,
            duration_ms: e.duration_ms,
            batch_id: e.batch_id,
            batch_size: e.batch_size,
            fbtrace_id: e.fbtrace_id,
        }
    }
}

/// Many attempts in one statement (a batch's rows).
pub async fn insert_logs(
    conn: &mut AsyncPgConnection,
    entries: &[LogEntry<'_>],
) -> Result<(), diesel::result::Error> {
    if entries.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewLogRow<'_>> = entries.iter().map(NewLogRow::from).collect();
    diesel::insert_into(crate::schema::capi_events_log::table)
        .values(&rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// One delivery to close: its row, level and event id (its dialog is the
/// row's, which a merge of one person's dialogs may have changed since the
/// event was queued).
#[derive(Debug, Clone)]
pub struct Finished<'a> {
    pub delivery_id: i64,
    pub level: Level,
    pub event_id: &'a EventId,
}

/// Closes many deliveries with one status; on success also sets each
/// dialog's `capi_<level>_sent` flags (once). One statement whatever the mix
/// of levels, so its plan is prepared once per connection.
pub async fn finish_many(
    conn: &mut AsyncPgConnection,
    done: &[Finished<'_>],
    status: AttemptStatus,
) -> Result<(), diesel::result::Error> {
    if done.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = done.iter().map(|d| d.delivery_id).collect();
    let levels: Vec<Level> = done.iter().map(|d| d.level).collect();
    let event_ids: Vec<&str> = done.iter().map(|d| d.event_id.as_str()).collect();
    // A dialog may appear with several levels in one batch: one row per
    // dialog, each level's event id in its own column.
    // SQL: a CTE over `unnest` closes the deliveries and folds each dialog's levels into its sent flags in one statement.
    diesel::sql_query(
        "WITH x AS (SELECT * FROM unnest($1::bigint[], $2::int2[], $3::text[]) AS x(id, level, event_id)), \
         closed AS (UPDATE capi_deliveries cd SET status = $4, finished_at = now(), lease_until = NULL, sending_at = NULL, sending_by = NULL \
                    FROM x WHERE cd.id = x.id RETURNING cd.id, cd.dialog_id), \
         sent AS (SELECT closed.dialog_id, \
                    max(event_id) FILTER (WHERE level = 1) AS e1, \
                    max(event_id) FILTER (WHERE level = 2) AS e2, \
                    max(event_id) FILTER (WHERE level = 3) AS e3 \
                  FROM x JOIN closed ON closed.id = x.id WHERE $4 = 'success' GROUP BY closed.dialog_id) \
         UPDATE dialog_analysis d SET \
           capi_interest_sent_at  = CASE WHEN NOT d.capi_interest_sent  AND s.e1 IS NOT NULL THEN now() ELSE d.capi_interest_sent_at END, \
           capi_interest_event_id = CASE WHEN NOT d.capi_interest_sent  AND s.e1 IS NOT NULL THEN s.e1 ELSE d.capi_interest_event_id END, \
           capi_interest_sent     = d.capi_interest_sent OR s.e1 IS NOT NULL, \
           capi_qualified_sent_at  = CASE WHEN NOT d.capi_qualified_sent AND s.e2 IS NOT NULL THEN now() ELSE d.capi_qualified_sent_at END, \
           capi_qualified_event_id = CASE WHEN NOT d.capi_qualified_sent AND s.e2 IS NOT NULL THEN s.e2 ELSE d.capi_qualified_event_id END, \
           capi_qualified_sent     = d.capi_qualified_sent OR s.e2 IS NOT NULL, \
           capi_scheduled_sent_at  = CASE WHEN NOT d.capi_scheduled_sent AND s.e3 IS NOT NULL THEN now() ELSE d.capi_scheduled_sent_at END, \
           capi_scheduled_event_id = CASE WHEN NOT d.capi_scheduled_sent AND s.e3 IS NOT NULL THEN s.e3 ELSE d.capi_scheduled_event_id END, \
           capi_scheduled_sent     = d.capi_scheduled_sent OR s.e3 IS NOT NULL, \
           updated_at = now() \
         FROM sent s WHERE d.id = s.dialog_id",
    )
    .bind::<Array<BigInt>, _>(&ids)
    .bind::<Array<Int2>, _>(&levels)
    .bind::<Array<Text>, _>(&event_ids)
    .bind::<Text, _>(DeliveryStatus::from(status))
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives many leases back (their events will be retried).
pub async fn release_many(
    conn: &mut AsyncPgConnection,
    delivery_ids: &[i64],
) -> Result<(), diesel::result::Error> {
    if delivery_ids.is_empty() {
        return Ok(());
    }
    use capi_deliveries::dsl as d;
    diesel::update(
        d::capi_deliveries
            .filter(d::id.eq_any(delivery_ids))
            .filter(d::status.eq(DeliveryStatus::Pending)),
    )
    .set((
        d::lease_until.eq(None::<DateTime<Utc>>),
        // Meta answered: the request's outcome is known.
        d::sending_at.eq(None::<DateTime<Utc>>),
        d::sending_by.eq(None::<String>),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes one delivery (see [`finish_many`]).
pub async fn finish(
    conn: &mut AsyncPgConnection,
    delivery_id: i64,
    level: Level,
    event_id: &EventId,
    status: AttemptStatus,
) -> Result<(), diesel::result::Error> {
    finish_many(
        conn,
        &[Finished {
            delivery_id,
            level,
            event_id,
        }],
        status,
    )
    .await
}

/// The three sent flags of a dialog (for operators and tests).
#[derive(Debug, Clone, PartialEq, Eq, diesel::Queryable, Selectable)]
#[diesel(table_name = dialog_analysis, check_for_backend(diesel::pg::Pg))]
pub struct SentFlags {
    pub capi_interest_sent: bool,
    pub capi_qualified_sent: bool,
    pub capi_scheduled_sent: bool,
    pub capi_interest_event_id: Option<String>,
}

pub async fn sent_flags(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
) -> Result<Option<SentFlags>, diesel::result::Error> {
    dialog_analysis::table
        .find(dialog_id)
        .select(SentFlags::as_select())
        .get_result(conn)
        .await
        .optional()
}
