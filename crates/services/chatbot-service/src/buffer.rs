use crate::bot::Bot;
use bus::{
    Incoming, Outcome, Queue,
    messages::{BufferFlush, BusMessage, DialogReady, MessageReceived, ReplyDue, decode, encode},
};
use domain::ids::DialogId;
use runtime::{CancellationToken, Runtime};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use storage::{
    DbPool,
    conversations::{self, Queued},
};
use tokio::sync::Notify;

/// A failed step is tried again after this long.
const RETRY_AFTER: Duration = Duration::from_secs(2);

pub(crate) struct Buffer {
    pub pool: DbPool,
    pub outbox_wake: Arc<Notify>,
    pub delay: Duration,
    /// Answers flushed bursts; `None` when replies are switched off.
    pub bot: Option<Arc<Bot>>,
    /// The newest buffer seq of each dialog with a message held here: an
    /// older one's flush is known stale without asking the database.
    pub held: Mutex<HashMap<DialogId, i64>>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Cancelled when the process stops: held messages go back to the queue.
    pub stop: CancellationToken,
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
            async move { b.hold(m).await }
        },
    ));
    // Flushes queued by earlier versions, which scheduled them through the
    // broker.
    runtime.spawn_worker(bus::consume(bus, Queue::ChatbotFlush, stop, move |m| {
        let b = buffer.clone();
        async move {
            match decode::<BufferFlush>(&m.payload) {
                Ok(f) => b.flush(f.dialog_id, f.seq).await,
                Err(e) => Outcome::DeadLetter(e.to_string()),
            }
        }
    }));
}

impl Buffer {
    /// A customer message arrived: hold it (unacknowledged) until the delay
    /// has passed since the gateway took it, then flush its dialog. If this
    /// process stops meanwhile the message goes back to the queue at once;
    /// if it dies, the broker hands it back when the connection drops.
    /// Either way another replica takes it and waits out only what is left
    /// of the delay (it runs from `received_at_ms`).
    async fn hold(&self, m: Incoming) -> Outcome {
        let received: MessageReceived = match decode(&m.payload) {
            Ok(r) => r,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        let delay = remaining_delay(
            self.delay,
            received.received_at_ms,
            chrono::Utc::now().timestamp_millis(),
        );
        let (dialog_id, seq) = (received.dialog_id, received.seq);
        self.note_held(dialog_id, seq);
        self.metrics.buffered.inc();
        let stopping = tokio::select! {
            _ = tokio::time::sleep(delay) => false,
            _ = self.stop.cancelled() => true,
        };
        self.metrics.buffered.dec();
        if stopping {
            tracing::debug!(%dialog_id, seq, "stopping: the held message goes back to the queue");
            return Outcome::Requeue;
        }
        if self.newer_held(dialog_id, seq) {
            tracing::debug!(%dialog_id, seq, "stale flush: a newer message is held here");
            return Outcome::Ack;
        }
        self.flush(dialog_id, seq).await
    }

    fn note_held(&self, dialog_id: DialogId, seq: i64) {
        if let Ok(mut held) = self.held.lock() {
            let newest = held.entry(dialog_id).or_insert(seq);
            *newest = (*newest).max(seq);
        }
    }

    /// Whether a newer message of the dialog is held here; forgets the
    /// dialog when `seq` is its newest.
    fn newer_held(&self, dialog_id: DialogId, seq: i64) -> bool {
        let Ok(mut held) = self.held.lock() else {
            return false;
        };
        match held.get(&dialog_id) {
            Some(&newest) if newest > seq => true,
            _ => {
                held.remove(&dialog_id);
                false
            }
        }
    }

    /// The delay passed: hand the dialog on if no newer message came in.
    async fn flush(&self, dialog_id: DialogId, seq: i64) -> Outcome {
        let mut then = vec![Queued {
            routing_key: DialogReady::ROUTING_KEY,
            payload: encode(&DialogReady { dialog_id, seq }),
            delay_ms: 0,
        }];
        if let Some(bot) = &self.bot {
            // The durable path: this replica answers now; this copy comes
            // when that turn's lease is over and finds it done (or not).
            then.push(Queued {
                routing_key: ReplyDue::ROUTING_KEY,
                payload: encode(&ReplyDue { dialog_id, seq }),
                delay_ms: i64::try_from(bot.lease.as_millis()).unwrap_or(i64::MAX),
            });
        }
        let flushed = async {
            let mut conn = self.pool.get().await?;
            anyhow::Ok(conversations::flush_buffer(&mut conn, dialog_id, seq, &then).await?)
        }
        .await;
        match flushed {
            Ok(true) => {
                self.outbox_wake.notify_one();
                if let Some(bot) = &self.bot {
                    bot.answer_now(ReplyDue { dialog_id, seq });
                }
                tracing::info!(%dialog_id, seq, "buffer flushed; dialog handed to qualification and the bot");
                Outcome::Ack
            }
            Ok(false) => {
                tracing::debug!(%dialog_id, seq, "stale flush: a newer message or replica took it");
                Outcome::Ack
            }
            Err(e) => {
                tracing::warn!(%dialog_id, error = format!("{e:#}"), "buffer flush failed; retrying");
                Outcome::Retry(RETRY_AFTER)
            }
        }
    }
}

/// What is left of the buffer delay for a message the gateway took at
/// `received_at_ms` (all of it for messages that do not say, or from a clock
/// ahead of ours).
fn remaining_delay(delay: Duration, received_at_ms: Option<i64>, now_ms: i64) -> Duration {
    let waited = received_at_ms
        .and_then(|at| u64::try_from(now_ms.saturating_sub(at)).ok())
        .map(Duration::from_millis)
        .unwrap_or_default();
    delay.saturating_sub(waited)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_runs_from_when_the_gateway_took_the_message() {
        let five = Duration::from_secs(5);
        assert_eq!(
            remaining_delay(five, Some(1_000), 1_700),
            Duration::from_millis(4_300)
        );
        assert_eq!(remaining_delay(five, Some(1_000), 9_000), Duration::ZERO);
        assert_eq!(remaining_delay(five, None, 9_000), five);
        // A gateway clock ahead of ours: the whole delay, never more.
        assert_eq!(remaining_delay(five, Some(9_000), 1_000), five);
    }
}
