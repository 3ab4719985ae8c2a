//! The bot's turn for a flushed burst: decide, ask the model, send the
//! answer through the dialog's WhatsApp channel (Evolution API or the Cloud
//! API, `whatsapp.rs`), store it as the dialog's outgoing message.
//! Qualification never waits on any of it: the flush handed the dialog on in
//! its own transaction.
//!
//! The replica that flushed the burst answers at once (`answer_now`); the
//! flush also queued `reply.due`, delayed by the lease, as the durable path:
//! it finds the reply done, or takes it over after a crash. Retries travel
//! as `reply.due` too.
//!
//! One `bot_replies` row per (dialog, seq) makes redelivery harmless: a
//! finished reply is not redone; a lease lets one handler at a time work on
//! it; tries are counted on the row, so the retry limit holds whichever path
//! runs them; a generated answer is kept, so a retry after a WhatsApp API
//! failure resends the same text without a second model call. The one window
//! for a double answer is a crash after the API accepted the message and
//! before it is recorded (or a turn outliving its lease).

use crate::{
    decide::{Decision, Rules, decide},
    whatsapp::{SendError, Senders},
};
use bus::{
    Bus, Incoming, Outcome, Queue,
    messages::{ReplyDue, decode, encode},
};
use chrono::Utc;
use diesel_async::AsyncConnection;
use domain::{
    conversation::{Author, Message, ReplyStatus},
    usage::Purpose,
};
use llm::{ChatMessage, LlmClient, LlmError, Role, newest_within};
use std::{sync::Arc, time::Duration};
use storage::{
    Store,
    replies::{self, Claim, ReplyContext, ReplyRow, SentReply, Unsent},
};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// The system prompt for a direction that has none of its own.
pub const GENERIC_PROMPT: &str = "You are the WhatsApp assistant of {business}. Answer the customer's \
latest messages briefly and warmly, in the language they write in. Help them with what they ask, \
and when they are interested, offer to book a consultation. Never invent prices or facts you were \
not given; offer to have a specialist follow up instead.";

pub(crate) struct Bot {
    pub store: Store,
    pub bus: Arc<Bus>,
    pub llm: LlmClient,
    pub senders: Senders,
    pub rules: Rules,
    /// Waits before the 2nd, 3rd, … try when the model or the WhatsApp API is unavailable.
    pub retry_schedule: Vec<Duration>,
    pub max_history_messages: usize,
    pub max_history_chars: usize,
    /// How long one turn may hold a reply: the model's and the WhatsApp API's
    /// timeouts and some slack. The durable `reply.due` waits this long.
    pub lease: Duration,
    /// Turns running at once (both paths), so a backlog cannot flood the model.
    pub turns: Semaphore,
    /// Turns started by `answer_now`, waited for on shutdown.
    pub tracker: TaskTracker,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Bot {
    /// A queued `reply.due`: the durable path and the retries.
    pub async fn handle(&self, m: Incoming) -> Outcome {
        let due: ReplyDue = match decode(&m.payload) {
            Ok(d) => d,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        self.guarded_turn(&due, m.attempt).await
    }

    /// The burst was just flushed here: answer it now, without waiting for
    /// the broker. A retry is queued as `reply.due`; if this process dies,
    /// the `reply.due` the flush queued takes over when the lease ends.
    pub fn answer_now(self: &Arc<Self>, due: ReplyDue) {
        let bot = self.clone();
        self.tracker.spawn(async move {
            match bot.guarded_turn(&due, 1).await {
                // Handed back: the queued reply.due takes the turn.
                Outcome::Ack | Outcome::Requeue => {}
                Outcome::Retry(wait) => bot.queue_retry(&due, wait).await,
                Outcome::DeadLetter(reason) => {
                    // The queued copy meets the same and is dead-lettered.
                    tracing::error!(dialog_id = %due.dialog_id, seq = due.seq, %reason, "bot turn impossible");
                }
            }
        });
    }

    async fn queue_retry(&self, due: &ReplyDue, wait: Duration) {
        let queued = async {
            let payload = serde_json::to_vec(&encode(due))?;
            self.bus
                .publish_delayed(Queue::ChatbotReplies, wait, Uuid::new_v4(), &payload, 2)
                .await
        };
        if let Err(e) = queued.await {
            tracing::warn!(dialog_id = %due.dialog_id, seq = due.seq, error = format!("{e:#}"), "could not queue the retry; the queued reply.due takes over after the lease");
        }
    }

    async fn guarded_turn(&self, due: &ReplyDue, attempt: u32) -> Outcome {
        let Ok(_permit) = self.turns.acquire().await else {
            return Outcome::Retry(Duration::from_secs(5));
        };
        match self.turn(due).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(dialog_id = %due.dialog_id, error = format!("{e:#}"), "bot turn failed; retrying");
                Outcome::Retry(self.retry_after(attempt).unwrap_or(Duration::from_secs(5)))
            }
        }
    }

