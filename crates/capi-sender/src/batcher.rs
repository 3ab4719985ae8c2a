//! Groups events bound for the same (pixel, token) into one request: up to
//! `batch_size` events or `linger`, whichever comes first. Under a backlog
//! (events that already waited in the queue) a batch lingers longer — half
//! its first event's age, up to `max_linger` — since a few more seconds cost
//! such events little and save many requests. When every request
//! slot is busy a lingered batch keeps taking events until a slot frees, so
//! under load batches grow instead of requests queueing up. Meta rejects a
//! whole batch for one invalid event, so an invalid batch is split in halves
//! and resent until the bad events are isolated; the good ones are delivered.
//! Each request's answer goes, with its events and their payloads, to `on_answer`
//! (which records them together), and each event's waiter gets its outcome.

use crate::{
    meta::{Answer, MetaClient},
    metrics::{Metrics, OutcomeLabel},
};
use domain::{
    capi::{appsecret_proof, build_request},
    meta_errors::{MetaError, Verdict, verdict},
};
use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde_json::Value;
use std::{
    collections::HashMap,
    fmt,
    sync::atomic::Ordering,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};
use uuid::Uuid;

/// No event for this long: the intake has stopped (the queue is drained).
const IDLE_INTAKE: Duration = Duration::from_secs(1);

/// Meta accepts at most this many events per request.
pub const MAX_BATCH: usize = 1000;

/// Events that may share a request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BatchKey {
    pub pixel_id: String,
    pub token: String,
    pub app_secret: Option<String>,
    pub test_event_code: Option<String>,
}

impl fmt::Debug for BatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchKey")
            .field("pixel_id", &self.pixel_id)
            .field("token", &"[redacted]")
            .field("test_event_code", &self.test_event_code)
            .finish_non_exhaustive()
    }
}

/// What happened to one event's request.
#[derive(Debug, Clone)]
pub struct EventResult {
    pub verdict: Verdict,
    pub http_status: Option<u16>,
    pub response: Option<Value>,
    pub error_message: Option<String>,
    pub fbtrace_id: Option<String>,
    pub batch_id: Uuid,
    pub batch_size: usize,
    pub duration: Duration,
}

/// An event waiting in a batch: its JSON, what the caller attached, and where its outcome goes.
type Waiter<P, O> = (Value, P, oneshot::Sender<O>);

/// Called with each request's result and its events (JSON and payload);
/// returns each event's outcome, in order.
pub type OnAnswer<P, O> =
    Arc<dyn Fn(EventResult, Vec<(Value, P)>) -> BoxFuture<'static, Vec<O>> + Send + Sync>;

/// Called just before a batch is sent with each event's fencing token;
/// returns the delivery ids still owned. Events no longer owned are left out
/// of the request and get `Dropped::dropped()`.
pub type Fence = Arc<
    dyn Fn(Vec<(i64, i32)>) -> BoxFuture<'static, Result<std::collections::HashSet<i64>, String>>
        + Send
        + Sync,
>;

/// What a batcher needs from an event's payload.
pub trait Fenced {
    /// (delivery id, attempt): who owns the event.
    fn fence_token(&self) -> (i64, i32);
    /// Whether ownership must be checked (and renewed) before sending.
    fn needs_fence(&self) -> bool;
}

/// Outcomes for events that are not sent after all.
pub trait Dropped {
    /// Someone else owns the event now.
    fn dropped() -> Self;
    /// Ownership could not be checked.
    fn fence_failed() -> Self;
}

/// Removes the fullest open batches until at least `events` events are taken.
fn take_fullest<P, O>(
    open: &mut HashMap<BatchKey, Open<P, O>>,
    events: usize,
) -> Vec<(BatchKey, Open<P, O>)> {
    let mut sizes: Vec<(usize, BatchKey)> = open
        .iter()
        .map(|(k, b)| (b.items.len(), k.clone()))
        .collect();
    sizes.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    let mut taken = Vec::new();
    let mut n = 0;
    for (size, key) in sizes {
        if n >= events {
            break;
        }
        if let Some(b) = open.remove(&key) {
            n += size;
            taken.push((key, b));
        }
    }
    taken
}

