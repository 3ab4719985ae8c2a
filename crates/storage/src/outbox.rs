//! The transactional outbox: a row written in the same transaction as the
//! change it announces, later published to RabbitMQ by the relay.

use crate::PreparedExt;
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Jsonb, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Clone, QueryableByName)]
pub struct OutboxRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = SqlUuid)]
    pub message_id: Uuid,
    #[diesel(sql_type = Text)]
    pub routing_key: String,
    #[diesel(sql_type = Jsonb)]
    pub payload: Value,
    #[diesel(sql_type = BigInt)]
    pub delay_ms: i64,
}

/// Queues a message; `delay_ms > 0` delivers it that much later.
pub async fn enqueue(
    conn: &mut AsyncPgConnection,
    routing_key: &str,
    payload: &Value,
    delay_ms: i64,
) -> Result<Uuid, diesel::result::Error> {
    let message_id = Uuid::new_v4();
    diesel::sql_query(
        "INSERT INTO outbox (message_id, routing_key, payload, delay_ms) VALUES ($1, $2, $3, $4)",
    )
    .bind::<SqlUuid, _>(message_id)
    .bind::<Text, _>(routing_key)
    .bind::<Jsonb, _>(payload)
    .bind::<BigInt, _>(delay_ms)
    .prepared()
    .execute(conn)
    .await?;
    Ok(message_id)
}

/// Locks up to `limit` unpublished rows, oldest first, skipping rows another
/// relay holds. Call inside a transaction and delete what was published.
pub async fn lock_batch(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> Result<Vec<OutboxRow>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT id, message_id, routing_key, payload, delay_ms FROM outbox \
         ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind::<BigInt, _>(limit)
    .prepared()
    .load(conn)
    .await
}

pub async fn delete(
    conn: &mut AsyncPgConnection,
    ids: &[i64],
) -> Result<usize, diesel::result::Error> {
    diesel::sql_query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind::<Array<BigInt>, _>(ids)
        .prepared()
        .execute(conn)
        .await
}
