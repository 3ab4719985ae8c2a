//! Handles `dialog.ready`: level 1 by the rule, levels 2 and 3 by the model
//! when the rules say a call is worth it. Every level is claimed once (a
//! unique row per dialog and level) with its outbox message in the same
//! transaction as the analysis record, so a redelivered message or a racing
//! replica never queues an event twice.

use crate::decide::{Plan, Rules, not_eligible};
use bus::{
    Incoming, Outcome,
    messages::{DialogReady, decode},
};
use chrono::Utc;
use diesel_async::AsyncConnection;
use domain::level::{Level, reaches_interest};
use llm::analysis::{self, Analyzer, Unavailable};
use runtime::claims::claim_levels as claim;
use std::{sync::Arc, time::Duration};
use storage::{
    DbPool,
    qualification::{self as q, DialogForQualification},
};
use tokio::sync::Notify;

const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(crate) struct Agent {
    pub pool: DbPool,
    pub outbox_wake: Arc<Notify>,
    pub rules: Rules,
    /// `None`: no model configured, level 1 only.
    pub analyzer: Option<Analyzer>,
    /// Waits while the model is unavailable; the last one repeats.
    pub retry_schedule: Vec<Duration>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The wait before delivery `attempt + 1` (attempt counts from 1) while an
/// outside service is unavailable: the schedule's step, the last repeating.
pub(crate) fn backoff(schedule: &[Duration], attempt: u32) -> Duration {
    let i = usize::try_from(attempt)
        .unwrap_or(usize::MAX)
        .saturating_sub(1);
    schedule
        .get(i)
        .or(schedule.last())
        .copied()
        .unwrap_or(RETRY_AFTER)
}

impl Agent {
    pub async fn handle(&self, m: Incoming) -> Outcome {
        let ready: DialogReady = match decode(&m.payload) {
            Ok(r) => r,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        match self.qualify(&ready, m.attempt).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(dialog_id = %ready.dialog_id, error = format!("{e:#}"), "qualification failed; retrying");
                Outcome::Retry(RETRY_AFTER)
            }
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff(&self.retry_schedule, attempt)
    }

    async fn qualify(&self, ready: &DialogReady, attempt: u32) -> anyhow::Result<Outcome> {
        let mut conn = self.pool.get().await?;
        let Some(d) = q::dialog_for_qualification(&mut conn, ready.dialog_id).await? else {
            tracing::warn!(dialog_id = %ready.dialog_id, "dialog not found; nothing to qualify");
            return Ok(Outcome::Ack);
        };
        if let Some(reason) = not_eligible(&d) {
            tracing::info!(dialog_id = %d.dialog_id, direction_id = ?d.direction_id, reason, "no CAPI event");
            return Ok(Outcome::Ack);
        }
        if reaches_interest(d.customer_messages) && !d.claimed_levels.contains(&Level::Interest) {
            let reached_at = d
                .second_customer_message_at
                .unwrap_or_else(Utc::now)
                .min(Utc::now());
            let claimed = conn
                .transaction::<_, storage::DbError, _>(async |c| {
                    claim(c, d.dialog_id, &[Level::Interest], reached_at).await
                })
                .await?;
            self.queued(&d, &claimed, "two customer messages");
        }
        drop(conn);
        let Some(analyzer) = &self.analyzer else {
            return Ok(Outcome::Ack);
        };
        let through = match self.rules.plan(&d, ready.seq, attempt, Utc::now()) {
            Plan::Skip(reason) => {
                tracing::debug!(dialog_id = %d.dialog_id, reason, "no analysis");
                return Ok(Outcome::Ack);
            }
            Plan::Defer(wait) => {
                tracing::debug!(dialog_id = %d.dialog_id, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "analysis after the customer goes quiet");
                return Ok(Outcome::Retry(wait));
            }
            Plan::Analyze(through) => vec![through],
            Plan::AnalyzeEach => {
                let mut conn = self.pool.get().await?;
                q::customer_messages_after(
                    &mut conn,
                    d.dialog_id,
                    d.analyzed_message_id.unwrap_or(0),
                )
                .await?
            }
        };
        for id in through {
            if let Err(Unavailable(e)) = self.analyze(analyzer, &d, id).await? {
                let wait = self.backoff(attempt);
                tracing::warn!(dialog_id = %d.dialog_id, error = %e, retry_in_s = wait.as_secs(), "the model is unavailable; the dialog will be analysed later");
                return Ok(Outcome::Retry(wait));
            }
        }
        Ok(Outcome::Ack)
    }

    /// Analyses the conversation up to message `through` and records it, with
    /// the levels it reached, in one transaction.
    async fn analyze(
        &self,
        analyzer: &Analyzer,
        d: &DialogForQualification,
        through: i64,
    ) -> anyhow::Result<Result<(), Unavailable>> {
        let history = {
            let mut conn = self.pool.get().await?;
            let limit = i64::try_from(analyzer.max_history_messages).unwrap_or(i64::MAX);
            storage::conversations::history(&mut conn, d.dialog_id, Some(through), limit).await?
        };
        let own_prompt = d
            .qualification_prompt
            .as_deref()
            .filter(|p| !p.trim().is_empty());
        if own_prompt.is_none() {
            tracing::info!(direction_id = ?d.direction_id, "the direction has no qualification prompt; using the generic one");
        }
        let business = d.direction_name.as_deref().unwrap_or("the business");
        let messages = analyzer.messages(own_prompt, business, &history);
        let out = match analyzer.analyze(&messages).await {
            Ok(out) => out,
            Err(u) => {
                self.metrics.analysis("unavailable");
                return Ok(Err(u));
            }
        };
        self.metrics.model_calls.inc_by(u64::from(out.calls));
        for (kind, n) in [
            ("prompt", out.prompt_tokens),
            ("completion", out.completion_tokens),
        ] {
            self.metrics
                .model_tokens
                .get_or_create(&crate::metrics::TokenLabel { kind })
                .inc_by(u64::from(n));
        }
        self.metrics
            .analysis(if out.analysis.is_ok() { "ok" } else { "failed" });
        let reached = out.analysis.as_ref().ok().and_then(|a| a.reached());
        let reached_at = history
            .iter()
            .rev()
            .find(|m| m.id == through)
            .map_or_else(Utc::now, |m| m.sent_at)
            .min(Utc::now());
        let levels: Vec<Level> = reached.into_iter().flat_map(Level::with_lower).collect();
        let run = run_record(d, through, analyzer.llm.model(), &out, reached);
        let claimed = {
            let mut conn = self.pool.get().await?;
            conn.transaction::<_, storage::DbError, _>(async |c| {
                q::record_run(c, &run).await?;
                claim(c, d.dialog_id, &levels, reached_at).await
            })
            .await?
        };
        match &out.analysis {
            Ok(a) => {
                tracing::info!(dialog_id = %d.dialog_id, is_interested = a.is_interested, is_qualified = a.is_qualified,
                is_scheduled = a.is_scheduled, interest_level = a.interest_level.as_str(), funnel_stage = a.funnel_stage.as_str(),
                calls = out.calls, prompt_tokens = out.prompt_tokens, completion_tokens = out.completion_tokens, "qualification analysis complete")
            }
            Err(e) => {
                tracing::error!(dialog_id = %d.dialog_id, error = %e, calls = out.calls, "qualification analysis failed; nothing sent")
            }
        }
        self.queued(d, &claimed, "analysis");
        Ok(Ok(()))
    }

    fn queued(&self, d: &DialogForQualification, claimed: &[Level], by: &str) {
        if claimed.is_empty() {
            return;
        }
        self.outbox_wake.notify_one();
        self.metrics.claimed(claimed, by);
        for level in claimed {
            tracing::info!(dialog_id = %d.dialog_id, direction_id = ?d.direction_id, %level, by, "level reached; event queued");
        }
    }
}

fn run_record<'a>(
    d: &DialogForQualification,
    through: i64,
    model: &'a str,
    out: &'a analysis::Outcome,
    reached: Option<Level>,
) -> q::Run<'a> {
    let clamp = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    q::Run {
        dialog_id: d.dialog_id,
        direction_id: d.direction_id,
        through_message_id: through,
        model,
        result: out.raw.as_ref(),
        error: out.analysis.as_ref().err().map(String::as_str),
        reached_level: reached,
        judgement: out
            .analysis
            .as_ref()
            .ok()
            .map(|a| (a.interest_level, a.funnel_stage, a.reason.as_str())),
        llm_calls: clamp(out.calls),
        prompt_tokens: clamp(out.prompt_tokens),
        completion_tokens: clamp(out.completion_tokens),
        duration_ms: i32::try_from(out.duration_ms).unwrap_or(i32::MAX),
    }
}
