//! Groups events bound for the same (pixel, token) into one request: up to
//! `batch_size` events or `linger`, whichever comes first. Under a backlog
//! (events that already waited in the queue) a batch lingers longer — half
//! its first event's age, up to `max_linger` — since a few more seconds cost
//! such events little and save many requests; likewise while RabbitMQ still
//! holds events for the queue (`backlog.rs`): they are on their way. When
//! every request slot is busy a lingered batch keeps taking events until a
//! slot frees, so under load batches grow instead of requests queueing up;
//! once open batches hold three quarters of the window (few more events can
//! arrive) each free slot takes the fullest batch, ready or not. Meta rejects a
//! whole batch for one invalid event, so an invalid batch is split in halves
//! and resent until the bad events are isolated; the good ones are delivered.
//! A batch whose linger is over becomes ready; when a request slot frees, the
//! fullest ready batch takes it (one ready longer than `max_linger` first), so
//! while every slot is busy the slots go to the batches that fill them best.
//! Each request's answer goes, with its events and their entries, to `on_answer`
//! (which records them together and settles each event's message); events
//! that are not sent after all go to `on_unsent`.
//!
//! A waiting event is its JSON as built (the bytes that go into the request)
//! and its entry (a small record plus what settles its message): no task
//! waits for it, and nothing of it is copied on the way out — the request
//! body is written in one pass from the events' bytes.

use crate::metrics::Metrics;
use domain::{
    capi_event::appsecret_proof,
    meta_errors::{MetaError, Verdict, verdict},
};
use futures_util::future::BoxFuture;
use meta_graph::{Answer, EventsRequest, Graph};
use secrecy::SecretString;
use serde_json::{Value, value::RawValue};
use std::{
    collections::HashMap,
    fmt,
    sync::atomic::Ordering,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
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
    /// The request's pixel.
    pub pixel_id: String,
    /// The request's `test_event_code`, if it had one.
    pub test_event_code: Option<String>,
    pub verdict: Verdict,
    pub http_status: Option<u16>,
    pub response: Option<Value>,
    pub error_message: Option<String>,
    pub fbtrace_id: Option<String>,
    pub batch_id: Uuid,
    pub batch_size: usize,
    pub duration: Duration,
    /// Meta's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

/// An event waiting in a batch: its JSON as built, and its entry.
pub struct Waiting<P> {
    pub event: Box<RawValue>,
    pub entry: P,
}

impl<P> AsRef<RawValue> for Waiting<P> {
    fn as_ref(&self) -> &RawValue {
        &self.event
    }
}

/// Called with each request's result and its events, in order: records
/// them and settles each.
pub type OnAnswer<P> =
    Arc<dyn Fn(EventResult, Vec<Waiting<P>>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Called with events that are not sent after all, and why.
pub type OnUnsent<P> = Arc<dyn Fn(Vec<Waiting<P>>, Unsent) -> BoxFuture<'static, ()> + Send + Sync>;

/// Called just before a batch is sent with each event's fencing token: marks
/// them as being sent and returns the delivery ids still owned. Events no
/// longer owned are left out of the request (`Unsent::TakenOver`).
pub type Fence = Arc<
    dyn Fn(Vec<(i64, i32)>) -> BoxFuture<'static, Result<std::collections::HashSet<i64>, String>>
        + Send
        + Sync,
>;

/// What a batcher needs from a waiting event's entry.
pub trait Fenced {
    /// (delivery id, attempt): who owns the event.
    fn fence_token(&self) -> (i64, i32);
}

/// Why events were not sent after all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// Someone else owns the event now.
    TakenOver,
    /// Ownership could not be checked.
    FenceFailed,
    /// The batcher closed (the process is stopping) before the event's
    /// request left.
    Returned,
}

/// How long a batch whose first event is `age` old waits to fill: `linger`
/// for fresh events, half their age under a backlog, never over `max_linger`.
pub fn linger_for(age: Duration, linger: Duration, max_linger: Duration) -> Duration {
    (age / 2).clamp(linger, max_linger.max(linger))
}

/// How long a batch stays open: its linger (`wait`), or while RabbitMQ
/// still holds events for this queue (`broker_backlog`, as last seen) up to
/// `max_linger`: those events are on their way and fill it, whereas sending
/// it now spends a request on a few events. Without that, a paced intake
/// (a broker delivering slower than the requests go) makes every free
/// request slot go to a batch of a few events.
pub fn linger_until(wait: Duration, max_linger: Duration, broker_backlog: u64) -> Duration {
    if broker_backlog > 0 {
        wait.max(max_linger)
    } else {
        wait
    }
}

struct Open<P> {
    generation: u64,
    items: Vec<Waiting<P>>,
    /// Its linger is over: it goes when a request slot is free.
    ready_since: Option<Instant>,
}

/// The open batches and how many events they hold.
struct Batches<P> {
    open: HashMap<BatchKey, Open<P>>,
    pending: usize,
}

impl<P> Batches<P> {
    fn remove(&mut self, key: &BatchKey) -> Option<Open<P>> {
        let b = self.open.remove(key)?;
        self.pending -= b.items.len();
        Some(b)
    }

    /// The batch to send next: one ready for longer than `overdue` (oldest
    /// first), else the fullest ready one — or, when the window is
    /// `pressed`, the fullest of all, ready or not.
    fn take_next(&mut self, overdue: Duration, pressed: bool) -> Option<(BatchKey, Open<P>)> {
        let now = Instant::now();
        let key = self
            .open
            .iter()
            .filter_map(|(k, b)| match b.ready_since {
                Some(t) => Some((k, b.items.len(), now - t)),
                None => pressed.then_some((k, b.items.len(), Duration::ZERO)),
            })
            .max_by_key(|&(_, n, waited)| {
                if waited >= overdue {
                    (true, waited, n)
                } else {
                    (false, Duration::ZERO, n)
                }
            })
            .map(|(k, _, _)| k.clone())?;
        let b = self.remove(&key)?;
        Some((key, b))
    }
}

/// A request slot; when it is given back the dispatcher looks for a ready batch.
struct Slot {
    _permit: OwnedSemaphorePermit,
    freed: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.freed.notify_one();
    }
}

