//! One claimed (dialog, level): lease it, check it, hand it to its batch, and
//! record what Meta said — one `capi_events_log` row per attempt, written for
//! a whole request at once.
//!
//! Exactly once: the delivery row is leased before the request and closed
//! (with the dialog's `capi_<level>_sent` flags) in the same transaction as the
//! success row; a message for a closed delivery is acknowledged without a
//! request. Just before a request leaves, its events are marked as being sent
//! (`sending_at`, `sending_by`) in the statement that checks their leases;
//! an answer or a hand-back clears the mark. On SIGTERM the events not yet
//! in a request are handed back (lease and attempt returned, message back to
//! the queue) and the requests already sent finish and are recorded.
//!
//! The one remaining window for a duplicate is a process killed while a
//! request is out or before its answer is recorded (the record is retried
//! in-process so that stays as short as one transaction). Meta has no way to
//! ask whether it received an event, so the next owner, once the lease has
//! run out, sends such an event again rather than lose it — and knows it
//! does: the mark is still there, so it logs the event id and counts it in
//! `capi_uncertain_resends_total`. The possible duplicates of a kill
//! are exactly the pending deliveries marked by the killed process.

use crate::{
    batcher::{BatchKey, Batcher, EventResult, Unsent, Waiting},
    loader::{Loaded, Loader, ThrottleKey, Throttled, throttle_key},
    metrics::Metrics,
};
use bus::{
    Incoming, Outcome, Settle,
    messages::{CapiEventQueued, decode},
};
use chrono::{DateTime, Utc};
use domain::{
    capi_event::{EventFacts, EventTime, Ldu, build_event, build_request, check_event_time},
    delivery::AttemptStatus,
    event_names::{ActionSource, AllowedNames},
    ids::{DialogId, DirectionId, EventId, UserAccountId},
    level::Level,
    meta_errors::{Verdict, retry_delay_ms},
};
use futures_util::future::join_all;
use secrecy::ExposeSecret;
use serde_json::{Value, value::RawValue};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use storage::{
    Store,
    deliveries::{self, DeliveryContext, Finished, LogEntry},
};

/// When to try again.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Wait before attempt 2, 3, …; once exhausted the event is dead-lettered.
    pub schedule_ms: Vec<u64>,
    /// ±fraction applied to each wait.
    pub jitter: f64,
    /// A throttled ad account waits at least this long (its events only).
    pub throttle_backoff: Duration,
    /// Events older than 7 days minus this are skipped as `too_old`.
    pub age_margin_secs: i64,
}

/// What recording one attempt needs besides the event (whose JSON holds
/// its id and name) and the request (its pixel): the small record a
/// waiting event keeps, with no allocation of its own (the delivery's
/// context is dropped once the event is built).
pub(crate) struct Record {
    delivery_id: i64,
    attempt: i32,
    level: Level,
    /// The delivery's dialog as loaded: a merge may have moved it since
    /// the event was queued.
    dialog_id: DialogId,
    direction_id: Option<DirectionId>,
    user_account_id: Option<UserAccountId>,
    claimed_at: DateTime<Utc>,
}

impl Record {
    fn of(ctx: &DeliveryContext, level: Level, attempt: i32) -> Record {
        Record {
            delivery_id: ctx.delivery_id,
            attempt,
            level,
            dialog_id: ctx.dialog_id,
            direction_id: ctx.direction_id,
            user_account_id: ctx.user_account_id,
            claimed_at: ctx.claimed_at,
        }
    }

    fn finished<'a>(&self, event_id: &'a EventId) -> Finished<'a> {
        Finished {
            delivery_id: self.delivery_id,
            level: self.level,
            event_id,
        }
    }
}

/// The names a log row takes from the event: its id and name, read back
/// from the JSON that was sent (a skipped event has them from its context).
struct Named<'a> {
    event_id: &'a EventId,
    event_name: &'a str,
    pixel_id: Option<&'a str>,
}

/// An event in a batch: its record, its ad account's throttling key, and
/// what settles its message once Meta has answered.
pub(crate) struct Pending {
    record: Record,
    throttle_key: ThrottleKey,
    settle: Settle,
}

pub(crate) type SenderBatcher = Batcher<Pending>;