/// How long a batch whose first event is `age` old waits to fill: `linger`
/// for fresh events, half their age under a backlog, never over `max_linger`.
pub fn linger_for(age: Duration, linger: Duration, max_linger: Duration) -> Duration {
    (age / 2).clamp(linger, max_linger.max(linger))
}

struct Open<P, O> {
    generation: u64,
    items: Vec<Waiter<P, O>>,
}

pub struct Batcher<P, O> {
    open: Mutex<HashMap<BatchKey, Open<P, O>>>,
    /// Events in open batches (kept beside `open`, under its lock).
    pending: std::sync::atomic::AtomicUsize,
    max_pending: usize,
    /// When the last event came in (ms since `started`).
    last_submit_ms: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    next_generation: Mutex<u64>,
    batch_size: usize,
    linger: Duration,
    max_linger: Duration,
    client: MetaClient,
    requests_in_flight: Arc<Semaphore>,
    partner_agent: Option<String>,
    metrics: Arc<Metrics>,
    on_answer: OnAnswer<P, O>,
    fence: Fence,
}

pub struct BatcherConfig {
    pub batch_size: usize,
    /// How long a batch of fresh events waits to fill.
    pub linger: Duration,
    /// The longest a batch waits, however old its events.
    pub max_linger: Duration,
    /// Events this sender can hold at once (its consumer window; 0: no
    /// limit). When open batches hold most of them no more can arrive, so
    /// lingering is pointless: the fullest batches go at once.
    pub max_pending: usize,
    pub max_concurrent_requests: usize,
    pub partner_agent: Option<String>,
}

impl<P: Fenced + Send + 'static, O: Dropped + Send + 'static> Batcher<P, O> {
    pub fn new(
        client: MetaClient,
        cfg: BatcherConfig,
        metrics: Arc<Metrics>,
        on_answer: OnAnswer<P, O>,
        fence: Fence,
    ) -> Arc<Self> {
        Arc::new(Batcher {
            open: Mutex::new(HashMap::new()),
            pending: std::sync::atomic::AtomicUsize::new(0),
            max_pending: cfg.max_pending,
            last_submit_ms: std::sync::atomic::AtomicU64::new(0),
            started: std::time::Instant::now(),
            next_generation: Mutex::new(0),
            batch_size: cfg.batch_size.clamp(1, MAX_BATCH),
            linger: cfg.linger,
            max_linger: cfg.max_linger,
            client,
            requests_in_flight: Arc::new(Semaphore::new(cfg.max_concurrent_requests.max(1))),
            partner_agent: cfg.partner_agent.filter(|a| !a.trim().is_empty()),
            metrics,
            on_answer,
            fence,
        })
    }