pub struct Batcher<P> {
    batches: Mutex<Batches<P>>,
    /// Set by [`Batcher::close`]: no request starts any more.
    closed: std::sync::atomic::AtomicBool,
    max_pending: usize,
    /// Wakes the dispatcher: a batch became ready or a request slot freed.
    wake: Arc<Notify>,
    /// When the last event came in (ms since `started`).
    last_submit_ms: std::sync::atomic::AtomicU64,
    /// Events ready in RabbitMQ for this queue, as last seen
    /// ([`Batcher::set_broker_backlog`]).
    broker_backlog: std::sync::atomic::AtomicU64,
    started: tokio::time::Instant,
    next_generation: Mutex<u64>,
    batch_size: usize,
    linger: Duration,
    max_linger: Duration,
    client: Graph,
    requests_in_flight: Arc<Semaphore>,
    max_concurrent: usize,
    partner_agent: Option<String>,
    metrics: Arc<Metrics>,
    on_answer: OnAnswer<P>,
    on_unsent: OnUnsent<P>,
    fence: Fence,
}

pub struct BatcherConfig {
    pub batch_size: usize,
    /// How long a batch of fresh events waits to fill.
    pub linger: Duration,
    /// The longest a batch waits, however old its events.
    pub max_linger: Duration,
    /// Events this sender can hold at once (its consumer window; 0: no
    /// limit). When open batches hold three quarters of them few more can
    /// arrive, so lingering is pointless: each free request slot takes the
    /// fullest batch.
    pub max_pending: usize,
    pub max_concurrent_requests: usize,
    pub partner_agent: Option<String>,
}

/// What a batcher calls back.
pub struct Callbacks<P> {
    pub on_answer: OnAnswer<P>,
    pub on_unsent: OnUnsent<P>,
    pub fence: Fence,
}

