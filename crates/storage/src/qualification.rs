//! What qualification reads about a dialog, the transcript it sends the
//! model, and the record of each analysis: the audit row, the dialog's
//! stored judgement and token counters, and model usage per direction/day.

use crate::PreparedExt;
use chrono::{DateTime, Utc};
use diesel::{
    OptionalExtension, QueryableByName,
    sql_types::{
        Array, BigInt, Bool, Int2, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid,
    },
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

/// A dialog as qualification sees it, with its direction's settings.
#[derive(Debug, Clone, QueryableByName)]
pub struct DialogForQualification {
    #[diesel(sql_type = SqlUuid)]
    pub dialog_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub direction_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub direction_name: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub capi_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    pub capi_source: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub pixel_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub qualification_prompt: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub customer_messages: i64,
    /// When the customer's second message was sent: the moment level 1 was reached.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub second_customer_message_at: Option<DateTime<Utc>>,
    /// The newest customer message (id and time).
    #[diesel(sql_type = Nullable<BigInt>)]
    pub last_customer_message_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_customer_message_at: Option<DateTime<Utc>>,
    /// The oldest customer message no analysis has read yet.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub first_unanalyzed_at: Option<DateTime<Utc>>,
    /// The newest customer message the last analysis read.
    #[diesel(sql_type = Nullable<BigInt>)]
    pub analyzed_message_id: Option<i64>,
    /// The newest flushed buffer: a `dialog.ready` with a lower seq is stale.
    #[diesel(sql_type = BigInt)]
    pub buffer_flushed_seq: i64,
    /// Levels claimed so far (1, 2, 3).
    #[diesel(sql_type = Array<Int2>)]
    pub claimed_levels: Vec<i16>,
}

pub async fn dialog_for_qualification(
    conn: &mut AsyncPgConnection,
    dialog_id: Uuid,
) -> Result<Option<DialogForQualification>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT d.id AS dialog_id, d.direction_id, ad.name AS direction_name, ad.capi_enabled, \
           ad.capi_source, ad.pixel_id, ad.qualification_prompt, \
           c.n AS customer_messages, c.last_id AS last_customer_message_id, c.last_at AS last_customer_message_at, \
           (SELECT m.sent_at FROM dialog_messages m WHERE m.dialog_id = d.id AND m.author = 'customer' \
              ORDER BY m.sent_at, m.id OFFSET 1 LIMIT 1) AS second_customer_message_at, \
           (SELECT min(m.sent_at) FROM dialog_messages m WHERE m.dialog_id = d.id AND m.author = 'customer' \
              AND m.id > coalesce(d.analyzed_message_id, 0)) AS first_unanalyzed_at, \
           d.analyzed_message_id, d.buffer_flushed_seq, \
           ARRAY(SELECT cd.event_level FROM capi_deliveries cd WHERE cd.dialog_id = d.id ORDER BY 1) AS claimed_levels \
         FROM dialog_analysis d \
         LEFT JOIN account_directions ad ON ad.id = d.direction_id \
         CROSS JOIN LATERAL (SELECT count(*) AS n, max(m.id) AS last_id, max(m.sent_at) AS last_at \
              FROM dialog_messages m WHERE m.dialog_id = d.id AND m.author = 'customer') c \
         WHERE d.id = $1",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .prepared()
    .get_result(conn)
    .await
    .optional()
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = BigInt)]
    id: i64,
}