    /// Adds an event (`age` since its level was reached) to its batch and
    /// waits for its outcome.
    pub async fn submit(
        self: &Arc<Self>,
        key: BatchKey,
        event: Value,
        payload: P,
        age: Duration,
    ) -> Option<O> {
        let (tx, rx) = oneshot::channel();
        self.last_submit_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
        let (full, new_batch, fullest) = {
            let mut open = self.open.lock().ok()?;
            let generation = match open.get(&key) {
                Some(o) => o.generation,
                None => {
                    let mut g = self.next_generation.lock().ok()?;
                    *g += 1;
                    *g
                }
            };
            let batch = open.entry(key.clone()).or_insert_with(|| Open {
                generation,
                items: Vec::new(),
            });
            batch.items.push((event, payload, tx));
            let first = batch.items.len() == 1;
            let full = (batch.items.len() >= self.batch_size)
                .then(|| open.remove(&key))
                .flatten();
            let linger = (first && full.is_none()).then_some(generation);
            let removed = full.as_ref().map_or(0, |b| b.items.len());
            let pending = self.pending.load(Ordering::Relaxed) + 1 - removed;
            let mut fullest = Vec::new();
            // At 75 % of the window, the fullest batches go until half is left.
            if self.max_pending > 0 && pending * 4 >= self.max_pending * 3 {
                fullest = take_fullest(&mut open, pending - self.max_pending / 2);
            }
            let taken: usize = fullest.iter().map(|(_, b)| b.items.len()).sum();
            self.pending.store(pending - taken, Ordering::Relaxed);
            (full, linger, fullest)
        };
        for (key, batch) in fullest {
            let me = self.clone();
            tokio::spawn(async move {
                let permit = me.requests_in_flight.clone().acquire_owned().await.ok();
                me.send(key, batch.items, permit).await
            });
        }
        self.metrics.pending_in_batches.inc();
        if let Some(batch) = full {
            let me = self.clone();
            tokio::spawn(async move {
                let permit = me.requests_in_flight.clone().acquire_owned().await.ok();
                me.send(key, batch.items, permit).await
            });
        } else if let Some(generation) = new_batch {
            let me = self.clone();
            let wait = linger_for(age, self.linger, self.max_linger);
            tokio::spawn(async move { me.linger(key, generation, wait).await });
        }
        rx.await.ok()
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    async fn linger(self: Arc<Self>, key: BatchKey, generation: u64, wait: Duration) {
        // A long (backlog) linger ends early once events stop coming in:
        // waiting longer cannot fill the batch any further.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(self.linger.min(deadline - now)).await;
            let idle = self
                .elapsed_ms()
                .saturating_sub(self.last_submit_ms.load(Ordering::Relaxed));
            if Duration::from_millis(idle) >= IDLE_INTAKE {
                break;
            }
        }
        // Until a request slot is free the batch stays open and keeps growing.
        let permit = self.requests_in_flight.clone().acquire_owned().await.ok();
        let batch = {
            let Ok(mut open) = self.open.lock() else {
                return;
            };
            match open.get(&key) {
                Some(o) if o.generation == generation => {
                    let b = open.remove(&key);
                    let n = b.as_ref().map_or(0, |b| b.items.len());
                    self.pending.fetch_sub(n, Ordering::Relaxed);
                    b
                }
                _ => None, // already sent: it filled up, or the window did
            }
        };
        if let Some(batch) = batch {
            self.send(key, batch.items, permit).await;
        }
    }