impl<P: Fenced + Send + Sync + 'static> Batcher<P> {
    pub fn new(
        client: Graph,
        cfg: BatcherConfig,
        metrics: Arc<Metrics>,
        callbacks: Callbacks<P>,
    ) -> Arc<Self> {
        let batcher = Arc::new(Batcher {
            batches: Mutex::new(Batches {
                open: HashMap::new(),
                pending: 0,
            }),
            closed: std::sync::atomic::AtomicBool::new(false),
            max_pending: cfg.max_pending,
            wake: Arc::new(Notify::new()),
            last_submit_ms: std::sync::atomic::AtomicU64::new(0),
            broker_backlog: std::sync::atomic::AtomicU64::new(0),
            started: tokio::time::Instant::now(),
            next_generation: Mutex::new(0),
            batch_size: cfg.batch_size.clamp(1, MAX_BATCH),
            linger: cfg.linger,
            max_linger: cfg.max_linger,
            client,
            requests_in_flight: Arc::new(Semaphore::new(cfg.max_concurrent_requests.max(1))),
            max_concurrent: cfg.max_concurrent_requests.max(1),
            partner_agent: cfg.partner_agent.filter(|a| !a.trim().is_empty()),
            metrics,
            on_answer: callbacks.on_answer,
            on_unsent: callbacks.on_unsent,
            fence: callbacks.fence,
        });
        tokio::spawn(dispatch(Arc::downgrade(&batcher), batcher.wake.clone()));
        batcher
    }

    /// Adds an event (`age` since its level was reached) to its batch; its
    /// outcome goes to `on_answer` or `on_unsent`. Gives the event back when
    /// the batcher is closed (the process is stopping).
    pub fn submit(
        self: &Arc<Self>,
        key: BatchKey,
        event: Box<RawValue>,
        entry: P,
        age: Duration,
    ) -> Result<(), Waiting<P>> {
        self.last_submit_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
        let given_back = |event, entry| Err(Waiting { event, entry });
        let (full, new_batch, pressed) = {
            let Ok(mut batches) = self.batches.lock() else {
                return given_back(event, entry);
            };
            if self.is_closed() {
                return given_back(event, entry);
            }
            let generation = match batches.open.get(&key) {
                Some(o) => o.generation,
                None => match self.next_generation.lock() {
                    Ok(mut g) => {
                        *g += 1;
                        *g
                    }
                    Err(_) => return given_back(event, entry),
                },
            };
            let batch = batches.open.entry(key.clone()).or_insert_with(|| Open {
                generation,
                items: Vec::new(),
                ready_since: None,
            });
            batch.items.push(Waiting { event, entry });
            let (first, filled) = (batch.items.len() == 1, batch.items.len() >= self.batch_size);
            batches.pending += 1;
            let full = if filled { batches.remove(&key) } else { None };
            let linger = (first && full.is_none()).then_some(generation);
            (full, linger, self.pressed(batches.pending))
        };
        self.metrics.pending_in_batches.inc();
        if let Some(batch) = full {
            let (me, key) = (self.clone(), key.clone());
            tokio::spawn(async move {
                let slot = me.slot().await;
                me.send(key, batch.items, slot).await
            });
        }
        if pressed {
            self.wake.notify_one();
        }
        if let Some(generation) = new_batch {
            let me = self.clone();
            let wait = linger_for(age, self.linger, self.max_linger);
            tokio::spawn(async move { me.linger(key, generation, wait).await });
        }
        Ok(())
    }

    /// Stops sending: every event not yet in a request goes to `on_unsent`
    /// as `Unsent::Returned` (open batches now, batches waiting for a slot
    /// when they get one); requests already sent finish and are answered as
    /// usual. Later submits are given back at once.
    pub fn close(&self) {
        let open = match self.batches.lock() {
            Ok(mut b) => {
                self.closed.store(true, Ordering::SeqCst);
                b.pending = 0;
                std::mem::take(&mut b.open)
            }
            Err(_) => return,
        };
        let n: usize = open.values().map(|b| b.items.len()).sum();
        self.metrics
            .pending_in_batches
            .dec_by(i64::try_from(n).unwrap_or(0));
        let items = open.into_values().flat_map(|b| b.items).collect();
        tokio::spawn((self.on_unsent)(items, Unsent::Returned));
        tracing::info!(
            returned = n,
            requests_in_flight = self.max_concurrent - self.requests_in_flight.available_permits(),
            "closing: events not yet sent go back to the queue; requests in flight finish"
        );
    }

    /// What RabbitMQ holds ready for this queue now: while it holds any,
    /// batches stay open up to `max_linger` ([`linger_until`]).
    pub fn set_broker_backlog(&self, ready: u64) {
        self.broker_backlog.store(ready, Ordering::Relaxed);
    }

    fn backlog(&self) -> u64 {
        self.broker_backlog.load(Ordering::Relaxed)
    }

    /// Open batches hold three quarters of the window: few more events can
    /// arrive, so each free request slot takes the fullest batch, ready or
    /// not (the others keep filling meanwhile).
    fn pressed(&self, pending: usize) -> bool {
        self.max_pending > 0 && pending * 4 >= self.max_pending * 3
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Waits for a request slot.
    async fn slot(&self) -> Option<Slot> {
        let permit = self.requests_in_flight.clone().acquire_owned().await.ok()?;
        Some(self.wrap(permit))
    }

    fn wrap(&self, permit: OwnedSemaphorePermit) -> Slot {
        Slot {
            _permit: permit,
            freed: self.wake.clone(),
        }
    }

    /// Waits out a batch's linger, then marks it ready for the dispatcher.
    async fn linger(self: Arc<Self>, key: BatchKey, generation: u64, wait: Duration) {
        // A long (backlog) linger ends early once events stop coming in:
        // waiting longer cannot fill the batch any further.
        let opened = tokio::time::Instant::now();
        loop {
            let open_for = opened.elapsed();
            let until = linger_until(wait, self.max_linger, self.backlog());
            if open_for >= until {
                break;
            }
            tokio::time::sleep(self.linger.min(until - open_for)).await;
            let idle = self
                .elapsed_ms()
                .saturating_sub(self.last_submit_ms.load(Ordering::Relaxed));
            if Duration::from_millis(idle) >= IDLE_INTAKE {
                break;
            }
        }
        let Ok(mut batches) = self.batches.lock() else {
            return;
        };
        // Already gone if it filled up or the window sent it.
        if let Some(b) = batches.open.get_mut(&key)
            && b.generation == generation
        {
            b.ready_since = Some(Instant::now());
            self.wake.notify_one();
        }
    }

    /// Entries not sent after all go to `on_unsent`.
    async fn unsent(&self, items: Vec<Waiting<P>>, why: Unsent) {
        if !items.is_empty() {
            (self.on_unsent)(items, why).await;
        }
    }

    async fn send(&self, key: BatchKey, items: Vec<Waiting<P>>, slot: Option<Slot>) {
        self.metrics
            .pending_in_batches
            .dec_by(i64::try_from(items.len()).unwrap_or(0));
        if self.is_closed() {
            return self.unsent(items, Unsent::Returned).await;
        }
        // Only events this sender still owns go out: one that waited in a batch
        // past its lease may have been taken over by a redelivered copy. The
        // same statement marks them as being sent, so that after a crash the
        // events whose request may have reached Meta are known.
        let tokens = items.iter().map(|w| w.entry.fence_token()).collect();
        let owned = match (self.fence)(tokens).await {
            Ok(owned) => owned,
            Err(e) => {
                tracing::warn!(error = %e, events = items.len(), "could not renew leases; the events will be retried");
                return self.unsent(items, Unsent::FenceFailed).await;
            }
        };
        let (mine, theirs): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|w| owned.contains(&w.entry.fence_token().0));
        self.unsent(theirs, Unsent::TakenOver).await;
        if self.is_closed() {
            return self.unsent(mine, Unsent::Returned).await;
        }
        if !mine.is_empty() {
            self.send_split(&key, mine, slot).await;
        }
    }

    fn send_split<'a>(
        &'a self,
        key: &'a BatchKey,
        items: Vec<Waiting<P>>,
        slot: Option<Slot>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            let n = items.len();
            let request = EventsRequest {
                data: &items,
                test_event_code: key.test_event_code.as_deref(),
                partner_agent: self.partner_agent.as_deref(),
            };
            let proof = key
                .app_secret
                .as_deref()
                .map(|s| appsecret_proof(s, &key.token));
            let answer = {
                let _slot = match slot {
                    Some(s) => Some(s),
                    None => self.slot().await,
                };
                self.client
                    .send_events(
                        &key.pixel_id,
                        &SecretString::from(key.token.clone()),
                        proof.as_deref(),
                        &request,
                    )
                    .await
            };
            let result = self.judge(key, answer, n);
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
            (self.on_answer)(result, items).await;
        })
    }

    fn judge(&self, key: &BatchKey, answer: Answer, n: usize) -> EventResult {
        let error = answer.body.as_ref().and_then(MetaError::from_body);
        let v = verdict(answer.status, error.as_ref());
        self.metrics.request(v);
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
            pixel_id: key.pixel_id.clone(),
            test_event_code: key.test_event_code.clone(),
            verdict: v,
            http_status: answer.status,
            response: answer.body,
            error_message,
            fbtrace_id,
            batch_id: Uuid::new_v4(),
            batch_size: n,
            duration: answer.duration,
            retry_after: answer.retry_after,
        }
    }
}

