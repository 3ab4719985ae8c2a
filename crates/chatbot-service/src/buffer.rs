use bus::{
    Bus, Incoming, Outcome, Queue,
    messages::{BufferFlush, BusMessage, DialogReady, MessageReceived, ReplyDue, decode, encode},
};
use diesel_async::AsyncConnection;
use runtime::Runtime;
use std::{sync::Arc, time::Duration};
use storage::{DbPool, conversations};
use tokio::sync::Notify;
use uuid::Uuid;

/// A failed step is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(2);

pub(crate) struct Buffer {
    pub pool: DbPool,
    pub bus: Arc<Bus>,
    pub outbox_wake: Arc<Notify>,
    pub delay: Duration,
}

pub(crate) fn spawn(runtime: &mut Runtime, buffer: Arc<Buffer>) {
    let (bus, stop) = (runtime.bus.clone(), runtime.stop.clone());
    let b = buffer.clone();
    runtime.spawn_worker(bus::consume(
        bus.clone(),
        Queue::ChatbotMessages,
        stop.clone(),
        move |m| {
            let b = b.clone();
            async move { b.schedule_flush(m).await }
        },
    ));
    runtime.spawn_worker(bus::consume(bus, Queue::ChatbotFlush, stop, move |m| {
        let b = buffer.clone();
        async move { b.flush(m).await }
    }));
}

impl Buffer {
    /// A customer message arrived: flush its dialog after the delay.
    async fn schedule_flush(&self, m: Incoming) -> Outcome {
        let received: MessageReceived = match decode(&m.payload) {
            Ok(r) => r,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        let flush = BufferFlush {
            dialog_id: received.dialog_id,
            seq: received.seq,
        };
        let payload = match serde_json::to_vec(&encode(&flush)) {
            Ok(p) => p,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        match self
            .bus
            .publish_delayed(Queue::ChatbotFlush, self.delay, Uuid::new_v4(), &payload, 1)
            .await
        {
            Ok(()) => Outcome::Ack,
            Err(e) => {
                tracing::warn!(dialog_id = %flush.dialog_id, error = format!("{e:#}"), "could not schedule the buffer flush");
                Outcome::Retry(RETRY_AFTER)
            }
        }
    }

    /// The delay passed: hand the dialog on if no newer message came in.
    async fn flush(&self, m: Incoming) -> Outcome {
        let flush: BufferFlush = match decode(&m.payload) {
            Ok(f) => f,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        let claimed = async {
            let mut conn = self.pool.get().await?;
            let claimed = conn
                .transaction::<_, storage::DbError, _>(async |conn| {
                    let claimed =
                        conversations::claim_buffer_flush(conn, flush.dialog_id, flush.seq).await?;
                    if claimed {
                        let ready = DialogReady {
                            dialog_id: flush.dialog_id,
                            seq: flush.seq,
                        };
                        storage::outbox::enqueue(
                            conn,
                            DialogReady::ROUTING_KEY,
                            &encode(&ready),
                            0,
                        )
                        .await?;
                        let reply = ReplyDue {
                            dialog_id: flush.dialog_id,
                            seq: flush.seq,
                        };
                        storage::outbox::enqueue(conn, ReplyDue::ROUTING_KEY, &encode(&reply), 0)
                            .await?;
                    }
                    Ok(claimed)
                })
                .await?;
            anyhow::Ok(claimed)
        }
        .await;
        match claimed {
            Ok(true) => {
                self.outbox_wake.notify_one();
                tracing::info!(dialog_id = %flush.dialog_id, seq = flush.seq, "buffer flushed; dialog handed to qualification and the bot");
                Outcome::Ack
            }
            Ok(false) => {
                tracing::debug!(dialog_id = %flush.dialog_id, seq = flush.seq, "stale flush: a newer message or replica took it");
                Outcome::Ack
            }
            Err(e) => {
                tracing::warn!(dialog_id = %flush.dialog_id, error = format!("{e:#}"), "buffer flush failed; retrying");
                Outcome::Retry(RETRY_AFTER)
            }
        }
    }
}