    async fn send(
        &self,
        key: BatchKey,
        items: Vec<Waiter<P, O>>,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        self.metrics
            .pending_in_batches
            .dec_by(i64::try_from(items.len()).unwrap_or(0));
        // Only events this sender still owns go out: one that waited in a batch
        // past its lease may have been taken over by a redelivered copy.
        let (check, sure): (Vec<_>, Vec<_>) = items
            .iter()
            .map(|(_, p, _)| (p.fence_token(), p.needs_fence()))
            .partition(|(_, needs)| *needs);
        let checked = if check.is_empty() {
            Ok(std::collections::HashSet::new())
        } else {
            (self.fence)(check.into_iter().map(|(t, _)| t).collect()).await
        };
        let owned = match checked {
            Ok(mut owned) => {
                owned.extend(sure.into_iter().map(|(t, _)| t.0));
                owned
            }
            Err(e) => {
                tracing::warn!(error = %e, events = items.len(), "could not renew leases; the events will be retried");
                for (_, _, tx) in items {
                    let _ = tx.send(O::fence_failed());
                }
                return;
            }
        };
        let (mine, theirs): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|(_, p, _)| owned.contains(&p.fence_token().0));
        for (_, _, tx) in theirs {
            let _ = tx.send(O::dropped());
        }
        if !mine.is_empty() {
            self.send_split(&key, mine, permit).await;
        }
    }

    fn send_split<'a>(
        &'a self,
        key: &'a BatchKey,
        items: Vec<Waiter<P, O>>,
        permit: Option<OwnedSemaphorePermit>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let n = items.len();
            let events: Vec<Value> = items.iter().map(|(e, _, _)| e.clone()).collect();
            let body = build_request(
                events,
                key.test_event_code.as_deref(),
                self.partner_agent.as_deref(),
            );
            let proof = key
                .app_secret
                .as_deref()
                .map(|s| appsecret_proof(s, &key.token));
            let answer = {
                let _permit = match permit {
                    Some(p) => Some(p),
                    None => self.requests_in_flight.clone().acquire_owned().await.ok(),
                };
                self.client
                    .send_events(
                        &key.pixel_id,
                        &SecretString::from(key.token.clone()),
                        proof.as_deref(),
                        &body,
                    )
                    .await
            };
            let result = self.judge(answer, n);
            if result.verdict == Verdict::Invalid && n > 1 {
                tracing::warn!(pixel_id = %key.pixel_id, batch_id = %result.batch_id, events = n, "Meta rejected the batch as invalid; splitting it to isolate the bad event(s)");
                let mut left = items;
                let right = left.split_off(n / 2);
                futures_util::future::join(
                    self.send_split(key, left, None),
                    self.send_split(key, right, None),
                )
                .await;
                return;
            }
            let (events, waiters): (Vec<(Value, P)>, Vec<oneshot::Sender<O>>) =
                items.into_iter().map(|(e, p, tx)| ((e, p), tx)).unzip();
            let outcomes = (self.on_answer)(result, events).await;
            for (tx, outcome) in waiters.into_iter().zip(outcomes) {
                let _ = tx.send(outcome);
            }
        })
    }

    fn judge(&self, answer: Answer, n: usize) -> EventResult {
        let error = answer.body.as_ref().and_then(MetaError::from_body);
        let v = verdict(answer.status, error.as_ref());
        let outcome = match v {
            Verdict::Accepted => "accepted",
            Verdict::Transient => "transient",
            Verdict::Throttled => "throttled",
            Verdict::Invalid => "invalid",
            Verdict::Permanent => "permanent",
        };
        self.metrics
            .requests
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
        self.metrics.batch_size.observe(n as f64);
        self.metrics
            .meta_latency_seconds
            .observe(answer.duration.as_secs_f64());
        let fbtrace_id = error
            .as_ref()
            .and_then(|e| e.fbtrace_id.clone())
            .or_else(|| {
                answer
                    .body
                    .as_ref()
                    .and_then(|b| b.get("fbtrace_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
        let error_message = match (&error, &answer.transport_error, answer.status) {
            (Some(e), _, _) => Some(e.message.clone()),
            (None, Some(t), _) => Some(t.clone()),
            (None, None, Some(s)) if v != Verdict::Accepted => {
                Some(format!("Meta answered HTTP {s}"))
            }
            _ => None,
        };
        EventResult {
            verdict: v,
            http_status: answer.status,
            response: answer.body,
            error_message,
            fbtrace_id,
            batch_id: Uuid::new_v4(),
            batch_size: n,
            duration: answer.duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_events_linger_the_configured_time_and_a_backlog_longer_up_to_the_cap() {
        let (linger, cap) = (Duration::from_millis(200), Duration::from_secs(10));
        let ms = |n| Duration::from_millis(n);
        assert_eq!(linger_for(ms(0), linger, cap), linger);
        assert_eq!(linger_for(ms(300), linger, cap), linger);
        assert_eq!(linger_for(ms(4_000), linger, cap), ms(2_000));
        assert_eq!(linger_for(ms(60_000), linger, cap), cap);
        // A cap below the linger never shortens it.
        assert_eq!(linger_for(ms(60_000), linger, ms(50)), linger);
    }
}