/// Gives each free request slot to the ready batch that fills it best (any
/// batch when the window is pressed); until a slot frees, batches stay open
/// and keep growing.
async fn dispatch<P: Fenced + Send + Sync + 'static>(batcher: Weak<Batcher<P>>, wake: Arc<Notify>) {
    loop {
        wake.notified().await;
        let Some(me) = batcher.upgrade() else {
            return;
        };
        while let Ok(permit) = me.requests_in_flight.clone().try_acquire_owned() {
            let next = match me.batches.lock() {
                Ok(mut b) => {
                    let pressed = me.pressed(b.pending);
                    b.take_next(me.max_linger, pressed)
                }
                Err(_) => return,
            };
            let Some((key, batch)) = next else {
                drop(permit);
                break;
            };
            let slot = me.wrap(permit);
            let m = me.clone();
            tokio::spawn(async move { m.send(key, batch.items, Some(slot)).await });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test event's entry: its delivery id.
    struct Id(i64);

    impl Fenced for Id {
        fn fence_token(&self) -> (i64, i32) {
            (self.0, 1)
        }
    }

    /// The delivery ids of each batch that left, in order, as the fence saw
    /// them (it owns none, so nothing reaches the network).
    type Left = Arc<Mutex<Vec<Vec<i64>>>>;

    fn batcher(linger_ms: u64, max_linger_ms: u64, max_pending: usize) -> (Arc<Batcher<Id>>, Left) {
        let left: Left = Arc::default();
        let seen = left.clone();
        let graph = Graph::new(
            &meta_graph::GraphSettings {
                graph_base_url: "http://127.0.0.1:9".into(),
                graph_version: "v21.0".into(),
            },
            Duration::from_secs(1),
        )
        .expect("a client");
        let callbacks = Callbacks {
            on_answer: Arc::new(|_, _| Box::pin(async {})),
            on_unsent: Arc::new(|_, _| Box::pin(async {})),
            fence: Arc::new(move |tokens: Vec<(i64, i32)>| {
                if let Ok(mut l) = seen.lock() {
                    l.push(tokens.iter().map(|t| t.0).collect());
                }
                Box::pin(async { Ok(std::collections::HashSet::new()) })
            }),
        };
        let cfg = BatcherConfig {
            batch_size: 500,
            linger: Duration::from_millis(linger_ms),
            max_linger: Duration::from_millis(max_linger_ms),
            max_pending,
            max_concurrent_requests: 1,
            partner_agent: None,
        };
        let metrics =
            crate::metrics::Metrics::new(&mut prometheus_client::registry::Registry::default());
        (Batcher::new(graph, cfg, metrics, callbacks), left)
    }

    fn key(pixel: &str) -> BatchKey {
        BatchKey {
            pixel_id: pixel.into(),
            token: "t".into(),
            app_secret: None,
            test_event_code: None,
        }
    }

    fn submit(b: &Arc<Batcher<Id>>, pixel: &str, id: i64) {
        let event = RawValue::from_string(format!("{{\"event_id\":\"{id}\"}}")).expect("json");
        assert!(b.submit(key(pixel), event, Id(id), Duration::ZERO).is_ok());
    }

    fn left(l: &Left) -> Vec<Vec<i64>> {
        l.lock().expect("lock").clone()
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_waits_while_rabbitmq_holds_more_events_and_goes_once_it_holds_none() {
        let (b, sent) = batcher(200, 5_000, 0);
        b.set_broker_backlog(3_000);
        submit(&b, "p1", 1);
        tokio::time::sleep(Duration::from_millis(900)).await;
        submit(&b, "p1", 2);
        tokio::time::sleep(Duration::from_millis(900)).await;
        assert!(
            left(&sent).is_empty(),
            "no request while the broker holds events"
        );
        b.set_broker_backlog(0);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(
            left(&sent),
            vec![vec![1, 2]],
            "one request for both, once none are left"
        );
        // Without a backlog, the configured linger.
        submit(&b, "p1", 3);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(left(&sent).last(), Some(&vec![3]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_linger_ends_at_max_linger_or_when_events_stop_coming() {
        let (b, sent) = batcher(200, 5_000, 0);
        b.set_broker_backlog(3_000);
        // Events keep coming: the cap ends the wait.
        for i in 0..12 {
            submit(&b, "p1", i);
            tokio::time::sleep(Duration::from_millis(400)).await;
            if i < 11 {
                assert!(left(&sent).is_empty(), "left early, at {i}");
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(
            left(&sent),
            vec![(0..12).collect::<Vec<_>>()],
            "one request at the 5 s cap"
        );
        // Events stop coming (the window is full, say): it goes after ~1 s.
        submit(&b, "p2", 100);
        tokio::time::sleep(Duration::from_millis(1_300)).await;
        assert_eq!(left(&sent).last(), Some(&vec![100]));
    }

    #[tokio::test(start_paused = true)]
    async fn with_the_window_pressed_a_free_slot_takes_the_fullest_batch_before_its_linger() {
        // A window of 8: pressed at 6 held.
        let (b, sent) = batcher(10_000, 10_000, 8);
        for id in 1..=4 {
            submit(&b, "big", id);
        }
        submit(&b, "small", 10);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(left(&sent).is_empty(), "5 of 8 held: the batches linger");
        submit(&b, "big", 5);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            left(&sent),
            vec![vec![1, 2, 3, 4, 5]],
            "the fullest goes, the other keeps filling"
        );
    }

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

    #[test]
    fn a_batch_stays_open_up_to_the_cap_while_the_broker_holds_more_events() {
        let (wait, cap) = (Duration::from_millis(200), Duration::from_secs(5));
        assert_eq!(linger_until(wait, cap, 0), wait);
        assert_eq!(linger_until(wait, cap, 1), cap);
        assert_eq!(linger_until(wait, cap, 12_000), cap);
        // A backlog linger already past the cap is kept.
        let long = Duration::from_secs(8);
        assert_eq!(linger_until(long, cap, 3), long);
    }

    #[test]
    fn a_free_slot_goes_to_the_fullest_ready_batch_unless_one_is_overdue_or_the_window_is_pressed()
    {
        let batch = |n: usize, ready_for: Option<u64>| Open::<()> {
            generation: 0,
            items: (0..n)
                .map(|_| Waiting {
                    event: RawValue::NULL.to_owned(),
                    entry: (),
                })
                .collect(),
            ready_since: ready_for.map(|ms| Instant::now() - Duration::from_millis(ms)),
        };
        let mut b = Batches {
            open: HashMap::from([
                (key("small"), batch(3, Some(10))),
                (key("big"), batch(30, Some(10))),
                (key("biggest-not-ready"), batch(90, None)),
            ]),
            pending: 123,
        };
        let overdue = Duration::from_secs(5);
        let (k, taken) = b.take_next(overdue, false).expect("a ready batch");
        assert_eq!(
            (k.pixel_id.as_str(), taken.items.len(), b.pending),
            ("big", 30, 93)
        );
        b.open.insert(key("old"), batch(1, Some(6_000)));
        b.pending += 1;
        let (k, _) = b.take_next(overdue, false).expect("a ready batch");
        assert_eq!(
            k.pixel_id, "old",
            "a batch ready past max_linger goes first"
        );
        let (k, _) = b.take_next(overdue, false).expect("a ready batch");
        assert_eq!(k.pixel_id, "small");
        assert!(
            b.take_next(overdue, false).is_none(),
            "the unready batch stays open"
        );
        assert_eq!(b.pending, 90);
        b.open.insert(key("ready"), batch(5, Some(10)));
        b.pending += 5;
        let (k, _) = b.take_next(overdue, true).expect("a batch");
        assert_eq!(
            k.pixel_id, "biggest-not-ready",
            "with the window pressed the fullest goes, ready or not"
        );
        assert_eq!(b.pending, 5);
    }
}
