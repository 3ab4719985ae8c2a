//! The transactional outbox: a row written in the same transaction as the
//! change it announces, later published to RabbitMQ by the relay.

use crate::schema::outbox;
use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, QueryDsl, Queryable, QueryableByName, Selectable, SelectableHelper,
    sql_types::{BigInt, Nullable, Timestamptz},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox, check_for_backend(diesel::pg::Pg))]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: Uuid,
    pub routing_key: String,
    pub payload: Value,
    pub delay_ms: i64,
}

/// Queues a message; `delay_ms > 0` delivers it that much later.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    routing_key: &str,
    payload: &Value,
    delay_ms: i64,
) -> Result<Uuid, diesel::result::Error> {
    use outbox::dsl as o;
    let message_id = Uuid::new_v4();
    diesel::insert_into(o::outbox)
        .values((
            o::message_id.eq(message_id),
            o::routing_key.eq(routing_key),
            o::payload.eq(payload),
            o::delay_ms.eq(delay_ms),
        ))
        .execute(conn)
        .await?;
    Ok(message_id)
}

/// Many messages with one routing key and no delay, in one statement.
pub async fn enqueue_many(
    conn: &mut AsyncPgConnection,
    routing_key: &str,
    payloads: &[Value],
) -> Result<(), diesel::result::Error> {
    use outbox::dsl as o;
    if payloads.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = payloads
        .iter()
        .map(|p| {
            (
                o::message_id.eq(Uuid::new_v4()),
                o::routing_key.eq(routing_key),
                o::payload.eq(p),
                o::delay_ms.eq(0_i64),
            )
        })
        .collect();
    diesel::insert_into(o::outbox)
        .values(&rows)
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks up to `limit` unpublished rows, oldest first, skipping rows another
/// relay holds. Call inside a transaction and delete what was published.
pub async fn lock_batch(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<OutboxRow>, diesel::result::Error> {
    outbox::table
        .order(outbox::id)
        .limit(limit)
        .select(OutboxRow::as_select())
        .for_update()
        .skip_locked()
        .load(conn)
        .await
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<usize, diesel::result::Error> {
    diesel::delete(outbox::table.filter(outbox::id.eq_any(ids)))
        .execute(conn)
        .await
}

/// The outbox: rows waiting to be published, and the oldest one's time.
#[derive(Debug, Clone, QueryableByName, serde::Serialize)]
pub struct Backlog {
    #[diesel(sql_type = BigInt)]
    pub rows: i64,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub oldest: Option<DateTime<Utc>>,
}

pub async fn backlog(conn: &mut AsyncPgConnection) -> Result<Backlog, diesel::result::Error> {
    // SQL: count and min in one read of a table diesel would need two for.
    diesel::sql_query("SELECT count(*) AS rows, min(created_at) AS oldest FROM outbox")
        .get_result(conn)
        .await
}
