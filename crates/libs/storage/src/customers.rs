//! One customer's personal data: erasure (`capi customer forget`). The
//! person is found by phone (digits) and, through the dialogs found, by
//! every WhatsApp LID/BSUID those dialogs carried. Their rows stay, so the
//! reports' past counts do not change; what names or quotes them is blanked:
//! message texts, the bot's replies, phone, LID, names, click ids, the
//! model's reasons and results, the audit log's requests and answers (which
//! hold the hashed phone), and CRM change bodies that carry the phone. Events
//! not sent yet are cancelled, each with an `erased` audit row. Bus and
//! outbox messages carry only ids: a worker that reads the row afterwards
//! finds it blank (and the sender finds the delivery closed).

use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::ids::UserAccountId;
use serde::Serialize;
use uuid::Uuid;

/// What an erasure changed, per kind of data (0 everywhere the second time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub dialogs: i64,
    pub leads: i64,
    pub messages: i64,
    pub bot_replies: i64,
    pub qualification_runs: i64,
    pub audit_rows: i64,
    pub events_cancelled: i64,
    pub crm_changes: i64,
}

#[derive(QueryableByName)]
struct Found {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The person's dialogs: by phone, then by every LID those carried.
async fn dialogs_of(
    conn: &mut AsyncPgConnection,
    phone: &str,
    account: Option<UserAccountId>,
) -> Result<Vec<Uuid>, diesel::result::Error> {
    // SQL: the account of a dialog is its direction's, else its instance's
    // (coalesce over two joins); a second pass adds the dialogs known by a
    // LID the first ones carried.
    let found: Vec<Found> = diesel::sql_query(
        "WITH scoped AS ( \
           SELECT da.id, da.contact_phone, da.contact_key, da.contact_lid FROM dialog_analysis da \
           LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = da.instance_name \
           LEFT JOIN account_directions ad ON ad.id = coalesce(da.direction_id, w.direction_id) \
           WHERE $2::uuid IS NULL OR coalesce(ad.user_account_id, w.user_account_id) = $2), \
         by_phone AS (SELECT id, contact_lid FROM scoped WHERE contact_phone = $1 OR contact_key = $1) \
         SELECT id FROM by_phone \
         UNION SELECT s.id FROM scoped s \
           WHERE s.contact_lid IN (SELECT contact_lid FROM by_phone WHERE contact_lid IS NOT NULL) \
              OR s.contact_key IN (SELECT contact_lid FROM by_phone WHERE contact_lid IS NOT NULL)",
    )
    .bind::<Text, _>(phone)
    .bind::<Nullable<SqlUuid>, _>(account)
    .load(conn)
    .await?;
    Ok(found.into_iter().map(|f| f.id).collect())
}

/// A counting statement over the dialogs ($1).
async fn run(
    conn: &mut AsyncPgConnection,
    sql: &str,
    dialogs: &[Uuid],
) -> Result<i64, diesel::result::Error> {
    let c: Count = diesel::sql_query(sql)
        .bind::<Array<SqlUuid>, _>(dialogs)
        .get_result(conn)
        .await?;
    Ok(c.n)
}

/// Erases the person with this phone (digits with country code) in
/// `account`'s data (every account's when `None`), and records in
/// `erasures` that it happened (who asked, the counts; not the phone).
/// Idempotent: a second run finds nothing and records nothing.
pub async fn forget(
    conn: &mut AsyncPgConnection,
    phone: &str,
    account: Option<UserAccountId>,
    requested_by: &str,
) -> Result<Erased, diesel::result::Error> {
    conn.transaction(async |conn| {
        let dialogs = dialogs_of(conn, phone, account).await?;
        if dialogs.is_empty() {
            return Ok(Erased::default());
        }
        // SQL (each): a CTE updating the rows and counting only those that
        // still held something, so a second erasure counts nothing.
        let messages = run(
            conn,
            "WITH u AS (UPDATE dialog_messages SET text = NULL \
               WHERE dialog_id = ANY($1) AND text IS NOT NULL RETURNING 1) \
             SELECT count(*) AS n FROM u",
            &dialogs,
        )
        .await?;
        let bot_replies = run(
            conn,
            "WITH u AS (UPDATE bot_replies SET reply_text = NULL \
               WHERE dialog_id = ANY($1) AND reply_text IS NOT NULL RETURNING 1) \
             SELECT count(*) AS n FROM u",
            &dialogs,
        )
        .await?;
        let qualification_runs = run(
            conn,
            "WITH u AS (UPDATE qualification_runs SET result = NULL, error = NULL \
               WHERE dialog_id = ANY($1) AND (result IS NOT NULL OR error IS NOT NULL) \
               RETURNING 1) SELECT count(*) AS n FROM u",
            &dialogs,
        )
        .await?;
        // Events not sent yet: closed as skipped, each audited `erased`.
        let events_cancelled = run(
            conn,
            "WITH c AS (UPDATE capi_deliveries cd SET status = 'skipped', finished_at = now(), lease_until = NULL \
               WHERE cd.dialog_id = ANY($1) AND cd.status = 'pending' \
               RETURNING cd.dialog_id, cd.event_level, cd.event_id, cd.attempts), \
             a AS (INSERT INTO capi_events_log (dialog_id, direction_id, user_account_id, event_level, event_name, \
                     event_id, status, attempt, reason) \
               SELECT c.dialog_id, da.direction_id, ad.user_account_id, c.event_level, 'erased', c.event_id, \
                      'skipped', c.attempts, 'erased' \
               FROM c JOIN dialog_analysis da ON da.id = c.dialog_id \
               LEFT JOIN account_directions ad ON ad.id = da.direction_id RETURNING 1) \
             SELECT count(*) AS n FROM a",
            &dialogs,
        )
        .await?;
        let audit_rows = run(
            conn,
            "WITH u AS (UPDATE capi_events_log SET request = NULL, response = NULL \
               WHERE dialog_id = ANY($1) AND (request IS NOT NULL OR response IS NOT NULL) \
               RETURNING 1) SELECT count(*) AS n FROM u",
            &dialogs,
        )
        .await?;
        // CRM bodies of the account's connections that carry the phone's
        // digits (in any formatting): the body is dropped, the row (and
        // its outcome: which levels it gave) kept.
        let crm_changes: Count = diesel::sql_query(
            "WITH u AS (UPDATE crm_changes ch SET change = '{}'::jsonb \
               FROM crm_connections c \
               WHERE c.id = ch.connection_id AND ch.change <> '{}'::jsonb \
                 AND c.user_account_id IN ( \
                   SELECT coalesce(ad.user_account_id, w.user_account_id) FROM dialog_analysis da \
                   LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = da.instance_name \
                   LEFT JOIN account_directions ad ON ad.id = coalesce(da.direction_id, w.direction_id) \
                   WHERE da.id = ANY($1)) \
                 AND strpos(regexp_replace(ch.change::text, '[^0-9]', '', 'g'), $2) > 0 \
               RETURNING 1) SELECT count(*) AS n FROM u",
        )
        .bind::<Array<SqlUuid>, _>(&dialogs)
        .bind::<Text, _>(phone)
        .get_result(conn)
        .await?;
        let crm_changes = crm_changes.n;
        let leads = run(
            conn,
            "WITH u AS (UPDATE leads SET contact_key = 'erased:' || id, contact_phone = NULL, \
                 contact_lid = NULL, name = NULL, ctwa_clid = NULL \
               WHERE id IN (SELECT lead_id FROM dialog_analysis WHERE id = ANY($1)) \
                 AND contact_key NOT LIKE 'erased:%' RETURNING 1) \
             SELECT count(*) AS n FROM u",
            &dialogs,
        )
        .await?;
        let dialogs = run(
            conn,
            "WITH u AS (UPDATE dialog_analysis SET contact_key = 'erased:' || id, contact_phone = NULL, \
                 contact_lid = NULL, contact_name = NULL, ctwa_clid = NULL, ad_context = NULL, \
                 qualification_reason = NULL \
               WHERE id = ANY($1) AND contact_key NOT LIKE 'erased:%' RETURNING 1) \
             SELECT count(*) AS n FROM u",
            &dialogs,
        )
        .await?;
        let erased = Erased {
            dialogs,
            leads,
            messages,
            bot_replies,
            qualification_runs,
            audit_rows,
            events_cancelled,
            crm_changes,
        };
        if erased != Erased::default() {
            record(conn, account, requested_by, &erased).await?;
        }
        Ok(erased)
    })
    .await
}

/// That an erasure happened, by whom and what it changed — never whose.
async fn record(
    conn: &mut AsyncPgConnection,
    account: Option<UserAccountId>,
    requested_by: &str,
    erased: &Erased,
) -> Result<(), diesel::result::Error> {
    // SQL: a plain insert of the counts as JSON (the table is outside the hot paths).
    diesel::sql_query(
        "INSERT INTO erasures (user_account_id, requested_by, erased) VALUES ($1, $2, $3)",
    )
    .bind::<Nullable<SqlUuid>, _>(account)
    .bind::<Text, _>(requested_by)
    .bind::<diesel::sql_types::Jsonb, _>(serde_json::to_value(erased).unwrap_or_default())
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Document {
    #[diesel(sql_type = diesel::sql_types::Jsonb)]
    doc: serde_json::Value,
}

/// Everything held about the person with this phone in `account`'s data
/// (every account's when `None`), as one JSON document: each dialog with
/// its contact details, levels with times, messages, the bot's replies,
/// the events sent with their ids and outcomes, and the CRM changes whose
/// body carries the phone. `dialogs: []` when nothing is held.
pub async fn export(
    conn: &mut AsyncPgConnection,
    phone: &str,
    account: Option<UserAccountId>,
) -> Result<serde_json::Value, diesel::result::Error> {
    let dialogs = dialogs_of(conn, phone, account).await?;
    // SQL: one document built by PostgreSQL (jsonb_agg per kind, ordered),
    // so a person with thousands of messages is one round trip.
    let d: Document = diesel::sql_query(
        "SELECT jsonb_build_object( \
           'phone', $2::text, \
           'dialogs', coalesce((SELECT jsonb_agg(jsonb_build_object( \
               'dialog_id', da.id, 'instance', da.instance_name, 'direction_id', da.direction_id, \
               'phone', da.contact_phone, 'whatsapp_id', da.contact_lid, 'name', da.contact_name, \
               'first_message', da.first_message, 'last_message', da.last_message, \
               'from_ad', da.from_ad, 'ctwa_clid', da.ctwa_clid, 'ad_id', da.ad_id, \
               'interest_level', da.interest_level, 'qualification_reason', da.qualification_reason, \
               'levels', jsonb_build_object( \
                 'interest', CASE WHEN da.capi_interest_sent THEN da.capi_interest_sent_at END, \
                 'qualified', CASE WHEN da.capi_qualified_sent THEN da.capi_qualified_sent_at END, \
                 'scheduled', CASE WHEN da.capi_scheduled_sent THEN da.capi_scheduled_sent_at END), \
               'messages', coalesce((SELECT jsonb_agg(jsonb_build_object('sent_at', m.sent_at, \
                   'from_business', m.from_me, 'author', m.author, 'text', m.text, 'type', m.message_type) \
                   ORDER BY m.sent_at, m.id) FROM dialog_messages m WHERE m.dialog_id = da.id), '[]'::jsonb), \
               'bot_replies', coalesce((SELECT jsonb_agg(jsonb_build_object('at', b.created_at, \
                   'status', b.status, 'text', b.reply_text) ORDER BY b.id) \
                   FROM bot_replies b WHERE b.dialog_id = da.id), '[]'::jsonb), \
               'events', coalesce((SELECT jsonb_agg(jsonb_build_object('at', l.created_at, \
                   'level', l.event_level, 'event_name', l.event_name, 'event_id', l.event_id, \
                   'status', l.status, 'reason', l.reason) ORDER BY l.created_at, l.id) \
                   FROM capi_events_log l WHERE l.dialog_id = da.id), '[]'::jsonb)) \
             ORDER BY da.first_message, da.id) \
             FROM dialog_analysis da WHERE da.id = ANY($1)), '[]'::jsonb), \
           'crm_changes', coalesce((SELECT jsonb_agg(jsonb_build_object('received_at', ch.received_at, \
               'entity', ch.entity, 'entity_id', ch.entity_id, 'action', ch.action, 'body', ch.change) \
               ORDER BY ch.id) \
             FROM crm_changes ch JOIN crm_connections c ON c.id = ch.connection_id \
             WHERE ($3::uuid IS NULL OR c.user_account_id = $3) \
               AND strpos(regexp_replace(ch.change::text, '[^0-9]', '', 'g'), $2) > 0), '[]'::jsonb) \
         ) AS doc",
    )
    .bind::<Array<SqlUuid>, _>(&dialogs)
    .bind::<Text, _>(phone)
    .bind::<Nullable<SqlUuid>, _>(account)
    .get_result(conn)
    .await?;
    Ok(d.doc)
}