    /// The wait before the next try after try number `attempt`, if any is left.
    fn retry_after(&self, attempt: u32) -> Option<Duration> {
        self.retry_schedule
            .get(
                usize::try_from(attempt)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(1),
            )
            .copied()
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    async fn turn(&self, due: &ReplyDue) -> anyhow::Result<Outcome> {
        let dialog_id = due.dialog_id;
        let mut conn = self.store.pool().get().await?;
        let row = match replies::claim(&mut conn, dialog_id, due.seq, self.lease_ms()).await? {
            Claim::Taken(row) => row,
            Claim::Done(status) => {
                tracing::debug!(%dialog_id, seq = due.seq, %status, "reply already done");
                return Ok(Outcome::Ack);
            }
            Claim::NoDialog => {
                tracing::info!(%dialog_id, seq = due.seq, "no reply: the dialog was merged into another of the same person");
                return Ok(Outcome::Ack);
            }
            Claim::Leased(until) => {
                let left = (until - Utc::now()).to_std().unwrap_or_default();
                tracing::debug!(%dialog_id, seq = due.seq, "another turn holds the reply; looking again when its lease ends");
                return Ok(Outcome::Retry(left + Duration::from_millis(500)));
            }
        };
        let attempt = u32::try_from(row.attempts).unwrap_or(1);
        let Some(ctx) = replies::reply_context(&mut conn, self.store.keys(), dialog_id).await?
        else {
            return Ok(Outcome::DeadLetter(format!("no dialog {dialog_id}")));
        };
        let history = storage::conversations::history(
            &mut conn,
            dialog_id,
            None,
            i64::try_from(self.max_history_messages).unwrap_or(i64::MAX),
        )
        .await?;
        drop(conn);
        let skip = |reason: &'static str| async move {
            tracing::info!(%dialog_id, seq = due.seq, reason, "no bot reply");
            self.metrics.reply("skipped");
            let mut conn = self.store.pool().get().await?;
            replies::close(&mut conn, row.id, Unsent::Skipped, reason).await?;
            anyhow::Ok(Outcome::Ack)
        };
        if let Some(reason) = ctx.target.switched_off() {
            return skip(reason).await;
        }
        if ctx.buffer_seq > due.seq {
            // A newer burst is buffered; its own turn answers everything.
            return skip("superseded").await;
        }
        let unanswered_since = match decide(&history, Utc::now(), &self.rules) {
            Decision::Reply { unanswered_since } => unanswered_since,
            Decision::Skip(reason) => return skip(reason).await,
        };
        let route = match self.senders.route(&ctx, &history, Utc::now()) {
            Ok(route) => route,
            Err(reason) => return skip(reason).await,
        };
        let api = route.api();
        let asked = std::time::Instant::now();
        let answered = self.answer(&row, &ctx, &history).await;
        self.metrics
            .model_seconds
            .observe(asked.elapsed().as_secs_f64());
        let answer = match answered {
            Ok(answer) => answer,
            Err(e) => return self.model_failed(&row, due, attempt, e).await,
        };
        let text = answer.text.as_str();
        // Nothing is written between the model and the WhatsApp API: the
        // reply goes out first, its record (and the model's usage) right after.
        let sent = self.senders.send(&ctx.instance_name, &route, text).await;
        let settle = match sent {
            Ok(message_id) => {
                let sent_at = Utc::now();
                let message_id =
                    message_id.unwrap_or_else(|| format!("bot-{dialog_id}-{}", due.seq));
                let response_ms = (sent_at - unanswered_since).num_milliseconds();
                self.settle(
                    &row,
                    &ctx,
                    &answer,
                    Settle::Sent(SentReply {
                        reply_id: row.id,
                        dialog_id,
                        instance_name: &ctx.instance_name,
                        message_id: &message_id,
                        text,
                        sent_at,
                        response_ms,
                    }),
                )
                .await?;
                tracing::info!(%dialog_id, seq = due.seq, api, response_ms, "bot replied");
                self.metrics.reply("sent");
                return Ok(Outcome::Ack);
            }
            Err(SendError::Rejected { status, message }) => {
                tracing::warn!(%dialog_id, seq = due.seq, api, status, message = %message, "the WhatsApp API rejected the reply; not retrying");
                self.metrics.reply("rejected");
                Settle::Failed(format!("{api} HTTP {status}: {message}"))
            }
            Err(SendError::WindowClosed(message)) => {
                tracing::info!(%dialog_id, seq = due.seq, api, message = %message, "the customer wrote more than 24 hours ago: no free-form reply; not retrying");
                self.metrics.reply("rejected");
                Settle::Failed(format!("outside_24h_window: {message}"))
            }
            Err(SendError::Unavailable(why)) => match self.retry_after(attempt) {
                Some(wait) => {
                    tracing::warn!(%dialog_id, seq = due.seq, api, error = %why, retry_in_ms = wait.as_millis() as u64, "the WhatsApp API is unavailable; will retry");
                    self.metrics.reply("retry");
                    self.settle(&row, &ctx, &answer, Settle::Generated).await?;
                    return self.retry(row.id, wait).await;
                }
                None => {
                    tracing::error!(%dialog_id, seq = due.seq, api, error = %why, "the WhatsApp API is unavailable; giving up on this reply");
                    self.metrics.reply("failed");
                    Settle::Failed(format!("{api} unavailable: {why}"))
                }
            },
        };
        self.settle(&row, &ctx, &answer, settle).await?;
        Ok(Outcome::Ack)
    }

