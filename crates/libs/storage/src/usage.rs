//! Model (LLM) calls and tokens per direction, day (UTC) and purpose, so the
//! model's cost is visible without scanning the per-dialog records.

use crate::PreparedExt;
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Int4, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::DirectionId;

pub use domain::usage::Purpose;

/// Counter rows per (direction, day, purpose): concurrent writers mostly
/// land on different rows instead of queueing on one row's lock.
const SHARDS: i32 = 16;

/// Adds model calls and tokens to the direction's counters for today (UTC).
pub async fn add(
    conn: &mut AsyncPgConnection,
    direction_id: DirectionId,
    purpose: Purpose,
    calls: i32,
    prompt_tokens: i32,
    completion_tokens: i32,
) -> Result<(), diesel::result::Error> {
    // SQL: an adding upsert into the shard `pg_backend_pid() % 16`, chosen by the database per connection.
    diesel::sql_query(
        "INSERT INTO llm_usage_daily AS u (direction_id, day, purpose, shard, calls, prompt_tokens, completion_tokens) \
         VALUES ($1, (now() AT TIME ZONE 'UTC')::date, $2, pg_backend_pid() % $6, $3, $4, $5) \
         ON CONFLICT (direction_id, day, purpose, shard) DO UPDATE SET \
           calls = u.calls + EXCLUDED.calls, prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens, \
           completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens",
    )
    .bind::<SqlUuid, _>(direction_id)
    .bind::<Text, _>(purpose)
    .bind::<BigInt, _>(i64::from(calls))
    .bind::<BigInt, _>(i64::from(prompt_tokens))
    .bind::<BigInt, _>(i64::from(completion_tokens))
    .bind::<Int4, _>(SHARDS)
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

/// A row of `capi usage`.
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
pub struct UsageRow {
    #[diesel(sql_type = SqlUuid)]
    pub direction_id: DirectionId,
    #[diesel(sql_type = Text)]
    pub direction: String,
    #[diesel(sql_type = Text)]
    pub day: String,
    #[diesel(sql_type = Text)]
    pub purpose: Purpose,
    #[diesel(sql_type = BigInt)]
    pub calls: i64,
    #[diesel(sql_type = BigInt)]
    pub prompt_tokens: i64,
    #[diesel(sql_type = BigInt)]
    pub completion_tokens: i64,
}

/// Model usage of the last `days` days, newest first.
pub async fn daily(
    conn: &mut AsyncPgConnection,
    days: i32,
) -> Result<Vec<UsageRow>, diesel::result::Error> {
    // SQL: sums over the shards kept BIGINT (diesel's `sum` of BIGINT is NUMERIC) and the day as text.
    diesel::sql_query(
        "SELECT u.direction_id, ad.name AS direction, u.day::text AS day, u.purpose, \
           sum(u.calls)::bigint AS calls, sum(u.prompt_tokens)::bigint AS prompt_tokens, \
           sum(u.completion_tokens)::bigint AS completion_tokens \
         FROM llm_usage_daily u JOIN account_directions ad ON ad.id = u.direction_id \
         WHERE u.day > (now() AT TIME ZONE 'UTC')::date - $1 \
         GROUP BY u.direction_id, ad.name, u.day, u.purpose \
         ORDER BY u.day DESC, ad.name, u.purpose",
    )
    .bind::<Int4, _>(days)
    .prepared()
    .load(conn)
    .await
}
