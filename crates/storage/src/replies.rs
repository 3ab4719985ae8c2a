//! The bot's replies: what it needs to answer a dialog, the per-burst reply
//! record that makes a redelivered request harmless, and the outgoing
//! message it sent.

use crate::PreparedExt;
use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Everything about a dialog the bot's decision depends on.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReplyContext {
    #[diesel(sql_type = Text)]
    pub instance_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub contact_phone: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub contact_lid: Option<String>,
    /// The dialog's newest buffered burst (a newer one supersedes this reply).
    #[diesel(sql_type = BigInt)]
    pub buffer_seq: i64,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub direction_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub direction_name: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub direction_bot_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    pub bot_prompt: Option<String>,
    #[diesel(sql_type = Nullable<Bool>)]
    pub instance_bot_enabled: Option<bool>,
    #[diesel(sql_type = Nullable<Text>)]
    pub evolution_api_key: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub evolution_api_version: Option<String>,
}

pub async fn reply_context(
    conn: &mut AsyncPgConnection,
    dialog_id: Uuid,
) -> Result<Option<ReplyContext>, diesel::result::Error> {
    use diesel::OptionalExtension;
    diesel::sql_query(
        "SELECT d.instance_name, d.contact_phone, d.contact_lid, d.buffer_seq, d.direction_id, \
           ad.name AS direction_name, ad.bot_enabled AS direction_bot_enabled, ad.bot_prompt, \
           w.bot_enabled AS instance_bot_enabled, w.evolution_api_key, w.evolution_api_version \
         FROM dialog_analysis d \
         LEFT JOIN account_directions ad ON ad.id = d.direction_id \
         LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = d.instance_name \
         WHERE d.id = $1",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .prepared()
    .get_result(conn)
    .await
    .optional()
}

/// Where a burst's reply stands.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReplyRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    /// pending | generated | sent | skipped | failed
    #[diesel(sql_type = Text)]
    pub status: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub reply_text: Option<String>,
    /// Tries so far, this one included.
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
}

/// What claiming a burst's reply found.
#[derive(Debug, Clone)]
pub enum Claim {
    /// Ours until the lease ends: answer it.
    Taken(ReplyRow),
    /// Finished earlier: `sent`, `skipped` or `failed`.
    Done(String),
    /// Another handler holds it until then.
    Leased(DateTime<Utc>),
}

