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
    batcher::{BatchKey, Batcher, EventResult},
    loader::{Loaded, Loader, Throttled, throttle_key},
    metrics::Metrics,
};
use bus::{
    Incoming, Outcome,
    messages::{CapiEventQueued, decode},
};
use chrono::Utc;
use domain::{
    capi_event::{EventFacts, EventTime, Ldu, build_event, build_request, check_event_time},
    delivery::AttemptStatus,
    event_names::{ActionSource, AllowedNames},
    meta_errors::{Verdict, retry_delay_ms},
};
use secrecy::ExposeSecret;
use serde_json::Value;
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

/// An event in a batch, with what is needed to record its outcome.
pub(crate) struct Pending {
    ctx: DeliveryContext,
    queued: CapiEventQueued,
    attempt: i32,
    throttle_key: String,
}

pub(crate) type SenderBatcher = Batcher<Pending, Outcome>;

impl crate::batcher::Fenced for Pending {
    fn fence_token(&self) -> (i64, i32) {
        (self.ctx.delivery_id, self.attempt)
    }
}

impl crate::batcher::Dropped for Outcome {
    /// Another handler owns the delivery now and will finish it.
    fn dropped() -> Self {
        Outcome::Ack
    }
    fn fence_failed() -> Self {
        Outcome::Retry(Duration::from_secs(5))
    }
    /// Back to the queue for another sender (the lease is handed back too).
    fn returned() -> Self {
        Outcome::Requeue
    }
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
    Skipped {
        ctx: Box<DeliveryContext>,
        attempt: i32,
        reason: &'static str,
    },
    Send(BatchKey, Value, Box<Pending>),
}

