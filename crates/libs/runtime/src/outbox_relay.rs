//! Publishes outbox rows to RabbitMQ. Rows are locked with `FOR UPDATE SKIP
//! LOCKED`, so any number of relays (one per replica) share the work; a row
//! is deleted only after the broker confirmed it. A crash between the
//! confirm and the delete publishes the row again: consumers are idempotent.

use bus::{Bus, Queue};
use diesel_async::AsyncConnection;
use std::{sync::Arc, time::Duration};
use storage::{DbPool, outbox};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

const BATCH: i64 = 200;
const IDLE_POLL: Duration = Duration::from_millis(500);
/// While rows keep coming, a relay woken by a commit waits this long for
/// more before it locks a batch: at a thousand webhooks a second that is
/// one transaction per ~10 rows instead of one per row, which was a third
/// of the database's work at the gateway's peak (scripts/bench-gateway).
/// After a quiet spell (the last batch was empty) a wake is served at once.
const GATHER: Duration = Duration::from_millis(10);

/// Runs until `stop`; `wake` is notified after a commit that wrote outbox rows.
pub async fn run(pool: DbPool, bus: Arc<Bus>, wake: Arc<Notify>, stop: CancellationToken) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match relay_batch(&pool, &bus).await {
            Ok(n) if n as i64 == BATCH => continue,
            Ok(n) => {
                backoff = Duration::from_millis(200);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                }
                if n > 0 {
                    tokio::time::sleep(GATHER).await;
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "outbox relay could not publish; will retry"
                );
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Publishes one batch; returns how many rows were published.
pub async fn relay_batch(pool: &DbPool, bus: &Bus) -> anyhow::Result<usize> {
    let mut conn = pool.get().await?;
    let mut failure: Option<anyhow::Error> = None;
    let published = conn
        .transaction::<_, storage::DbError, _>(async |conn| {
            let rows = outbox::lock_batch(conn, BATCH).await?;
            // Published concurrently: the broker's confirms arrive pipelined.
            let results =
                futures_util::future::join_all(rows.iter().map(|row| publish(bus, row))).await;
            let mut done = Vec::with_capacity(rows.len());
            for (row, result) in rows.iter().zip(results) {
                match result {
                    Ok(()) => done.push(row.id),
                    Err(e) => failure = Some(e),
                }
            }
            outbox::delete(conn, &done).await?;
            Ok(done.len())
        })
        .await?;
    match failure {
        Some(e) => Err(e),
        None => Ok(published),
    }
}

async fn publish(bus: &Bus, row: &outbox::OutboxRow) -> anyhow::Result<()> {
    let payload = serde_json::to_vec(&row.payload)?;
    if row.delay_ms > 0 {
        let queue = Queue::for_routing_key(&row.routing_key)
            .ok_or_else(|| anyhow::anyhow!("no queue for routing key {}", row.routing_key))?;
        let delay = Duration::from_millis(u64::try_from(row.delay_ms).unwrap_or(0));
        bus.publish_delayed(queue, delay, row.message_id, &payload, 1)
            .await
    } else {
        bus.publish(&row.routing_key, row.message_id, &payload)
            .await
    }
}