    /// The model's answer: kept from an earlier try, or asked for now.
    async fn answer(
        &self,
        row: &ReplyRow,
        ctx: &ReplyContext,
        history: &[Message],
    ) -> Result<Answer, LlmError> {
        if let (Some(text), ReplyStatus::Generated) = (&row.reply_text, row.status) {
            return Ok(Answer {
                text: text.clone(),
                tokens: None,
            });
        }
        let messages = self.prompt(ctx, history);
        let c = self.llm.chat(&messages, None).await?;
        let text = c.content.trim().to_owned();
        if text.is_empty() {
            return Err(LlmError::Malformed("an empty answer".into()));
        }
        let tokens = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Ok(Answer {
            text,
            tokens: Some((tokens(c.prompt_tokens), tokens(c.completion_tokens))),
        })
    }

    /// Records where the reply ended up, and the model call that made its
    /// answer (on the reply and in the direction's daily usage), in one
    /// transaction. The usage counter is one row per direction and day that
    /// every reply updates, so it goes last: its lock is held only to commit.
    async fn settle(
        &self,
        row: &ReplyRow,
        ctx: &ReplyContext,
        answer: &Answer,
        settle: Settle<'_>,
    ) -> anyhow::Result<()> {
        let mut conn = self.store.pool().get().await?;
        conn.transaction::<_, storage::DbError, _>(async |c| {
            match &settle {
                Settle::Sent(sent) => replies::record_sent(c, sent).await?,
                Settle::Failed(reason) => replies::close(c, row.id, Unsent::Failed, reason).await?,
                Settle::Generated => replies::set_generated(c, row.id, &answer.text).await?,
            }
            if let Some((prompt, completion)) = answer.tokens {
                replies::add_tokens(c, row.id, prompt, completion).await?;
                if let Some(direction_id) = ctx.target.direction_id {
                    storage::usage::add(c, direction_id, Purpose::Reply, 1, prompt, completion)
                        .await?;
                }
            }
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// The system prompt, then the conversation within the budget.
    pub fn prompt(&self, ctx: &ReplyContext, history: &[Message]) -> Vec<ChatMessage> {
        let system = match ctx
            .bot_prompt
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(p) => p.to_owned(),
            None => GENERIC_PROMPT.replace(
                "{business}",
                ctx.direction_name.as_deref().unwrap_or("the business"),
            ),
        };
        let turns: Vec<ChatMessage> = history
            .iter()
            .filter_map(|m| {
                let text = m.text.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
                let role = if m.author == Author::Customer {
                    Role::User
                } else {
                    Role::Assistant
                };
                Some(ChatMessage::new(role, text))
            })
            .collect();
        let mut messages = vec![ChatMessage::new(Role::System, system)];
        messages.extend(newest_within(
            turns,
            self.max_history_messages,
            self.max_history_chars,
        ));
        messages
    }

    /// Gives the lease up so the retry, queued to come after `wait`, can take it.
    async fn retry(&self, reply_id: i64, wait: Duration) -> anyhow::Result<Outcome> {
        let mut conn = self.store.pool().get().await?;
        replies::release(&mut conn, reply_id).await?;
        Ok(Outcome::Retry(wait))
    }

    async fn model_failed(
        &self,
        row: &ReplyRow,
        due: &ReplyDue,
        attempt: u32,
        e: LlmError,
    ) -> anyhow::Result<Outcome> {
        let dialog_id = due.dialog_id;
        if let (LlmError::Unavailable(_), Some(wait)) = (&e, self.retry_after(attempt)) {
            tracing::warn!(%dialog_id, seq = due.seq, error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "the model is unavailable; will retry");
            return self.retry(row.id, wait).await;
        }
        tracing::error!(%dialog_id, seq = due.seq, error = %e, attempt, "no bot reply: giving up on the model");
        let mut conn = self.store.pool().get().await?;
        replies::close(&mut conn, row.id, Unsent::Failed, &e.to_string()).await?;
        Ok(Outcome::Ack)
    }
}

/// The text to send, and the model call's tokens when it was asked this try.
struct Answer {
    text: String,
    tokens: Option<(i32, i32)>,
}

/// How a turn that got an answer ends.
enum Settle<'a> {
    Sent(SentReply<'a>),
    Failed(String),
    /// Kept for a retry (the WhatsApp API unavailable).
    Generated,
}
