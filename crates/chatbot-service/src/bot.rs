//! The bot's turn for a flushed burst (`reply.due`): decide, ask the model,
//! send the answer through Evolution API, store it as the dialog's outgoing
//! message. Qualification never waits on any of it: the flush handed the
//! dialog on in its own transaction.
//!
//! One `bot_replies` row per (dialog, seq) makes redelivery harmless: a
//! finished reply is not redone, and a generated answer is kept, so a retry
//! after an Evolution failure resends the same text without a second model
//! call. The one window for a double answer is a crash after Evolution
//! accepted the message and before it is recorded.

use crate::{
    decide::{Decision, Rules, decide},
    evolution::{ApiVersion, Evolution, SendError},
};
use bus::{
    Incoming, Outcome,
    messages::{ReplyDue, decode},
};
use chrono::Utc;
use diesel_async::AsyncConnection;
use llm::{ChatMessage, LlmClient, LlmError, Role, newest_within};
use secrecy::SecretString;
use std::time::Duration;
use storage::{
    DbPool,
    conversations::HistoryMessage,
    replies::{self, ReplyContext, ReplyRow, SentReply},
};

/// The system prompt for a direction that has none of its own.
pub const GENERIC_PROMPT: &str = "You are the WhatsApp assistant of {business}. Answer the customer's \
latest messages briefly and warmly, in the language they write in. Help them with what they ask, \
and when they are interested, offer to book a consultation. Never invent prices or facts you were \
not given; offer to have a specialist follow up instead.";

pub(crate) struct Bot {
    pub pool: DbPool,
    pub llm: LlmClient,
    pub evolution: Evolution,
    pub rules: Rules,
    /// Waits before the 2nd, 3rd, … try when the model or Evolution API is unavailable.
    pub retry_schedule: Vec<Duration>,
    pub max_history_messages: usize,
    pub max_history_chars: usize,
}

