//! Delivery of the daily report to the account's Telegram chat through the
//! Bot API (`sendMessage`). A report above 4,096 characters goes as several
//! messages, split at line breaks. The report row's lease keeps replicas
//! from sending the same report; the count of parts sent, recorded after
//! each part, makes a retry resume after the last part that went out.
//! A 429 is waited out (`parameters.retry_after`); other failures are
//! retried on a back-off, and errors that retrying cannot fix (a wrong
//! token, a chat the bot cannot write to) end the delivery as `failed`.

use crate::{Background, metrics::Metrics};
use chrono::Utc;
use domain::report::{TELEGRAM_LIMIT, split_message};
use runtime::{
    CancellationToken,
    periodic::{First, every},
};
use serde_json::{Value, json};
use std::time::Duration;
use storage::{Store, reports};

/// Held per report while its parts go out; renewed by each part.
const LEASE_SECS: i32 = 120;
/// A 429 asking for longer than this hands the report back instead of waiting.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(60);
/// Back-off after attempt n (the last repeats) and the attempts allowed.
const BACKOFF_SECS: [i64; 5] = [30, 120, 600, 1800, 3600];
const MAX_ATTEMPTS: i32 = 12;

pub struct Telegram {
    http: reqwest::Client,
    base_url: String,
}

/// What one `sendMessage` came to.
#[derive(Debug)]
pub enum Sent {
    Ok,
    /// 429: wait this long, then send the same part again.
    RetryAfter(Duration),
    /// Worth trying again later (5xx, no answer).
    Transient(String),
    /// Retrying cannot help (400 chat not found, 401 bad token, 403 blocked).
    Permanent(String),
}

impl Telegram {
    pub fn new(base_url: &str, timeout: Duration) -> anyhow::Result<Telegram> {
        Ok(Telegram {
            http: outbound::client(timeout)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The token is part of the URL: nothing here ever prints the URL.
    pub async fn send_message(
        &self,
        token: &secrecy::SecretString,
        chat_id: &str,
        text: &str,
    ) -> Sent {
        let url = format!(
            "{}/bot{}/sendMessage",
            self.base_url,
            secrecy::ExposeSecret::expose_secret(token)
        );
        let body = json!({"chat_id": chat_id, "text": text, "disable_web_page_preview": true});
        let resp = match self.http.post(&url).json(&body).send().await {
            Ok(r) => r,
            Err(e) => return Sent::Transient(outbound::transport_error(e)),
        };
        let status = resp.status().as_u16();
        let header_wait = outbound::retry_after(&resp);
        let answer: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 200 && answer["ok"] == Value::Bool(true) {
            return Sent::Ok;
        }
        let description = answer["description"].as_str().unwrap_or("no description");
        let message = format!("Telegram answered {status}: {description}");
        match status {
            429 => Sent::RetryAfter(
                answer["parameters"]["retry_after"]
                    .as_u64()
                    .map(Duration::from_secs)
                    .or(header_wait)
                    .unwrap_or(Duration::from_secs(5)),
            ),
            400 | 401 | 403 | 404 => Sent::Permanent(message),
            _ => Sent::Transient(message),
        }
    }
}

pub(crate) async fn run(bg: Background, telegram: Telegram) {
    every(bg.config.tick, First::Now, &bg.stop, || async {
        if let Err(e) = deliver_due(&bg.store, &telegram, &bg.metrics, &bg.stop).await {
            tracing::warn!(error = format!("{e:#}"), "report delivery: will retry");
        }
    })
    .await
}

/// Sends every report due; returns how many were delivered completely.
pub async fn deliver_due(
    store: &Store,
    telegram: &Telegram,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> anyhow::Result<usize> {
    let mut delivered = 0;
    while !stop.is_cancelled() {
        let claimed = {
            let mut conn = store.pool().get().await?;
            reports::claim_send(&mut conn, LEASE_SECS).await?
        };
        let Some(job) = claimed else { break };
        if deliver(store, telegram, metrics, &job).await? {
            delivered += 1;
        }
    }
    Ok(delivered)
}

/// Sends the parts not sent yet; true when the whole report went out.
async fn deliver(
    store: &Store,
    telegram: &Telegram,
    metrics: &Metrics,
    job: &reports::PendingSend,
) -> anyhow::Result<bool> {
    let parts = split_message(&job.report_text, TELEGRAM_LIMIT);
    let total = i32::try_from(parts.len()).unwrap_or(i32::MAX);
    let mut next = usize::try_from(job.parts_sent.max(0)).unwrap_or(0);
    let account = job.user_account_id;
    let token = job
        .bot_token
        .open(store.keys(), storage::secrets::USER_TELEGRAM_BOT_TOKEN)?
        .unwrap_or_else(|| secrecy::SecretString::from(""));
    while let Some(part) = parts.get(next) {
        match telegram.send_message(&token, &job.chat_id, part).await {
            Sent::Ok => {
                metrics.telegram("sent");
                next += 1;
                let mut conn = store.pool().get().await?;
                reports::part_sent(
                    &mut conn,
                    job.id,
                    i32::try_from(next).unwrap_or(i32::MAX),
                    total,
                )
                .await?;
            }
            Sent::RetryAfter(wait) if wait <= MAX_INLINE_WAIT => {
                metrics.telegram("waited");
                tracing::info!(user_account_id = %account, wait_s = wait.as_secs(), "Telegram asked to wait");
                tokio::time::sleep(wait).await;
            }
            Sent::RetryAfter(wait) => {
                metrics.telegram("retry");
                let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let mut conn = store.pool().get().await?;
                reports::send_failed(&mut conn, job.id, Some(at), "Telegram answered 429").await?;
                return Ok(false);
            }
            Sent::Transient(e) => {
                metrics.telegram("retry");
                let retry = (job.attempts < MAX_ATTEMPTS).then(|| {
                    let i = usize::try_from(job.attempts - 1)
                        .unwrap_or(0)
                        .min(BACKOFF_SECS.len() - 1);
                    Utc::now() + chrono::Duration::seconds(BACKOFF_SECS[i])
                });
                tracing::warn!(user_account_id = %account, error = %e, attempt = job.attempts, "report not delivered");
                let mut conn = store.pool().get().await?;
                reports::send_failed(&mut conn, job.id, retry, &e).await?;
                return Ok(false);
            }
            Sent::Permanent(e) => {
                metrics.telegram("failed");
                tracing::error!(user_account_id = %account, error = %e, "report delivery failed for good");
                let mut conn = store.pool().get().await?;
                reports::send_failed(&mut conn, job.id, None, &e).await?;
                return Ok(false);
            }
        }
    }
    tracing::info!(user_account_id = %account, date = %job.report_date, parts = total, "report delivered");
    Ok(true)
}
