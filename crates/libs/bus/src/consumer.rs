//! The consumer loop: bounded prefetch, manual acks, delayed retries through
//! TTL queues (never by sleeping on a message), dead-lettering, reconnects,
//! and a clean stop.

use crate::{
    connection::{ATTEMPT_HEADER, Bus},
    topology::Queue,
};
use futures_util::StreamExt;
use lapin::{
    Acker,
    message::Delivery,
    options::{
        BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    },
    types::{AMQPValue, FieldTable},
};
use std::{future::Future, sync::Arc, time::Duration};
use tokio::{sync::mpsc, task::JoinSet};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A delivered message as a handler sees it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub payload: Vec<u8>,
    pub message_id: Option<String>,
    /// 1 for the first delivery, +1 for each delayed retry.
    pub attempt: u32,
    pub redelivered: bool,
}

/// What to do with a message once handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Ack,
    /// Deliver again after this long (attempt + 1).
    Retry(Duration),
    /// Unprocessable: to the dead-letter queue, with the reason logged.
    DeadLetter(String),
    /// Not handled here after all (the process is stopping): back to the
    /// queue as it was, for another consumer, without using an attempt.
    Requeue,
}

fn attempt_of(d: &Delivery) -> u32 {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPT_HEADER).cloned())
        .and_then(|v| match v {
            AMQPValue::LongLongInt(n) => u32::try_from(n).ok(),
            AMQPValue::LongInt(n) => u32::try_from(n).ok(),
            _ => None,
        })
        .unwrap_or(1)
}

/// Consumes `queue` until `stop` is cancelled, running `handler` for each
/// message (up to the prefetch at once on each of the configured channels)
/// and settling it with the outcome the handler returns. Reconnects when the
/// broker goes away; unacknowledged messages are then redelivered by the
/// broker.
pub async fn consume<F, Fut>(bus: Arc<Bus>, queue: Queue, stop: CancellationToken, handler: F)
where
    F: Fn(Incoming) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    consume_settling(bus, queue, stop, move |m, settle: Settle| {
        let handler = handler.clone();
        async move {
            let outcome = handler(m).await;
            settle.settle(outcome).await;
        }
    })
    .await;
}

/// Like [`consume`], but the handler gets each message's [`Settle`] and
/// settles it when it likes: its task may end at once while the message
/// waits elsewhere (a batch) holding only what settles it. The consumer's
/// stop waits for every message it delivered to be settled (or its settle
/// dropped, which hands the message back), up to the drain timeout.
pub async fn consume_settling<F, Fut>(
    bus: Arc<Bus>,
    queue: Queue,
    stop: CancellationToken,
    handler: F,
) where
    F: Fn(Incoming, Settle) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut channels = JoinSet::new();
    for _ in 0..bus.consumer_channels() {
        channels.spawn(consume_channel(
            bus.clone(),
            queue,
            stop.clone(),
            handler.clone(),
        ));
    }
    while channels.join_next().await.is_some() {}
    tracing::info!(queue = %bus.names().queue(queue), "consumer stopped");
}

async fn consume_channel<F, Fut>(bus: Arc<Bus>, queue: Queue, stop: CancellationToken, handler: F)
where
    F: Fn(Incoming, Settle) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let name = bus.names().queue(queue);
    let mut backoff = Duration::from_millis(200);
    while !stop.is_cancelled() {
        match consume_once(&bus, queue, &name, &stop, handler.clone()).await {
            Ok(()) => break,
            Err(e) => {
                tracing::warn!(queue = %name, error = format!("{e:#}"), "consumer lost its channel; reconnecting");
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// How long a stopping consumer waits for its messages to be settled.
const DRAIN: Duration = Duration::from_secs(20);

async fn consume_once<F, Fut>(
    bus: &Arc<Bus>,
    queue: Queue,
    name: &str,
    stop: &CancellationToken,
    handler: F,
) -> anyhow::Result<()>
where
    F: Fn(Incoming, Settle) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let channel = bus.open_channel().await?;
    channel
        .basic_qos(bus.prefetch(), BasicQosOptions { global: false })
        .await?;
    let tag = format!("{name}.{}", Uuid::new_v4());
    let mut deliveries = channel
        .basic_consume(
            name.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = %name, "consuming");
    // Every `Settle` holds a sender: when all are gone, every message this
    // channel delivered is settled.
    let (unsettled, mut all_settled) = mpsc::channel::<()>(1);
    let mut inflight = JoinSet::new();
    let result = loop {
        tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            Some(_) = inflight.join_next(), if !inflight.is_empty() => {}
            next = deliveries.next() => {
                let delivery = match next {
                    Some(Ok(d)) => d,
                    Some(Err(e)) => break Err(e.into()),
                    None => break Err(anyhow::anyhow!("delivery stream ended")),
                };
                let (incoming, settle) = Settle::of(bus.clone(), queue, delivery, unsettled.clone());
                inflight.spawn(handler(incoming, settle));
            }
        }
    };
    // No more deliveries to this consumer (a message handed back below goes
    // to another one), then let what is in flight be settled (bounded) and
    // let the channel go: anything unacknowledged returns to the queue.
    if result.is_ok() {
        let cancel = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
        let _ = tokio::time::timeout(Duration::from_secs(2), cancel).await;
    }
    drop(unsettled);
    let drain = async {
        while inflight.join_next().await.is_some() {}
        all_settled.recv().await;
    };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        tracing::warn!(queue = %name, "in-flight messages did not finish in time; they will be redelivered");
    }
    let _ = channel.close(200, "consumer stopping".into()).await;
    result
}