impl Bot {
    pub async fn handle(&self, m: Incoming) -> Outcome {
        let due: ReplyDue = match decode(&m.payload) {
            Ok(d) => d,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        match self.turn(&due, m.attempt).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(dialog_id = %due.dialog_id, error = format!("{e:#}"), "bot turn failed; retrying");
                Outcome::Retry(
                    self.retry_after(m.attempt)
                        .unwrap_or(Duration::from_secs(5)),
                )
            }
        }
    }

    fn retry_after(&self, attempt: u32) -> Option<Duration> {
        self.retry_schedule
            .get(
                usize::try_from(attempt)
                    .unwrap_or(usize::MAX)
                    .saturating_sub(1),
            )
            .copied()
    }

    async fn turn(&self, due: &ReplyDue, attempt: u32) -> anyhow::Result<Outcome> {
        let dialog_id = due.dialog_id;
        let mut conn = self.pool.get().await?;
        let row = replies::claim(&mut conn, dialog_id, due.seq).await?;
        if matches!(row.status.as_str(), "sent" | "skipped" | "failed") {
            tracing::debug!(%dialog_id, seq = due.seq, status = %row.status, "reply already done");
            return Ok(Outcome::Ack);
        }
        let Some(ctx) = replies::reply_context(&mut conn, dialog_id).await? else {
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
            let mut conn = self.pool.get().await?;
            replies::close(&mut conn, row.id, "skipped", reason).await?;
            anyhow::Ok(Outcome::Ack)
        };
        if let Some(reason) = switched_off(&ctx) {
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
        let Some(api_key) = ctx
            .evolution_api_key
            .clone()
            .filter(|k| !k.trim().is_empty())
        else {
            return skip("no_evolution_api_key").await;
        };
        let Some(number) = recipient(&ctx) else {
            return skip("no_recipient").await;
        };
        let text = match self.answer(&row, &ctx, &history).await {
            Ok(text) => text,
            Err(e) => return self.model_failed(&row, due, attempt, e).await,
        };
        let version = ApiVersion::parse(ctx.evolution_api_version.as_deref());
        let key = SecretString::from(api_key);
        match self
            .evolution
            .send_text(&ctx.instance_name, &key, version, &number, &text)
            .await
        {
            Ok(message_id) => {
                let sent_at = Utc::now();
                let message_id =
                    message_id.unwrap_or_else(|| format!("bot-{dialog_id}-{}", due.seq));
                let response_ms = (sent_at - unanswered_since).num_milliseconds();
                let sent = SentReply {
                    reply_id: row.id,
                    dialog_id,
                    instance_name: &ctx.instance_name,
                    message_id: &message_id,
                    text: &text,
                    sent_at,
                    response_ms,
                };
                let mut conn = self.pool.get().await?;
                conn.transaction::<_, storage::DbError, _>(async |c| {
                    replies::record_sent(c, &sent).await
                })
                .await?;
                tracing::info!(%dialog_id, seq = due.seq, response_ms, "bot replied");
                Ok(Outcome::Ack)
            }
            Err(SendError::Rejected { status, message }) => {
                tracing::warn!(%dialog_id, seq = due.seq, status, message = %message, "Evolution API rejected the reply; not retrying");
                let mut conn = self.pool.get().await?;
                replies::close(
                    &mut conn,
                    row.id,
                    "failed",
                    &format!("evolution HTTP {status}: {message}"),
                )
                .await?;
                Ok(Outcome::Ack)
            }
            Err(SendError::Unavailable(why)) => match self.retry_after(attempt) {
                Some(wait) => {
                    tracing::warn!(%dialog_id, seq = due.seq, error = %why, retry_in_ms = wait.as_millis() as u64, "Evolution API unavailable; will retry");
                    Ok(Outcome::Retry(wait))
                }
                None => {
                    tracing::error!(%dialog_id, seq = due.seq, error = %why, "Evolution API unavailable; giving up on this reply");
                    let mut conn = self.pool.get().await?;
                    replies::close(
                        &mut conn,
                        row.id,
                        "failed",
                        &format!("evolution unavailable: {why}"),
                    )
                    .await?;
                    Ok(Outcome::Ack)
                }
            },
        }
    }

    /// The model's answer: kept from an earlier try, or asked for now.
    async fn answer(
        &self,
        row: &ReplyRow,
        ctx: &ReplyContext,
        history: &[HistoryMessage],
    ) -> Result<String, LlmError> {
        if let (Some(text), "generated") = (&row.reply_text, row.status.as_str()) {
            return Ok(text.clone());
        }
        let messages = self.prompt(ctx, history);
        let c = self.llm.chat(&messages, None).await?;
        let text = c.content.trim().to_owned();
        if text.is_empty() {
            return Err(LlmError::Malformed("an empty answer".into()));
        }
        if let Ok(mut conn) = self.pool.get().await {
            // Not kept, the answer is only asked for again on a retry.
            let tokens = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
            let _ = conn
                .transaction::<_, storage::DbError, _>(async |conn| {
                    replies::set_generated(
                        conn,
                        row.id,
                        &text,
                        c.prompt_tokens,
                        c.completion_tokens,
                    )
                    .await?;
                    if let Some(direction_id) = ctx.direction_id {
                        storage::usage::add(
                            conn,
                            direction_id,
                            storage::usage::Purpose::Reply,
                            1,
                            tokens(c.prompt_tokens),
                            tokens(c.completion_tokens),
                        )
                        .await?;
                    }
                    Ok(())
                })
                .await;
        }
        Ok(text)
    }

    /// The system prompt, then the conversation within the budget.
    pub fn prompt(&self, ctx: &ReplyContext, history: &[HistoryMessage]) -> Vec<ChatMessage> {
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
                let role = if m.author == "customer" {
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
            return Ok(Outcome::Retry(wait));
        }
        tracing::error!(%dialog_id, seq = due.seq, error = %e, attempt, "no bot reply: giving up on the model");
        let mut conn = self.pool.get().await?;
        replies::close(&mut conn, row.id, "failed", &e.to_string()).await?;
        Ok(Outcome::Ack)
    }
}

/// Why the bot may not answer this dialog at all, if it may not.
fn switched_off(ctx: &ReplyContext) -> Option<&'static str> {
    if ctx.direction_id.is_none() {
        return Some("no_direction");
    }
    if ctx.direction_bot_enabled == Some(false) {
        return Some("bot_disabled_for_direction");
    }
    if ctx.instance_bot_enabled == Some(false) {
        return Some("bot_disabled_for_instance");
    }
    None
}

/// The number to send to: the phone's digits, else the contact's LID JID.
fn recipient(ctx: &ReplyContext) -> Option<String> {
    let phone = ctx
        .contact_phone
        .as_deref()
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|p| !p.is_empty());
    phone.or_else(|| {
        ctx.contact_lid
            .as_deref()
            .filter(|l| !l.is_empty())
            .map(|l| {
                if l.contains('@') {
                    l.to_owned()
                } else {
                    format!("{l}@lid")
                }
            })
    })
}