impl crate::batcher::Fenced for Pending {
    fn fence_token(&self) -> (i64, i32) {
        (self.record.delivery_id, self.record.attempt)
    }
}

/// Settles many messages at once, each with its outcome. A waiting event's
/// message has let its body go; a delayed retry republishes it written
/// again from the event (its id) and the record.
async fn settle_all(settles: impl IntoIterator<Item = (Waiting<Pending>, Outcome)>) {
    join_all(settles.into_iter().map(|(w, outcome)| {
        let body = matches!(outcome, Outcome::Retry(_))
            .then(|| queued_again(&w.entry.record, &w.event))
            .flatten();
        w.entry.settle.settle_with_body(outcome, body)
    }))
    .await;
}

/// The `capi.event` message of a waiting event, as qualification queued it.
fn queued_again(record: &Record, event: &RawValue) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Id {
        event_id: EventId,
    }
    let Id { event_id } = serde_json::from_str(event.get()).ok()?;
    let queued = CapiEventQueued {
        dialog_id: record.dialog_id,
        level: record.level,
        event_id,
    };
    serde_json::to_vec(&bus::messages::encode(&queued)).ok()
}

pub(crate) struct Deliverer {
    pub store: Store,
    pub policy: RetryPolicy,
    pub lease: Duration,
    pub metrics: Arc<Metrics>,
    pub loader: Loader,
    pub throttled: Throttled,
    pub partner_agent: Option<String>,
    /// `meta.business_messaging_event_names`.
    pub allowed_names: AllowedNames,
    /// This process, as `sending_by` records it: host and pid.
    pub sender_id: String,
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

enum Prepared {
    Done(Outcome),
    Skipped(Box<DeliveryContext>, i32, &'static str),
    Send {
        key: BatchKey,
        event: Box<RawValue>,
        record: Record,
        throttle_key: ThrottleKey,
    },
}

impl Deliverer {
    /// Takes one message: settles it at once when there is nothing to send,
    /// else hands it to its batch, whose answer settles it.
    pub async fn handle(
        self: &Arc<Self>,
        batcher: &Arc<SenderBatcher>,
        m: Incoming,
        settle: Settle,
    ) {
        let queued: CapiEventQueued = match decode(&m.payload) {
            Ok(q) => q,
            Err(e) => return settle.settle(Outcome::DeadLetter(e.to_string())).await,
        };
        drop(m);
        let retry_soon = Outcome::Retry(Duration::from_millis(
            self.policy.schedule_ms.first().copied().unwrap_or(5_000),
        ));
        let (dialog_id, level) = (queued.dialog_id, queued.level);
        // The database futures are boxed: they are large, and unboxed their
        // space would sit in every in-flight message's task.
        let outcome = match Box::pin(self.prepare(queued)).await {
            Ok(Prepared::Done(o)) => o,
            Ok(Prepared::Skipped(ctx, attempt, reason)) => {
                self.metrics.event(AttemptStatus::Skipped);
                let record = Record::of(&ctx, level, attempt);
                let named = Named {
                    event_id: &ctx.event_id,
                    event_name: ctx.event_name(record.level, ctx.action_source()),
                    pixel_id: ctx.pixel_id.as_deref(),
                };
                let entry = log_entry(
                    &record,
                    &named,
                    AttemptStatus::Skipped,
                    Some(reason),
                    None,
                    None,
                );
                let done = [record.finished(&ctx.event_id)];
                match Box::pin(self.record(&[entry], &[(AttemptStatus::Skipped, &done[..])], &[]))
                    .await
                {
                    Ok(()) => Outcome::Ack,
                    Err(_) => retry_soon,
                }
            }
            Ok(Prepared::Send {
                key,
                event,
                record,
                throttle_key,
            }) => {
                let age = (Utc::now() - record.claimed_at)
                    .to_std()
                    .unwrap_or_default();
                // While it waits, the message's body is not kept: a retry
                // writes it again (`settle_all`).
                let mut settle = settle;
                settle.release_body();
                let pending = Pending {
                    record,
                    throttle_key,
                    settle,
                };
                // The batch's answer settles it; a closed batcher gives it back.
                if let Err(w) = batcher.submit(key, event, pending, age) {
                    Box::pin(self.clone().on_unsent(vec![w], Unsent::Returned)).await;
                }
                return;
            }
            Err(e) => {
                tracing::warn!(%dialog_id, %level, error = format!("{e:#}"), "delivery failed; retrying");
                retry_soon
            }
        };
        settle.settle(outcome).await;
    }