/// What settles one delivered message — acks it, schedules its retry,
/// dead-letters it or hands it back — and nothing more of the delivery: its
/// acker, its body (republished for a retry), id and attempt.
/// Dropped unsettled, it hands the message back to the queue.
pub struct Settle {
    acker: Option<Acker>,
    bus: Arc<Bus>,
    queue: Queue,
    /// `None` once released ([`Settle::release_body`]).
    payload: Option<Box<[u8]>>,
    message_id: Option<Uuid>,
    attempt: u32,
    held: mpsc::Sender<()>,
}

impl Settle {
    fn of(
        bus: Arc<Bus>,
        queue: Queue,
        d: Delivery,
        unsettled: mpsc::Sender<()>,
    ) -> (Incoming, Settle) {
        let message_id = d.properties.message_id().as_ref().map(|m| m.to_string());
        let attempt = attempt_of(&d);
        let incoming = Incoming {
            payload: d.data.clone(),
            message_id: message_id.clone(),
            attempt,
            redelivered: d.redelivered,
        };
        let settle = Settle {
            acker: Some(d.acker),
            bus,
            queue,
            payload: Some(d.data.into_boxed_slice()),
            message_id: message_id.and_then(|m| Uuid::parse_str(&m).ok()),
            attempt,
            held: unsettled,
        };
        (incoming, settle)
    }

    /// Lets the message's body go while the message waits, for a handler
    /// that can write it again: a delayed retry then republishes the body
    /// given to [`Settle::settle_with_body`] (a requeue needs none: the
    /// broker still has the message).
    pub fn release_body(&mut self) {
        self.payload = None;
    }

    /// Settles the message with `outcome`.
    pub async fn settle(self, outcome: Outcome) {
        self.settle_with_body(outcome, None).await;
    }

    /// Settles the message with `outcome`; a delayed retry republishes
    /// `body` if given, else the message's own (a retry with neither is
    /// handed back to the queue instead).
    pub async fn settle_with_body(mut self, outcome: Outcome, body: Option<Vec<u8>>) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        if let Some(body) = body {
            self.payload = Some(body.into_boxed_slice());
        }
        let settled = match outcome {
            Outcome::Ack => Box::pin(acker.ack(BasicAckOptions::default())).await,
            Outcome::Retry(_) if self.payload.is_none() => {
                tracing::error!("a retry without the message's body; handing it back to the queue");
                Box::pin(acker.nack(requeue())).await
            }
            Outcome::Retry(after) => {
                let id = self.message_id.unwrap_or_else(Uuid::new_v4);
                // Boxed, like the acks: a publish future is large, and unboxed its
                // space would sit in every in-flight message's task.
                let publish = self.bus.publish_delayed(
                    self.queue,
                    after,
                    id,
                    self.payload.as_deref().unwrap_or_default(),
                    self.attempt + 1,
                );
                match Box::pin(publish).await {
                    Ok(()) => Box::pin(acker.ack(BasicAckOptions::default())).await,
                    Err(e) => {
                        tracing::warn!(
                            error = format!("{e:#}"),
                            "could not schedule a retry; returning the message to the queue"
                        );
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        Box::pin(acker.nack(requeue())).await
                    }
                }
            }
            Outcome::Requeue => Box::pin(acker.nack(requeue())).await,
            Outcome::DeadLetter(reason) => {
                let message_id = self.message_id.map(|m| m.to_string()).unwrap_or_default();
                tracing::error!(message_id = %message_id, %reason, "message dead-lettered");
                Box::pin(acker.nack(BasicNackOptions {
                    requeue: false,
                    ..Default::default()
                }))
                .await
            }
        };
        if let Err(e) = settled {
            tracing::warn!(error = %e, "could not settle a message; the broker will redeliver it");
        }
    }
}

fn requeue() -> BasicNackOptions {
    BasicNackOptions {
        requeue: true,
        ..Default::default()
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        let Some(acker) = self.acker.take() else {
            return;
        };
        tracing::warn!(queue = %self.bus.names().queue(self.queue), "a message was dropped unsettled; handing it back to the queue");
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let held = self.held.clone();
            rt.spawn(async move {
                let _ = acker.nack(requeue()).await;
                drop(held);
            });
        }
    }
}