/// Takes the reply for (dialog, seq) for `lease_ms`, creating it on first
/// sight and counting the try, unless it is finished or another handler's
/// lease is still running.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    dialog_id: Uuid,
    seq: i64,
    lease_ms: i64,
) -> Result<Claim, diesel::result::Error> {
    use diesel::OptionalExtension;
    let taken: Option<ReplyRow> = diesel::sql_query(
        "INSERT INTO bot_replies (dialog_id, seq, lease_until, attempts) \
         VALUES ($1, $2, now() + make_interval(secs => $3 / 1000.0), 1) \
         ON CONFLICT (dialog_id, seq) DO UPDATE \
           SET lease_until = EXCLUDED.lease_until, attempts = bot_replies.attempts + 1, updated_at = now() \
           WHERE bot_replies.status IN ('pending', 'generated') \
             AND (bot_replies.lease_until IS NULL OR bot_replies.lease_until <= now()) \
         RETURNING id, status, reply_text, attempts",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .bind::<BigInt, _>(seq)
    .bind::<BigInt, _>(lease_ms)
    .prepared()
    .get_result(conn)
    .await
    .optional()?;
    if let Some(row) = taken {
        return Ok(Claim::Taken(row));
    }
    #[derive(QueryableByName)]
    struct Held {
        #[diesel(sql_type = Text)]
        status: String,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        lease_until: Option<DateTime<Utc>>,
    }
    let held: Held = diesel::sql_query(
        "SELECT status, lease_until FROM bot_replies WHERE dialog_id = $1 AND seq = $2",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .bind::<BigInt, _>(seq)
    .prepared()
    .get_result(conn)
    .await?;
    Ok(match (held.status.as_str(), held.lease_until) {
        ("pending" | "generated", Some(until)) => Claim::Leased(until),
        // Released between the two statements: look again shortly.
        ("pending" | "generated", None) => Claim::Leased(Utc::now()),
        _ => Claim::Done(held.status),
    })
}

/// Gives the lease up: the reply will be tried again (by a queued retry).
pub async fn release(conn: &mut AsyncPgConnection, id: i64) -> Result<(), diesel::result::Error> {
    diesel::sql_query("UPDATE bot_replies SET lease_until = NULL WHERE id = $1")
        .bind::<BigInt, _>(id)
        .prepared()
        .execute(conn)
        .await?;
    Ok(())
}

/// Keeps the model's answer for a retry that must not ask the model again
/// (Evolution API was unavailable).
pub async fn set_generated(
    conn: &mut AsyncPgConnection,
    id: i64,
    text: &str,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "UPDATE bot_replies SET status = 'generated', reply_text = $2, updated_at = now() \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(text)
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

/// Adds a model call's tokens to the reply.
pub async fn add_tokens(
    conn: &mut AsyncPgConnection,
    id: i64,
    prompt_tokens: i32,
    completion_tokens: i32,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "UPDATE bot_replies SET prompt_tokens = prompt_tokens + $2, \
           completion_tokens = completion_tokens + $3 WHERE id = $1",
    )
    .bind::<BigInt, _>(id)
    .bind::<Int4, _>(prompt_tokens)
    .bind::<Int4, _>(completion_tokens)
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes a reply that was not sent: `skipped` (a rule said no) or `failed`.
pub async fn close(
    conn: &mut AsyncPgConnection,
    id: i64,
    status: &str,
    reason: &str,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "UPDATE bot_replies SET status = $2, reason = $3, updated_at = now() \
         WHERE id = $1 AND status IN ('pending', 'generated')",
    )
    .bind::<BigInt, _>(id)
    .bind::<Text, _>(status)
    .bind::<Text, _>(reason)
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

/// A reply Evolution API accepted.
#[derive(Debug, Clone)]
pub struct SentReply<'a> {
    pub reply_id: i64,
    pub dialog_id: Uuid,
    pub instance_name: &'a str,
    pub message_id: &'a str,
    pub text: &'a str,
    pub sent_at: DateTime<Utc>,
    pub response_ms: i64,
}

/// Stores the sent reply as the dialog's outgoing bot message and closes the
/// reply as `sent`. Call inside a transaction. If Evolution's own webhook for
/// the message got here first (stored as written from the phone), the row
/// becomes the bot's and is not counted twice.
pub async fn record_sent(
    conn: &mut AsyncPgConnection,
    r: &SentReply<'_>,
) -> Result<(), diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Inserted {
        #[diesel(sql_type = Bool)]
        inserted: bool,
    }
    let response_ms = i32::try_from(r.response_ms.max(0)).unwrap_or(i32::MAX);
    let row: Inserted = diesel::sql_query(
        "INSERT INTO dialog_messages (dialog_id, instance_name, message_id, from_me, author, text, message_type, sent_at, response_ms) \
         VALUES ($1, $2, $3, true, 'bot', $4, 'conversation', $5, $6) \
         ON CONFLICT (instance_name, message_id, from_me) DO UPDATE SET author = 'bot', response_ms = EXCLUDED.response_ms \
         RETURNING (xmax = 0) AS inserted",
    )
    .bind::<SqlUuid, _>(r.dialog_id)
    .bind::<Text, _>(r.instance_name)
    .bind::<Text, _>(r.message_id)
    .bind::<Text, _>(r.text)
    .bind::<Timestamptz, _>(r.sent_at)
    .bind::<Int4, _>(response_ms)
    .prepared()
    .get_result(conn)
    .await?;
    if row.inserted {
        diesel::sql_query(
            "UPDATE dialog_analysis SET outgoing_count = outgoing_count + 1, \
               last_message = GREATEST(last_message, $2), updated_at = now() WHERE id = $1",
        )
        .bind::<SqlUuid, _>(r.dialog_id)
        .bind::<Timestamptz, _>(r.sent_at)
        .prepared()
        .execute(conn)
        .await?;
    }
    diesel::sql_query(
        "UPDATE bot_replies SET status = 'sent', message_id = $2, response_ms = $3, updated_at = now() WHERE id = $1",
    )
    .bind::<BigInt, _>(r.reply_id)
    .bind::<Text, _>(r.message_id)
    .bind::<Int4, _>(response_ms)
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}