/// Customer messages after `after`, oldest first (the per-message policy
/// analyses each).
pub async fn customer_messages_after(
    conn: &mut AsyncPgConnection,
    dialog_id: Uuid,
    after: i64,
) -> Result<Vec<i64>, diesel::result::Error> {
    let rows: Vec<Id> = diesel::sql_query(
        "SELECT id FROM dialog_messages WHERE dialog_id = $1 AND author = 'customer' AND id > $2 ORDER BY id",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .bind::<BigInt, _>(after)
    .prepared()
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// One analysis, as recorded.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub dialog_id: Uuid,
    pub direction_id: Option<Uuid>,
    pub through_message_id: i64,
    pub model: &'a str,
    /// The model's answer, when it was usable.
    pub result: Option<&'a Value>,
    pub error: Option<&'a str>,
    pub reached_level: Option<i16>,
    /// What the answer sets on the dialog: interest level, funnel stage, reason.
    pub judgement: Option<(&'a str, &'a str, &'a str)>,
    pub llm_calls: i32,
    pub prompt_tokens: i32,
    pub completion_tokens: i32,
    pub duration_ms: i32,
}

/// Writes the audit row, moves the dialog's analysed mark forward (never
/// back), stores the judgement on success, and adds the tokens to the
/// dialog's and the direction's daily counters.
pub async fn record_run(
    conn: &mut AsyncPgConnection,
    r: &Run<'_>,
) -> Result<(), diesel::result::Error> {
    let status = if r.error.is_none() { "ok" } else { "error" };
    diesel::sql_query(
        "INSERT INTO qualification_runs (dialog_id, direction_id, through_message_id, model, status, error, \
           result, reached_level, llm_calls, prompt_tokens, completion_tokens, duration_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind::<SqlUuid, _>(r.dialog_id)
    .bind::<Nullable<SqlUuid>, _>(r.direction_id)
    .bind::<BigInt, _>(r.through_message_id)
    .bind::<Text, _>(r.model)
    .bind::<Text, _>(status)
    .bind::<Nullable<Text>, _>(r.error)
    .bind::<Nullable<Jsonb>, _>(r.result)
    .bind::<Nullable<Int2>, _>(r.reached_level)
    .bind::<Int4, _>(r.llm_calls)
    .bind::<Int4, _>(r.prompt_tokens)
    .bind::<Int4, _>(r.completion_tokens)
    .bind::<Int4, _>(r.duration_ms)
    .prepared()
    .execute(conn)
    .await?;
    let (interest, stage, reason) = match r.judgement {
        Some((i, s, why)) => (Some(i), Some(s), Some(why)),
        None => (None, None, None),
    };
    diesel::sql_query(
        "UPDATE dialog_analysis SET \
           analyzed_message_id = greatest(coalesce(analyzed_message_id, 0), $2), \
           analysis_status = $3, \
           interest_level = coalesce($4, interest_level), \
           funnel_stage = coalesce($5, funnel_stage), \
           qualification_reason = coalesce($6, qualification_reason), \
           analyzed_at = now(), \
           llm_calls = llm_calls + $7, \
           llm_prompt_tokens = llm_prompt_tokens + $8, \
           llm_completion_tokens = llm_completion_tokens + $9, \
           updated_at = now() \
         WHERE id = $1",
    )
    .bind::<SqlUuid, _>(r.dialog_id)
    .bind::<BigInt, _>(r.through_message_id)
    .bind::<Text, _>(status)
    .bind::<Nullable<Text>, _>(interest)
    .bind::<Nullable<Text>, _>(stage)
    .bind::<Nullable<Text>, _>(reason)
    .bind::<Int4, _>(r.llm_calls)
    .bind::<BigInt, _>(i64::from(r.prompt_tokens))
    .bind::<BigInt, _>(i64::from(r.completion_tokens))
    .prepared()
    .execute(conn)
    .await?;
    if let Some(direction_id) = r.direction_id {
        crate::usage::add(
            conn,
            direction_id,
            crate::usage::Purpose::Qualification,
            r.llm_calls,
            r.prompt_tokens,
            r.completion_tokens,
        )
        .await?;
    }
    Ok(())
}

/// Sets (or with `None` clears) a direction's qualification prompt; false if
/// there is no such direction.
pub async fn set_prompt(
    conn: &mut AsyncPgConnection,
    direction_id: Uuid,
    prompt: Option<&str>,
) -> Result<bool, diesel::result::Error> {
    let n = diesel::sql_query(
        "UPDATE account_directions SET qualification_prompt = $2, updated_at = now() WHERE id = $1",
    )
    .bind::<SqlUuid, _>(direction_id)
    .bind::<Nullable<Text>, _>(prompt)
    .prepared()
    .execute(conn)
    .await?;
    Ok(n == 1)
}

#[derive(QueryableByName)]
struct PromptRow {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Nullable<Text>)]
    qualification_prompt: Option<String>,
}

/// A direction's name and qualification prompt; `None` if there is no such direction.
pub async fn prompt(
    conn: &mut AsyncPgConnection,
    direction_id: Uuid,
) -> Result<Option<(String, Option<String>)>, diesel::result::Error> {
    let row: Option<PromptRow> = diesel::sql_query(
        "SELECT name, qualification_prompt FROM account_directions WHERE id = $1",
    )
    .bind::<SqlUuid, _>(direction_id)
    .prepared()
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| (r.name, r.qualification_prompt)))
}
