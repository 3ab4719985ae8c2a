//! One claimed (dialog, level): lease it, check it, hand it to its batch, and
//! record what Meta said — one `capi_events_log` row per attempt.
//!
//! Exactly once: the delivery row is leased before the request and closed
//! (with the dialog's `capi_<level>_sent` flags) in the same transaction as the
//! success row; a message for a closed delivery is acknowledged without a
//! request. The one remaining window for a duplicate is a crash after Meta's
//! 200 and before that transaction commits; it is retried in-process so the
//! window stays as short as one small transaction.

use crate::{
    batcher::{BatchKey, Batcher, EventResult},
    metrics::Metrics,
};
use bus::{
    Incoming, Outcome,
    messages::{CapiEventQueued, decode},
};
use chrono::Utc;
use domain::{
    capi::{EventFacts, EventTime, Ldu, build_event, build_request, check_event_time},
    meta_errors::{Verdict, retry_delay_ms},
};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use storage::{
    DbPool,
    capi::{self, DeliveryContext, LogEntry, LogStatus},
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

pub(crate) struct Deliverer {
    pub pool: DbPool,
    pub batcher: Arc<Batcher>,
    pub policy: RetryPolicy,
    pub lease: Duration,
    pub metrics: Arc<Metrics>,
    /// Ad accounts Meta is throttling, and until when.
    pub throttled: Mutex<HashMap<String, Instant>>,
}

/// What one attempt ended with.
struct Attempt {
    status: LogStatus,
    reason: Option<String>,
    request: Option<Value>,
    result: Option<EventResult>,
}

impl Attempt {
    fn skipped(reason: &str) -> Attempt {
        Attempt {
            status: LogStatus::Skipped,
            reason: Some(reason.to_owned()),
            request: None,
            result: None,
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Throttling is per ad account; without one, per token.
fn throttle_key(ctx: &DeliveryContext, token: &str) -> String {
    match ctx.ad_account_id {
        Some(id) => id.to_string(),
        None => hex::encode(&Sha256::digest(token.as_bytes())[..8]),
    }
}

impl Deliverer {
    pub async fn handle(self: &Arc<Self>, m: Incoming) -> Outcome {
        let queued: CapiEventQueued = match decode(&m.payload) {
            Ok(q) => q,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        match self.deliver(&queued).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(dialog_id = %queued.dialog_id, level = %queued.level, error = format!("{e:#}"), "delivery failed; retrying");
                Outcome::Retry(Duration::from_millis(
                    self.policy.schedule_ms.first().copied().unwrap_or(5_000),
                ))
            }
        }
    }

    fn throttled_for(&self, key: &str) -> Option<Duration> {
        let until = *self.throttled.lock().ok()?.get(key)?;
        until.checked_duration_since(Instant::now())
    }

    async fn deliver(self: &Arc<Self>, q: &CapiEventQueued) -> anyhow::Result<Outcome> {
        let mut conn = self.pool.get().await?;
        let Some(ctx) = capi::delivery_context(&mut conn, q.dialog_id, q.level).await? else {
            return Ok(Outcome::DeadLetter(format!(
                "no claimed {} delivery for dialog {}",
                q.level, q.dialog_id
            )));
        };
        if ctx.status != "pending" {
            tracing::debug!(dialog_id = %q.dialog_id, level = %q.level, status = %ctx.status, "already delivered; nothing to send");
            return Ok(Outcome::Ack);
        }
        // A throttled ad account's events wait without using an attempt.
        let key = non_empty(&ctx.access_token).map(|t| throttle_key(&ctx, t));
        if let Some(wait) = key.as_deref().and_then(|k| self.throttled_for(k)) {
            return Ok(Outcome::Retry(wait));
        }
        let lease_secs = i64::try_from(self.lease.as_secs()).unwrap_or(60);
        let Some(attempt) = capi::lease(&mut conn, ctx.delivery_id, lease_secs).await? else {
            // Another sender holds it (or it just finished): look again once its lease would end.
            let wait = ctx
                .lease_until
                .and_then(|t| (t - Utc::now()).to_std().ok())
                .unwrap_or_default();
            return Ok(Outcome::Retry(wait + Duration::from_secs(1)));
        };
        drop(conn);
        let a = self.attempt(&ctx, q).await;
        let outcome = self.decide(&ctx, q, attempt, &a, key.as_deref());
        self.persist(&ctx, q, attempt, &a, &outcome).await?;
        Ok(outcome)
    }

    async fn attempt(self: &Arc<Self>, ctx: &DeliveryContext, q: &CapiEventQueued) -> Attempt {
        let (dialog_id, level) = (q.dialog_id, q.level);
        let Some(pixel_id) = non_empty(&ctx.pixel_id) else {
            tracing::warn!(%dialog_id, %level, "skipped: the direction has no pixel");
            return Attempt::skipped("no_pixel");
        };
        let Some(token) = non_empty(&ctx.access_token) else {
            tracing::warn!(%dialog_id, %level, direction_id = ?ctx.direction_id, "skipped: no access token on the ad account or user account");
            return Attempt::skipped("no_access_token");
        };
        let event_time = match check_event_time(
            ctx.event_time.timestamp(),
            Utc::now().timestamp(),
            self.policy.age_margin_secs,
        ) {
            EventTime::Send(t) => t,
            EventTime::TooOld => {
                tracing::warn!(%dialog_id, %level, event_time = %ctx.event_time, "skipped: older than Meta's 7-day window");
                return Attempt::skipped("too_old");
            }
        };
        let facts = EventFacts {
            dialog_id,
            level,
            event_name: ctx.event_name(level),
            event_time,
            phone: non_empty(&ctx.contact_phone),
            ctwa_clid: non_empty(&ctx.ctwa_clid),
            waba_id: non_empty(&ctx.waba_id),
            ldu: (ctx.ldu_enabled == Some(true)).then(|| Ldu {
                country: ctx.ldu_country.unwrap_or(0),
                state: ctx.ldu_state.unwrap_or(0),
            }),
        };
        let event = match build_event(&facts) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%dialog_id, %level, reason = %e, "skipped");
                return Attempt::skipped("no_user_data");
            }
        };
        if facts.ctwa_clid.is_none() {
            tracing::warn!(%dialog_id, %level, "no ctwa_clid for this dialog: sending with action_source=other (no ad attribution)");
        }
        let test_event_code = non_empty(&ctx.test_event_code).map(str::to_owned);
        let request = build_request(
            vec![event.clone()],
            test_event_code.as_deref(),
            self.batcher.partner_agent(),
        );
        let key = BatchKey {
            pixel_id: pixel_id.to_owned(),
            token: token.to_owned(),
            app_secret: non_empty(&ctx.app_secret).map(str::to_owned),
            test_event_code,
        };
        let result = self.batcher.submit(key, event).await;
        if result.is_none() {
            tracing::error!(%dialog_id, %level, "the batch was dropped before an answer; retrying");
        }
        Attempt {
            status: LogStatus::Error,
            reason: None,
            request: Some(request),
            result,
        }
    }

    /// Turns Meta's verdict into what happens to the message (and notes throttling).
    fn decide(
        &self,
        ctx: &DeliveryContext,
        q: &CapiEventQueued,
        attempt: i32,
        a: &Attempt,
        key: Option<&str>,
    ) -> Outcome {
        if a.status == LogStatus::Skipped {
            self.metrics.event("skipped");
            return Outcome::Ack;
        }
        let verdict = a.result.as_ref().map_or(Verdict::Transient, |r| r.verdict);
        if a.result.is_some() {
            let lag = (Utc::now() - ctx.claimed_at).to_std().unwrap_or_default();
            self.metrics.queue_lag_seconds.observe(lag.as_secs_f64());
        }
        match verdict {
            Verdict::Accepted => {
                tracing::info!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, pixel_id = ?ctx.pixel_id, "CAPI event sent");
                self.metrics.event("sent");
                Outcome::Ack
            }
            Verdict::Invalid | Verdict::Permanent => {
                tracing::error!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, ?verdict,
                    message = ?a.result.as_ref().and_then(|r| r.error_message.clone()), "Meta rejected the event");
                self.metrics.event("failed");
                Outcome::Ack
            }
            Verdict::Transient | Verdict::Throttled => {
                let attempt_no = u32::try_from(attempt).unwrap_or(u32::MAX);
                let Some(mut wait) = retry_delay_ms(
                    &self.policy.schedule_ms,
                    attempt_no,
                    self.policy.jitter,
                    rand::random::<f64>(),
                )
                .map(Duration::from_millis) else {
                    tracing::error!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, attempt, "giving up after the last attempt");
                    self.metrics.event("failed");
                    return Outcome::DeadLetter(format!("gave up after {attempt} attempts"));
                };
                if verdict == Verdict::Throttled {
                    wait = wait.max(self.policy.throttle_backoff);
                    if let (Some(k), Ok(mut t)) = (key, self.throttled.lock()) {
                        t.insert(k.to_owned(), Instant::now() + self.policy.throttle_backoff);
                    }
                }
                tracing::warn!(dialog_id = %q.dialog_id, level = %q.level, event_id = %ctx.event_id, attempt, ?verdict, retry_in_ms = wait.as_millis() as u64, "Meta unavailable; will retry");
                self.metrics.retries.inc();
                Outcome::Retry(wait)
            }
        }
    }

    /// Writes the attempt's log row and, if the delivery is over, closes it
    /// (setting the flags on success), in one transaction.
    async fn persist(
        &self,
        ctx: &DeliveryContext,
        q: &CapiEventQueued,
        attempt: i32,
        a: &Attempt,
        outcome: &Outcome,
    ) -> anyhow::Result<()> {
        use diesel_async::AsyncConnection;
        let r = a.result.as_ref();
        let verdict = r.map(|r| r.verdict);
        let (status, finished, reason) = match (a.status, verdict, outcome) {
            (LogStatus::Skipped, _, _) => (LogStatus::Skipped, true, a.reason.clone()),
            (_, Some(Verdict::Accepted), _) => (LogStatus::Success, true, None),
            (_, Some(Verdict::Invalid), _) => (LogStatus::Error, true, Some("invalid".to_owned())),
            (_, Some(Verdict::Permanent), _) => {
                (LogStatus::Error, true, Some("permanent".to_owned()))
            }
            (_, v, Outcome::DeadLetter(why)) => (
                LogStatus::Error,
                true,
                Some(format!("{} ({why})", label(v))),
            ),
            (_, v, _) => (
                LogStatus::Error,
                false,
                Some(format!("{}; will retry", label(v))),
            ),
        };
        let entry = LogEntry {
            dialog_id: q.dialog_id,
            direction_id: ctx.direction_id,
            user_account_id: ctx.user_account_id,
            level: q.level,
            event_name: ctx.event_name(q.level),
            event_id: &ctx.event_id,
            pixel_id: ctx.pixel_id.as_deref(),
            status,
            attempt,
            reason: reason.as_deref(),
            request: a.request.as_ref(),
            response: r.and_then(|r| r.response.as_ref()),
            http_status: r.and_then(|r| r.http_status).map(i32::from),
            error_message: r
                .and_then(|r| r.error_message.as_deref())
                .filter(|_| status != LogStatus::Success),
            duration_ms: r.map(|r| i32::try_from(r.duration.as_millis()).unwrap_or(i32::MAX)),
            batch_id: r.map(|r| r.batch_id),
            batch_size: r.map(|r| i32::try_from(r.batch_size).unwrap_or(i32::MAX)),
            fbtrace_id: r.and_then(|r| r.fbtrace_id.as_deref()),
        };
        let mut delay = Duration::from_millis(100);
        for tries in 1.. {
            let result = async {
                let mut conn = self.pool.get().await?;
                conn.transaction::<_, storage::DbError, _>(async |conn| {
                    capi::insert_log(conn, &entry).await?;
                    if finished {
                        capi::finish(
                            conn,
                            ctx.delivery_id,
                            q.dialog_id,
                            q.level,
                            &ctx.event_id,
                            status,
                        )
                        .await?;
                    } else {
                        capi::release(conn, ctx.delivery_id).await?;
                    }
                    Ok(())
                })
                .await?;
                anyhow::Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(e) if tries < 20 => {
                    tracing::warn!(dialog_id = %q.dialog_id, error = format!("{e:#}"), "could not record the attempt; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn label(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::Throttled) => "throttled",
        _ => "transient",
    }
}
