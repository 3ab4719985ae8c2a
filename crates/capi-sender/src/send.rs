//! Sending one claimed (dialog, level) to Meta and recording the attempt.
//!
//! Exactly once: the delivery row is leased before the request, finished
//! (with the dialog's `capi_<level>_sent` flags) after it, and a message for a
//! finished delivery is acknowledged without a request. The one remaining
//! window for a duplicate is a crash after Meta's 200 and before the finish
//! commits; the finish is retried in-process to keep that window short.

use crate::meta::{MetaClient, SendOutcome};
use bus::{
    Incoming, Outcome,
    messages::{CapiEventQueued, decode},
};
use chrono::Utc;
use domain::capi::{EventFacts, build_event};
use secrecy::SecretString;
use serde_json::{Value, json};
use std::time::Duration;
use storage::{
    DbPool,
    capi::{self, DeliveryContext, LogEntry, LogStatus},
};

pub(crate) struct Sender {
    pub pool: DbPool,
    pub meta: MetaClient,
    pub retry_delay: Duration,
    pub max_attempts: i32,
    pub lease: Duration,
}

/// What one attempt ended with, to be written to the database.
struct Record {
    status: LogStatus,
    /// The delivery is over (success, permanent error, skip, gave up).
    finished: bool,
    reason: Option<String>,
    request: Option<Value>,
    response: Option<Value>,
    http_status: Option<i32>,
    error_message: Option<String>,
    duration_ms: Option<i32>,
}

impl Record {
    fn skipped(reason: &str) -> Record {
        Record {
            status: LogStatus::Skipped,
            finished: true,
            reason: Some(reason.to_owned()),
            request: None,
            response: None,
            http_status: None,
            error_message: None,
            duration_ms: None,
        }
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Sender {
    pub async fn handle(&self, m: Incoming) -> Outcome {
        let queued: CapiEventQueued = match decode(&m.payload) {
            Ok(q) => q,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        match self.deliver(&queued).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(dialog_id = %queued.dialog_id, level = %queued.level, error = format!("{e:#}"), "delivery failed; retrying");
                Outcome::Retry(self.retry_delay)
            }
        }
    }

    async fn deliver(&self, q: &CapiEventQueued) -> anyhow::Result<Outcome> {
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
        let record = self.attempt(&ctx, q, attempt).await;
        let retry = !record.finished;
        self.persist(&ctx, q, attempt, &record).await?;
        Ok(if retry {
            Outcome::Retry(self.retry_delay)
        } else {
            Outcome::Ack
        })
    }

    async fn attempt(&self, ctx: &DeliveryContext, q: &CapiEventQueued, attempt: i32) -> Record {
        let (dialog_id, level) = (q.dialog_id, q.level);
        let Some(pixel_id) = non_empty(&ctx.pixel_id) else {
            tracing::warn!(%dialog_id, %level, "skipped: the direction has no pixel");
            return Record::skipped("no_pixel");
        };
        let Some(token) = non_empty(&ctx.access_token) else {
            tracing::warn!(%dialog_id, %level, direction_id = ?ctx.direction_id, "skipped: no access token on the ad account or user account");
            return Record::skipped("no_access_token");
        };
        let facts = EventFacts {
            dialog_id,
            level,
            event_name: ctx.event_name(level),
            event_time: ctx.event_time.timestamp(),
            phone: non_empty(&ctx.contact_phone),
            ctwa_clid: non_empty(&ctx.ctwa_clid),
            waba_id: non_empty(&ctx.waba_id),
        };
        let event = match build_event(&facts) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%dialog_id, %level, reason = %e, "skipped");
                return Record::skipped("no_user_data");
            }
        };
        if facts.ctwa_clid.is_none() {
            tracing::warn!(%dialog_id, %level, "no ctwa_clid for this dialog: sending with action_source=other (no ad attribution)");
        }
        let request = json!({ "data": [event] });
        let sent = self
            .meta
            .send_events(pixel_id, &SecretString::from(token.to_owned()), &request)
            .await;
        let duration_ms = Some(i32::try_from(sent.duration.as_millis()).unwrap_or(i32::MAX));
        let mut record = Record {
            status: LogStatus::Error,
            finished: true,
            reason: None,
            request: Some(request),
            response: None,
            http_status: None,
            error_message: None,
            duration_ms,
        };
        match sent.outcome {
            SendOutcome::Accepted { status, body } => {
                tracing::info!(%dialog_id, %level, event_id = %ctx.event_id, pixel_id, events_received = ?body.get("events_received"), "CAPI event sent");
                record.status = LogStatus::Success;
                record.http_status = Some(i32::from(status));
                record.response = Some(body);
            }
            SendOutcome::Rejected {
                status,
                body,
                error,
            } => {
                tracing::error!(%dialog_id, %level, event_id = %ctx.event_id, pixel_id, code = ?error.code, subcode = ?error.subcode, message = %error.message, "Meta rejected the event");
                record.http_status = Some(i32::from(status));
                record.error_message = Some(error.message);
                record.reason = Some("rejected".into());
                record.response = Some(body);
            }
            SendOutcome::Unavailable {
                status,
                body,
                message,
            } => {
                let gave_up = attempt >= self.max_attempts;
                tracing::warn!(%dialog_id, %level, event_id = %ctx.event_id, attempt, gave_up, %message, "Meta unavailable");
                record.http_status = status.map(i32::from);
                record.response = body;
                record.error_message = Some(message);
                record.finished = gave_up;
                record.reason = Some(if gave_up {
                    format!("gave_up_after_{attempt}_attempts")
                } else {
                    "transient; will retry".into()
                });
            }
        }
        record
    }

    /// Writes the attempt's log row and, if the delivery is over, closes it
    /// (setting the flags on success), all in one transaction. Retried for a
    /// while: after Meta's 200 this is what stands between us and a duplicate.
    async fn persist(
        &self,
        ctx: &DeliveryContext,
        q: &CapiEventQueued,
        attempt: i32,
        r: &Record,
    ) -> anyhow::Result<()> {
        use diesel_async::AsyncConnection;
        let entry = LogEntry {
            dialog_id: q.dialog_id,
            direction_id: ctx.direction_id,
            user_account_id: ctx.user_account_id,
            level: q.level,
            event_name: ctx.event_name(q.level),
            event_id: &ctx.event_id,
            pixel_id: ctx.pixel_id.as_deref(),
            status: r.status,
            attempt,
            reason: r.reason.as_deref(),
            request: r.request.as_ref(),
            response: r.response.as_ref(),
            http_status: r.http_status,
            error_message: r.error_message.as_deref(),
            duration_ms: r.duration_ms,
        };
        let mut delay = Duration::from_millis(100);
        for tries in 1.. {
            let result = async {
                let mut conn = self.pool.get().await?;
                conn.transaction::<_, storage::DbError, _>(async |conn| {
                    capi::insert_log(conn, &entry).await?;
                    if r.finished {
                        capi::finish(
                            conn,
                            ctx.delivery_id,
                            q.dialog_id,
                            q.level,
                            &ctx.event_id,
                            r.status,
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