    async fn prepare(&self, q: CapiEventQueued) -> anyhow::Result<Prepared> {
        let (dialog_id, level) = (q.dialog_id, q.level);
        let (ctx, lease) = match self.loader.load(&q.event_id).await? {
            Loaded::Missing => {
                return Ok(Prepared::Done(Outcome::DeadLetter(format!(
                    "no claimed {level} delivery {} for dialog {dialog_id}",
                    q.event_id
                ))));
            }
            Loaded::Finished(status) => {
                tracing::debug!(%dialog_id, %level, %status, "already delivered; nothing to send");
                return Ok(Prepared::Done(Outcome::Ack));
            }
            // A throttled ad account's events wait without using an attempt.
            Loaded::Throttled(wait) | Loaded::Leased(wait) => {
                return Ok(Prepared::Done(Outcome::Retry(wait)));
            }
            Loaded::Ready(ctx, lease) => (*ctx, lease),
        };
        let attempt = lease.attempt;
        if lease.uncertain {
            self.metrics.uncertain_resends.inc();
            tracing::warn!(%dialog_id, %level, event_id = %ctx.event_id, attempt,
                "the previous request for this event may have reached Meta (its sender stopped before recording the answer); sending it again, so Meta may count it twice");
        }
        let token = ctx
            .access_token
            .open(self.store.keys(), storage::secrets::AD_ACCESS_TOKEN)?;
        let token = token.as_ref().map(ExposeSecret::expose_secret);
        let app_secret = ctx
            .app_secret
            .open(self.store.keys(), storage::secrets::AD_APP_SECRET)?;
        let key = throttle_key(&ctx, token);
        let skip = |reason| Ok(Prepared::Skipped(Box::new(ctx.clone()), attempt, reason));
        let Some(pixel_id) = non_empty(&ctx.pixel_id) else {
            tracing::warn!(%dialog_id, %level, "skipped: the direction has no pixel");
            return skip("no_pixel");
        };
        let (Some(token), Some(throttle_key)) = (token.filter(|t| !t.trim().is_empty()), key)
        else {
            tracing::warn!(%dialog_id, %level, direction_id = ?ctx.direction_id, "skipped: no access token on the ad account or user account");
            return skip("no_access_token");
        };
        let event_time = match check_event_time(
            ctx.event_time.timestamp(),
            Utc::now().timestamp(),
            self.policy.age_margin_secs,
        ) {
            EventTime::Send(t) => t,
            EventTime::TooOld => {
                tracing::warn!(%dialog_id, %level, event_time = %ctx.event_time, "skipped: older than Meta's 7-day window");
                return skip("too_old");
            }
        };
        let source = ctx.action_source();
        let facts = EventFacts {
            dialog_id,
            conversion: ctx.conversion(),
            event_name: ctx.event_name(level, source),
            event_time,
            phone: non_empty(&ctx.contact_phone),
            ctwa_clid: non_empty(&ctx.ctwa_clid),
            waba_id: non_empty(&ctx.waba_id),
            ldu: (ctx.ldu_enabled == Some(true)).then(|| Ldu {
                country: ctx.ldu_country.unwrap_or(0),
                state: ctx.ldu_state.unwrap_or(0),
            }),
        };
        // What Meta would refuse (a name off its list, no WABA id on a
        // click event) or could not match is not sent.
        let event = match build_event(&facts, &self.allowed_names) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%dialog_id, %level, direction_id = ?ctx.direction_id, reason = %e, "skipped");
                return skip(e.reason());
            }
        };
        if source == ActionSource::Other {
            tracing::warn!(%dialog_id, %level, "no ctwa_clid for this dialog: sending with action_source=other (no ad attribution)");
        }
        let test_event_code = non_empty(&ctx.test_event_code).map(str::to_owned);
        let key = BatchKey {
            pixel_id: pixel_id.to_owned(),
            token: token.to_owned(),
            app_secret: app_secret.map(|s| s.expose_secret().to_owned()),
            test_event_code,
        };
        Ok(Prepared::Send {
            key,
            event: serde_json::value::to_raw_value(&event)?,
            record: Record::of(&ctx, level, attempt),
            throttle_key,
        })
    }

    /// Marks the events about to be sent and renews their leases; returns
    /// those still ours.
    pub async fn fence(
        self: Arc<Self>,
        tokens: Vec<(i64, i32)>,
    ) -> Result<std::collections::HashSet<i64>, String> {
        let lease_secs = i64::try_from(self.lease.as_secs()).unwrap_or(60);
        let owned = async {
            let mut conn = self.store.pool().get().await?;
            anyhow::Ok(
                deliveries::mark_sending(&mut conn, &tokens, lease_secs, &self.sender_id).await?,
            )
        }
        .await
        .map_err(|e| format!("{e:#}"))?;
        if owned.len() < tokens.len() {
            tracing::warn!(
                dropped = tokens.len() - owned.len(),
                "events taken over by another handler were left out of a batch"
            );
        }
        Ok(owned.into_iter().collect())
    }

    /// Events that were not sent after all: taken over by another handler
    /// (acknowledged: the owner finishes it), not checked (retried soon), or
    /// returned on stop (leases handed back in one statement, so another
    /// sender takes them at once, and the messages back to the queue; if the
    /// hand-back fails the leases simply run out).
    pub async fn on_unsent(self: Arc<Self>, entries: Vec<Waiting<Pending>>, why: Unsent) {
        let outcome = match why {
            Unsent::TakenOver => Outcome::Ack,
            Unsent::FenceFailed => Outcome::Retry(Duration::from_secs(5)),
            Unsent::Returned => {
                let tokens: Vec<(i64, i32)> = entries
                    .iter()
                    .map(|w| crate::batcher::Fenced::fence_token(&w.entry))
                    .collect();
                let returned = async {
                    let mut conn = self.store.pool().get().await?;
                    anyhow::Ok(deliveries::return_unsent(&mut conn, &tokens).await?)
                }
                .await;
                if let Err(e) = returned {
                    tracing::warn!(
                        events = tokens.len(),
                        error = format!("{e:#}"),
                        "could not hand leases back; another sender takes the events when they run out"
                    );
                }
                Outcome::Requeue
            }
        };
        settle_all(entries.into_iter().map(|w| (w, outcome.clone()))).await;
    }

    /// A request's answer for its events: decide each one's fate, record all
    /// of them in one transaction, then settle their messages.
    pub async fn on_answer(self: Arc<Self>, r: EventResult, sent: Vec<Waiting<Pending>>) {
        let outcomes = self.record_answer(&r, &sent).await;
        settle_all(sent.into_iter().zip(outcomes)).await;
    }

    async fn record_answer(&self, r: &EventResult, sent: &[Waiting<Pending>]) -> Vec<Outcome> {
        let lag_base = Utc::now();
        // Each row holds its event's part of the request, as if sent alone
        // (no token), and the id and name the event carries.
        let requests: Vec<(Value, EventId, String)> = sent
            .iter()
            .map(|w| {
                let event: Value = serde_json::from_str(w.event.get()).unwrap_or(Value::Null);
                let field = |name| event[name].as_str().unwrap_or_default().to_owned();
                let (id, name) = (EventId::from(field("event_id")), field("event_name"));
                let request = build_request(
                    vec![event],
                    r.test_event_code.as_deref(),
                    self.partner_agent.as_deref(),
                );
                (request, id, name)
            })
            .collect();
        let outcomes: Vec<(Outcome, AttemptStatus, Option<String>)> = sent
            .iter()
            .zip(&requests)
            .map(|(w, (_, event_id, _))| self.decide(r, &w.entry, event_id))
            .collect();
        let mut entries = Vec::with_capacity(sent.len());
        let (mut ok, mut failed, mut retry) = (Vec::new(), Vec::new(), Vec::new());
        let named: Vec<Named<'_>> = requests
            .iter()
            .map(|(_, event_id, event_name)| Named {
                event_id,
                event_name,
                pixel_id: Some(&r.pixel_id),
            })
            .collect();
        for (((w, (request, _, _)), named), (outcome, status, reason)) in
            sent.iter().zip(&requests).zip(&named).zip(&outcomes)
        {
            let p = &w.entry.record;
            self.metrics.queue_lag_seconds.observe(
                (lag_base - p.claimed_at)
                    .to_std()
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
            entries.push(log_entry(
                p,
                named,
                *status,
                reason.as_deref(),
                Some(request),
                Some(r),
            ));
            match (status, outcome) {
                (AttemptStatus::Success, _) => ok.push(p.finished(named.event_id)),
                (_, Outcome::Retry(_)) => retry.push(p.delivery_id),
                _ => failed.push(p.finished(named.event_id)),
            }
        }
        let closes = [
            (AttemptStatus::Success, &ok[..]),
            (AttemptStatus::Error, &failed[..]),
        ];
        match self.record(&entries, &closes, &retry).await {
            Ok(()) => outcomes.into_iter().map(|(o, _, _)| o).collect(),
            Err(e) => {
                tracing::error!(
                    error = format!("{e:#}"),
                    events = sent.len(),
                    "could not record Meta's answer; the events will be retried"
                );
                let wait = Duration::from_secs(self.lease.as_secs() + 1);
                sent.iter().map(|_| Outcome::Retry(wait)).collect()
            }
        }
    }

    fn decide(
        &self,
        r: &EventResult,
        p: &Pending,
        event_id: &EventId,
    ) -> (Outcome, AttemptStatus, Option<String>) {
        let rec = &p.record;
        match r.verdict {
            Verdict::Accepted => {
                tracing::info!(dialog_id = %rec.dialog_id, level = %rec.level, event_id = %event_id, pixel_id = %r.pixel_id, batch_size = r.batch_size, "CAPI event sent");
                self.metrics.event(AttemptStatus::Success);
                (Outcome::Ack, AttemptStatus::Success, None)
            }
            Verdict::Invalid | Verdict::Permanent => {
                tracing::error!(dialog_id = %rec.dialog_id, level = %rec.level, event_id = %event_id, verdict = ?r.verdict,
                    message = ?r.error_message, "Meta rejected the event");
                self.metrics.event(AttemptStatus::Error);
                let reason = if r.verdict == Verdict::Invalid {
                    "invalid"
                } else {
                    "permanent"
                };
                (Outcome::Ack, AttemptStatus::Error, Some(reason.to_owned()))
            }
            Verdict::Transient | Verdict::Throttled => {
                let label = if r.verdict == Verdict::Throttled {
                    "throttled"
                } else {
                    "transient"
                };
                let attempt_no = u32::try_from(rec.attempt).unwrap_or(u32::MAX);
                let Some(mut wait) = retry_delay_ms(
                    &self.policy.schedule_ms,
                    attempt_no,
                    self.policy.jitter,
                    rand::random::<f64>(),
                )
                .map(Duration::from_millis) else {
                    tracing::error!(dialog_id = %rec.dialog_id, level = %rec.level, event_id = %event_id, attempt = rec.attempt, "giving up after the last attempt");
                    self.metrics.event(AttemptStatus::Error);
                    let why = format!("gave up after {} attempts", rec.attempt);
                    return (
                        Outcome::DeadLetter(why.clone()),
                        AttemptStatus::Error,
                        Some(format!("{label} ({why})")),
                    );
                };
                if r.verdict == Verdict::Throttled {
                    // Meta's own Retry-After, when longer than ours, wins.
                    let backoff = self
                        .policy
                        .throttle_backoff
                        .max(r.retry_after.unwrap_or_default());
                    wait = wait.max(backoff);
                    if let Ok(mut t) = self.throttled.lock() {
                        t.insert(p.throttle_key, Instant::now() + backoff);
                    }
                }
                tracing::warn!(dialog_id = %rec.dialog_id, level = %rec.level, event_id = %event_id, attempt = rec.attempt, verdict = label,
                    retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "Meta unavailable; will retry");
                self.metrics.retries.inc();
                (
                    Outcome::Retry(wait),
                    AttemptStatus::Error,
                    Some(format!("{label}; will retry")),
                )
            }
        }
    }

    /// Log rows, closed deliveries (flags on success) and released leases, in
    /// one transaction; retried for a while, since after Meta's 200 this is
    /// what stands between us and a duplicate.
    async fn record(
        &self,
        entries: &[LogEntry<'_>],
        closes: &[(AttemptStatus, &[Finished<'_>])],
        released: &[i64],
    ) -> anyhow::Result<()> {
        use diesel_async::AsyncConnection;
        let mut delay = Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            let result = async {
                let mut conn = self.store.pool().get().await?;
                conn.transaction::<_, storage::DbError, _>(async |conn| {
                    deliveries::insert_logs(conn, entries).await?;
                    for (status, done) in closes {
                        deliveries::finish_many(conn, done, *status).await?;
                    }
                    deliveries::release_many(conn, released).await?;
                    Ok(())
                })
                .await?;
                anyhow::Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if tries < 20 => {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "could not record attempts; retrying"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn log_entry<'a>(
    p: &'a Record,
    named: &Named<'a>,
    status: AttemptStatus,
    reason: Option<&'a str>,
    request: Option<&'a Value>,
    r: Option<&'a EventResult>,
) -> LogEntry<'a> {
    LogEntry {
        dialog_id: Some(p.dialog_id),
        direction_id: p.direction_id,
        user_account_id: p.user_account_id,
        level: p.level,
        event_name: named.event_name,
        event_id: named.event_id,
        pixel_id: named.pixel_id,
        status,
        attempt: p.attempt,
        reason,
        request,
        response: r.and_then(|r| r.response.as_ref()),
        http_status: r.and_then(|r| r.http_status).map(i32::from),
        error_message: r
            .and_then(|r| r.error_message.as_deref())
            .filter(|_| status != AttemptStatus::Success),
        duration_ms: r.map(|r| i32::try_from(r.duration.as_millis()).unwrap_or(i32::MAX)),
        batch_id: r.map(|r| r.batch_id),
        batch_size: r.map(|r| i32::try_from(r.batch_size).unwrap_or(i32::MAX)),
        fbtrace_id: r.and_then(|r| r.fbtrace_id.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use std::mem::size_of;

    #[test]
    fn a_retry_writes_the_queued_message_again_from_the_event_and_its_record() {
        let record = Record {
            delivery_id: 7,
            attempt: 2,
            level: Level::Qualified,
            dialog_id: DialogId::from(uuid::Uuid::from_u128(5)),
            direction_id: None,
            user_account_id: None,
            claimed_at: Utc::now(),
        };
        let event = serde_json::value::to_raw_value(&serde_json::json!({
            "event_name": "Lead", "event_id": "0f8c6d2e-1", "user_data": {"ph": ["ab"]}
        }))
        .expect("an event");
        let body = queued_again(&record, &event).expect("a body");
        let queued: CapiEventQueued = decode(&body).expect("a capi.event message");
        assert_eq!(
            queued,
            CapiEventQueued {
                dialog_id: record.dialog_id,
                level: Level::Qualified,
                event_id: EventId::from("0f8c6d2e-1"),
            }
        );
        assert_eq!(queued_again(&record, &RawValue::NULL.to_owned()), None);
    }

    /// What one waiting event costs besides its JSON and the heap its
    /// record's strings use (docs/capi-sender.md, "Memory against the
    /// window"); the figures of what it replaced are printed beside.
    #[test]
    fn a_waiting_event_is_a_small_record() {
        let sizes = [
            ("Waiting<Pending>", size_of::<Waiting<Pending>>()),
            ("Pending", size_of::<Pending>()),
            ("Record", size_of::<Record>()),
            ("bus::Settle", size_of::<Settle>()),
            ("(before) DeliveryContext", size_of::<DeliveryContext>()),
            ("(before) CapiEventQueued", size_of::<CapiEventQueued>()),
            ("(before) bus::Incoming", size_of::<Incoming>()),
            ("(before) serde_json::Value", size_of::<Value>()),
        ];
        for (name, bytes) in sizes {
            println!("{name:<28} {bytes:>5} bytes");
        }
        assert!(
            size_of::<Waiting<Pending>>() <= 256,
            "a waiting event's fixed part grew to {} bytes",
            size_of::<Waiting<Pending>>()
        );
    }
}
