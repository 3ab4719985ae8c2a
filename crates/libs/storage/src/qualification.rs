//! What qualification reads about a dialog, the transcript it sends the
//! model, and the record of each analysis: the audit row, the dialog's
//! stored judgement and token counters, and model usage per direction/day.

use crate::{
    PreparedExt,
    schema::{account_directions, dialog_analysis, dialog_messages, qualification_runs},
    sql_functions::{coalesce, greatest},
};
use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, OptionalExtension, QueryDsl, QueryableByName,
    dsl::now,
    sql_types::{Array, BigInt, Bool, Int2, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::{DialogId, DirectionId};
pub use domain::qualification::DialogForQualification;
use domain::{
    conversation::Author,
    level::{CapiSource, Level},
    qualification::{AnalysisStatus, FunnelStage, InterestLevel},
};
use serde_json::Value;

#[derive(QueryableByName)]
struct DialogRow {
    #[diesel(sql_type = SqlUuid)]
    dialog_id: DialogId,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    direction_id: Option<DirectionId>,
    #[diesel(sql_type = Nullable<Text>)]
    direction_name: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    capi_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    capi_source: Option<CapiSource>,
    #[diesel(sql_type = Nullable<Text>)]
    pixel_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    qualification_prompt: Option<String>,
    #[diesel(sql_type = BigInt)]
    customer_messages: i64,
    /// When the customer's second message was sent: the moment level 1 was reached.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    second_customer_message_at: Option<DateTime<Utc>>,
    /// The newest customer message (id and time).
    #[diesel(sql_type = Nullable<BigInt>)]
    last_customer_message_id: Option<i64>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_customer_message_at: Option<DateTime<Utc>>,
    /// The oldest customer message no analysis has read yet.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    first_unanalyzed_at: Option<DateTime<Utc>>,
    /// The newest customer message the last analysis read.
    #[diesel(sql_type = Nullable<BigInt>)]
    analyzed_message_id: Option<i64>,
    /// The newest customer burst received (flushed or not).
    #[diesel(sql_type = BigInt)]
    buffer_seq: i64,
    /// Levels claimed so far.
    #[diesel(sql_type = Array<Int2>)]
    claimed_levels: Vec<Level>,
}

impl From<DialogRow> for DialogForQualification {
    fn from(r: DialogRow) -> Self {
        DialogForQualification {
            dialog_id: r.dialog_id,
            direction_id: r.direction_id,
            direction_name: r.direction_name,
            capi_enabled: r.capi_enabled,
            capi_source: r.capi_source,
            pixel_id: r.pixel_id,
            qualification_prompt: r.qualification_prompt,
            customer_messages: r.customer_messages,
            second_customer_message_at: r.second_customer_message_at,
            last_customer_message_id: r.last_customer_message_id,
            last_customer_message_at: r.last_customer_message_at,
            first_unanalyzed_at: r.first_unanalyzed_at,
            analyzed_message_id: r.analyzed_message_id,
            buffer_seq: r.buffer_seq,
            claimed_levels: r.claimed_levels,
        }
    }
}

pub async fn dialog_for_qualification(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
) -> Result<Option<DialogForQualification>, diesel::result::Error> {
    // SQL: a LATERAL aggregate and correlated subqueries (second customer message, first unread one, claimed levels as an ARRAY) in one read.
    diesel::sql_query(
        "SELECT d.id AS dialog_id, d.direction_id, ad.name AS direction_name, ad.capi_enabled, \
           ad.capi_source, ad.pixel_id, ad.qualification_prompt, \
           c.n AS customer_messages, c.last_id AS last_customer_message_id, c.last_at AS last_customer_message_at, \
           (SELECT m.sent_at FROM dialog_messages m WHERE m.dialog_id = d.id AND m.author = 'customer' \
              ORDER BY m.sent_at, m.id OFFSET 1 LIMIT 1) AS second_customer_message_at, \
           (SELECT min(m.sent_at) FROM dialog_messages m WHERE m.dialog_id = d.id AND m.author = 'customer' \
              AND m.id > coalesce(d.analyzed_message_id, 0)) AS first_unanalyzed_at, \
           d.analyzed_message_id, d.buffer_seq, \
           ARRAY(SELECT cd.event_level FROM capi_deliveries cd WHERE cd.dialog_id = d.id ORDER BY 1) AS claimed_levels \
         FROM dialog_analysis d \
         LEFT JOIN account_directions ad ON ad.id = d.direction_id \
         CROSS JOIN LATERAL (SELECT count(*) AS n, max(m.id) AS last_id, max(m.sent_at) AS last_at \
              FROM dialog_messages m WHERE m.dialog_id = d.id AND m.author = 'customer') c \
         WHERE d.id = $1",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .prepared()
    .get_result::<DialogRow>(conn)
    .await
    .optional()
    .map(|row| row.map(DialogForQualification::from))
}

/// Customer messages after `after`, oldest first (the per-message policy
/// analyses each).
pub async fn customer_messages_after(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
    after: i64,
) -> Result<Vec<i64>, diesel::result::Error> {
    use dialog_messages::dsl as m;
    m::dialog_messages
        .filter(m::dialog_id.eq(dialog_id))
        .filter(m::author.eq(Author::Customer))
        .filter(m::id.gt(after))
        .order(m::id)
        .select(m::id)
        .load(conn)
        .await
}

/// One analysis, as recorded.
#[derive(Debug, Clone)]
pub struct Run<'a> {
    pub dialog_id: DialogId,
    pub direction_id: Option<DirectionId>,
    pub through_message_id: i64,
    pub model: &'a str,
    /// The model's answer, when it was usable.
    pub result: Option<&'a Value>,
    pub error: Option<&'a str>,
    pub reached_level: Option<Level>,
    /// What the answer sets on the dialog: interest level, funnel stage, reason.
    pub judgement: Option<(InterestLevel, FunnelStage, &'a str)>,
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
    use qualification_runs::dsl as q;
    let status = if r.error.is_none() {
        AnalysisStatus::Ok
    } else {
        AnalysisStatus::Error
    };
    diesel::insert_into(q::qualification_runs)
        .values((
            q::dialog_id.eq(r.dialog_id),
            q::direction_id.eq(r.direction_id),
            q::through_message_id.eq(r.through_message_id),
            q::model.eq(r.model),
            q::status.eq(status),
            q::error.eq(r.error),
            q::result.eq(r.result),
            q::reached_level.eq(r.reached_level),
            q::llm_calls.eq(r.llm_calls),
            q::prompt_tokens.eq(r.prompt_tokens),
            q::completion_tokens.eq(r.completion_tokens),
            q::duration_ms.eq(r.duration_ms),
        ))
        .execute(conn)
        .await?;
    let (interest, stage, reason) = match r.judgement {
        Some((i, s, why)) => (Some(i), Some(s), Some(why)),
        None => (None, None, None),
    };
    // The analysed mark only moves forward; a failed analysis keeps the
    // last judgement.
    use dialog_analysis::dsl as d;
    diesel::update(d::dialog_analysis.find(r.dialog_id))
        .set((
            d::analyzed_message_id.eq(greatest(
                coalesce(d::analyzed_message_id, Some(0)),
                Some(r.through_message_id),
            )),
            d::analysis_status.eq(status),
            d::interest_level.eq(coalesce(interest, d::interest_level)),
            d::funnel_stage.eq(coalesce(stage, d::funnel_stage)),
            d::qualification_reason.eq(coalesce(reason, d::qualification_reason)),
            d::analyzed_at.eq(now),
            d::llm_calls.eq(d::llm_calls + r.llm_calls),
            d::llm_prompt_tokens.eq(d::llm_prompt_tokens + i64::from(r.prompt_tokens)),
            d::llm_completion_tokens.eq(d::llm_completion_tokens + i64::from(r.completion_tokens)),
            d::updated_at.eq(now),
        ))
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
    direction_id: DirectionId,
    prompt: Option<&str>,
) -> Result<bool, diesel::result::Error> {
    use account_directions::dsl as d;
    let n = diesel::update(d::account_directions.find(direction_id))
        .set((
            d::qualification_prompt.eq(prompt),
            d::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// A direction's name and qualification prompt; `None` if there is no such direction.
pub async fn prompt(
    conn: &mut AsyncPgConnection,
    direction_id: DirectionId,
) -> Result<Option<(String, Option<String>)>, diesel::result::Error> {
    use account_directions::dsl as d;
    d::account_directions
        .find(direction_id)
        .select((d::name, d::qualification_prompt))
        .get_result(conn)
        .await
        .optional()
}
