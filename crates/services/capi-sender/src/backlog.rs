//! Watches how many events RabbitMQ holds ready for capi-sender: while it
//! holds any, they are on their way and batches wait for them (up to
//! `meta.max_linger`) instead of spending a request on a few events each
//! (`batcher::linger_until`).

use crate::batcher::{Batcher, Fenced};
use bus::{Bus, Queue};
use runtime::{
    CancellationToken,
    periodic::{First, every},
};
use std::{sync::Arc, time::Duration};

/// How often the queue's ready count is asked.
const POLL: Duration = Duration::from_millis(500);

/// Before consuming starts the count is read once (within [`FIRST_READ`]):
/// the first batches of a full queue already wait for the rest.
const FIRST_READ: Duration = Duration::from_secs(2);

/// Reads the queue's ready count into the batcher (`Bus::queue_depth`: on
/// a channel of its own, so a busy queue's late answer holds up no publish).
pub struct Watch<P> {
    bus: Arc<Bus>,
    batcher: Arc<Batcher<P>>,
}

impl<P: Fenced + Send + Sync + 'static> Watch<P> {
    /// Reads the count once, before the consumer starts.
    pub async fn start(bus: Arc<Bus>, batcher: Arc<Batcher<P>>) -> Self {
        let watch = Watch { bus, batcher };
        let _ = tokio::time::timeout(FIRST_READ, watch.read()).await;
        watch
    }

    /// Asks again every [`POLL`] until `stop`. With the broker away the
    /// backlog counts as none. A busy queue answers late (seconds): the
    /// count seen last stands until then, and a linger that outlasts the
    /// intake ends anyway once events stop coming in.
    pub async fn run(self, stop: CancellationToken) {
        every(POLL, First::AfterOnePeriod, &stop, || async {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = self.read() => {}
            }
        })
        .await;
    }

    async fn read(&self) {
        let ready = match self.bus.queue_depth(Queue::CapiEvents).await {
            Ok(n) => u64::from(n),
            Err(e) => {
                tracing::debug!(
                    error = format!("{e:#}"),
                    "could not read the queue's ready count"
                );
                0
            }
        };
        self.batcher.set_broker_backlog(ready);
    }
}