impl Deliverer {
    pub async fn handle(self: &Arc<Self>, batcher: &Arc<SenderBatcher>, m: Incoming) -> Outcome {
        let queued: CapiEventQueued = match decode(&m.payload) {
            Ok(q) => q,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        let retry_soon = Outcome::Retry(Duration::from_millis(
            self.policy.schedule_ms.first().copied().unwrap_or(5_000),
        ));
        // The database futures are boxed: they are large, and unboxed their
        // space would sit in every in-flight message's task while its batch
        // lingers.
        match Box::pin(self.prepare(queued.clone())).await {
            Ok(Prepared::Done(o)) => o,
            Ok(Prepared::Skipped {
                ctx,
                attempt,
                reason,
            }) => {
                self.metrics.event(AttemptStatus::Skipped);
                let entry = log_entry(
                    &ctx,
                    &queued,
                    attempt,
                    AttemptStatus::Skipped,
                    Some(reason),
                    None,
                    None,
                );
                let done = [finished(&ctx, &queued)];
                match Box::pin(self.record(&[entry], &[(AttemptStatus::Skipped, &done[..])], &[]))
                    .await
                {
                    Ok(()) => Outcome::Ack,
                    Err(_) => retry_soon,
                }
            }
            Ok(Prepared::Send(key, event, pending)) => {
                let age = (Utc::now() - pending.ctx.claimed_at)
                    .to_std()
                    .unwrap_or_default();
                let token = crate::batcher::Fenced::fence_token(&*pending);
                match batcher.submit(key, event, *pending, age).await {
                    Some(Outcome::Requeue) => {
                        Box::pin(self.return_unsent(token)).await;
                        Outcome::Requeue
                    }
                    Some(o) => o,
                    None => {
                        tracing::error!(dialog_id = %queued.dialog_id, "the batch was dropped before an answer; retrying");
                        retry_soon
                    }
                }
            }
            Err(e) => {
                tracing::warn!(dialog_id = %queued.dialog_id, level = %queued.level, error = format!("{e:#}"), "delivery failed; retrying");
                retry_soon
            }
        }
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
        let skip = |reason| {
            Ok(Prepared::Skipped {
                ctx: Box::new(ctx.clone()),
                attempt,
                reason,
            })
        };
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
        Ok(Prepared::Send(
            key,
            event,
            Box::new(Pending {
                ctx,
                queued: q,
                attempt,
                throttle_key,
            }),
        ))
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

    /// Hands an unsent event's lease back, so another sender takes it at
    /// once; if that fails the lease simply runs out.
    async fn return_unsent(&self, token: (i64, i32)) {
        let returned = async {
            let mut conn = self.store.pool().get().await?;
            anyhow::Ok(deliveries::return_unsent(&mut conn, &[token]).await?)
        }
        .await;
        if let Err(e) = returned {
            tracing::warn!(
                delivery_id = token.0,
                error = format!("{e:#}"),
                "could not hand a lease back; another sender takes the event when it runs out"
            );
        }
    }

    /// A request's answer for its events: decide each one's fate, record all
    /// of them in one transaction, and return their outcomes in order.
    pub async fn on_answer(
        self: Arc<Self>,
        r: EventResult,
        sent: Vec<(Value, Pending)>,
    ) -> Vec<Outcome> {
        let lag_base = Utc::now();
        // Each row holds its event's part of the request, as if sent alone (no token).
        let (requests, items): (Vec<Value>, Vec<Pending>) = sent
            .into_iter()
            .map(|(event, p)| {
                let request = build_request(
                    vec![event],
                    non_empty(&p.ctx.test_event_code),
                    self.partner_agent.as_deref(),
                );
                (request, p)
            })
            .unzip();
        let outcomes: Vec<(Outcome, AttemptStatus, Option<String>)> =
            items.iter().map(|p| self.decide(&r, p)).collect();
        let mut entries = Vec::with_capacity(items.len());
        let (mut ok, mut failed, mut retry) = (Vec::new(), Vec::new(), Vec::new());
        for ((p, request), (outcome, status, reason)) in items.iter().zip(&requests).zip(&outcomes)
        {
            self.metrics.queue_lag_seconds.observe(
                (lag_base - p.ctx.claimed_at)
                    .to_std()
                    .unwrap_or_default()
                    .as_secs_f64(),
            );
            entries.push(log_entry(
                &p.ctx,
                &p.queued,
                p.attempt,
                *status,
                reason.as_deref(),
                Some(request),
                Some(&r),
            ));
            match (status, outcome) {
                (AttemptStatus::Success, _) => ok.push(finished(&p.ctx, &p.queued)),
                (_, Outcome::Retry(_)) => retry.push(p.ctx.delivery_id),
                _ => failed.push(finished(&p.ctx, &p.queued)),
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
                    events = items.len(),
                    "could not record Meta's answer; the events will be retried"
                );
                let wait = Duration::from_secs(self.lease.as_secs() + 1);
                items.iter().map(|_| Outcome::Retry(wait)).collect()
            }
        }
    }

    fn decide(&self, r: &EventResult, p: &Pending) -> (Outcome, AttemptStatus, Option<String>) {
        let (ctx, q) = (&p.ctx, &p.queued);
        match r.verdict {
            Verdict::Accepted => {
                tracing::info!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, pixel_id = ?ctx.pixel_id, batch_size = r.batch_size, "CAPI event sent");
                self.metrics.event(AttemptStatus::Success);
                (Outcome::Ack, AttemptStatus::Success, None)
            }
            Verdict::Invalid | Verdict::Permanent => {
                tracing::error!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, verdict = ?r.verdict,
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
                let attempt_no = u32::try_from(p.attempt).unwrap_or(u32::MAX);
                let Some(mut wait) = retry_delay_ms(
                    &self.policy.schedule_ms,
                    attempt_no,
                    self.policy.jitter,
                    rand::random::<f64>(),
                )
                .map(Duration::from_millis) else {
                    tracing::error!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, attempt = p.attempt, "giving up after the last attempt");
                    self.metrics.event(AttemptStatus::Error);
                    let why = format!("gave up after {} attempts", p.attempt);
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
                        t.insert(p.throttle_key.clone(), Instant::now() + backoff);
                    }
                }
                tracing::warn!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, attempt = p.attempt, verdict = label,
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

fn finished<'a>(ctx: &'a DeliveryContext, q: &CapiEventQueued) -> Finished<'a> {
    Finished {
        delivery_id: ctx.delivery_id,
        level: q.level,
        event_id: &ctx.event_id,
    }
}

fn log_entry<'a>(
    ctx: &'a DeliveryContext,
    q: &CapiEventQueued,
    attempt: i32,
    status: AttemptStatus,
    reason: Option<&'a str>,
    request: Option<&'a Value>,
    r: Option<&'a EventResult>,
) -> LogEntry<'a> {
    LogEntry {
        // The delivery's dialog as loaded: a merge may have moved it since
        // the event was queued.
        dialog_id: Some(ctx.dialog_id),
        direction_id: ctx.direction_id,
        user_account_id: ctx.user_account_id,
        level: q.level,
        event_name: ctx.event_name(q.level, ctx.action_source()),
        event_id: &ctx.event_id,
        pixel_id: ctx.pixel_id.as_deref(),
        status,
        attempt,
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
