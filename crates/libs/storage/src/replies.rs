//! The bot's replies: what it needs to answer a dialog, the per-burst reply
//! record that makes a redelivered request harmless, and the outgoing
//! message it sent.

use crate::{
    PreparedExt,
    schema::{account_directions, bot_replies, dialog_analysis, whatsapp_phone_numbers},
    sql_functions::greatest,
};
use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, JoinOnDsl, NullableExpressionMethods, OptionalExtension, QueryDsl,
    QueryableByName,
    sql_types::{BigInt, Bool, Int4, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::DialogId;
use domain::{
    conversation::{BotTarget, ReplyStatus},
    evolution::ApiVersion,
    whatsapp_cloud::Channel,
};
use secrecy::SecretString;

/// Everything about a dialog the bot's decision depends on.
#[derive(Debug, Clone)]
pub struct ReplyContext {
    pub instance_name: String,
    /// The dialog's newest buffered burst (a newer one supersedes this reply).
    pub buffer_seq: i64,
    pub direction_name: Option<String>,
    pub bot_prompt: Option<String>,
    /// Whom to answer, and whether the bot may.
    pub target: BotTarget,
    /// The instance's Evolution API key; `None` when it has none (or no instance).
    pub evolution_api_key: Option<SecretString>,
    /// `None` when the instance is not mapped.
    pub evolution_api_version: Option<ApiVersion>,
    /// Evolution unless the dialog's number is on the Cloud API.
    pub channel: Channel,
    /// Cloud API numbers: Meta's id of the number, and the system-user
    /// token replies are sent with (`None` when not set).
    pub phone_number_id: Option<String>,
    pub cloud_access_token: Option<SecretString>,
}

type ReplyContextRow = (
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<domain::ids::DirectionId>,
    Option<String>,
    Option<bool>,
    Option<String>,
    Option<bool>,
    Option<String>,
    Option<ApiVersion>,
    Option<Channel>,
    Option<String>,
    Option<String>,
);

pub async fn reply_context(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    dialog_id: DialogId,
) -> Result<Option<ReplyContext>, diesel::result::Error> {
    use account_directions::dsl as ad;
    use dialog_analysis::dsl as d;
    use whatsapp_phone_numbers::dsl as w;
    let row: Option<ReplyContextRow> = d::dialog_analysis
        .left_join(ad::account_directions.on(ad::id.nullable().eq(d::direction_id)))
        .left_join(w::whatsapp_phone_numbers.on(w::instance_name.eq(d::instance_name)))
        .filter(d::id.eq(dialog_id))
        .select((
            d::instance_name,
            d::contact_phone,
            d::contact_lid,
            d::buffer_seq,
            d::direction_id,
            ad::name.nullable(),
            ad::bot_enabled.nullable(),
            ad::bot_prompt.nullable(),
            w::bot_enabled.nullable(),
            w::evolution_api_key.nullable(),
            w::evolution_api_version.nullable(),
            w::channel.nullable(),
            w::phone_number_id.nullable(),
            w::cloud_access_token.nullable(),
        ))
        .get_result(conn)
        .await
        .optional()?;
    row.map(
        |(
            instance_name,
            contact_phone,
            contact_lid,
            buffer_seq,
            direction_id,
            direction_name,
            direction_bot_enabled,
            bot_prompt,
            instance_bot_enabled,
            evolution_api_key,
            evolution_api_version,
            channel,
            phone_number_id,
            cloud_access_token,
        )|
         -> Result<ReplyContext, diesel::result::Error> {
            let open = |column, s: Option<String>| {
                keys.open(column, s.as_deref()).map(|s| {
                    s.filter(|k| !secrecy::ExposeSecret::expose_secret(k).trim().is_empty())
                })
            };
            Ok(ReplyContext {
                instance_name,
                buffer_seq,
                direction_name,
                bot_prompt,
                target: BotTarget {
                    direction_id,
                    direction_bot_enabled,
                    instance_bot_enabled,
                    contact_phone,
                    contact_lid,
                },
                evolution_api_key: open(
                    crate::secrets::NUMBER_EVOLUTION_API_KEY,
                    evolution_api_key,
                )?,
                evolution_api_version,
                channel: channel.unwrap_or(Channel::Evolution),
                phone_number_id,
                cloud_access_token: open(
                    crate::secrets::NUMBER_CLOUD_ACCESS_TOKEN,
                    cloud_access_token,
                )?,
            })
        },
    )
    .transpose()
}

/// Where a burst's reply stands.
#[derive(Debug, Clone, QueryableByName)]
pub struct ReplyRow {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub status: ReplyStatus,
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
    Done(ReplyStatus),
    /// Another handler holds it until then.
    Leased(DateTime<Utc>),
    /// The dialog is gone: merged into another of the same person since the
    /// burst was flushed (that dialog answers its own bursts).
    NoDialog,
}

/// Takes the reply for (dialog, seq) for `lease_ms`, creating it on first
/// sight and counting the try, unless it is finished or another handler's
/// lease is still running.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
    seq: i64,
    lease_ms: i64,
) -> Result<Claim, diesel::result::Error> {
    // SQL: `ON CONFLICT … DO UPDATE … WHERE`: the reply is taken only while it is open and no lease runs.
    let taken: Result<Option<ReplyRow>, _> = diesel::sql_query(
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
    .optional();
    let taken = match taken {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::ForeignKeyViolation,
            _,
        )) => return Ok(Claim::NoDialog),
        other => other?,
    };
    if let Some(row) = taken {
        return Ok(Claim::Taken(row));
    }
    use bot_replies::dsl as r;
    let (status, lease_until): (ReplyStatus, Option<DateTime<Utc>>) = r::bot_replies
        .filter(r::dialog_id.eq(dialog_id))
        .filter(r::seq.eq(seq))
        .select((r::status, r::lease_until))
        .get_result(conn)
        .await?;
    Ok(match (status.is_open(), lease_until) {
        (true, Some(until)) => Claim::Leased(until),
        // Released between the two statements: look again shortly.
        (true, None) => Claim::Leased(Utc::now()),
        (false, _) => Claim::Done(status),
    })
}

/// Gives the lease up: the reply will be tried again (by a queued retry).
pub async fn release(conn: &mut AsyncPgConnection, id: i64) -> Result<(), diesel::result::Error> {
    use bot_replies::dsl as r;
    diesel::update(r::bot_replies.find(id))
        .set(r::lease_until.eq(None::<DateTime<Utc>>))
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
    use bot_replies::dsl as r;
    diesel::update(
        r::bot_replies
            .find(id)
            .filter(r::status.eq(ReplyStatus::Pending)),
    )
    .set((
        r::status.eq(ReplyStatus::Generated),
        r::reply_text.eq(text),
        r::updated_at.eq(diesel::dsl::now),
    ))
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
    use bot_replies::dsl as r;
    diesel::update(r::bot_replies.find(id))
        .set((
            r::prompt_tokens.eq(r::prompt_tokens + prompt_tokens),
            r::completion_tokens.eq(r::completion_tokens + completion_tokens),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// How a reply that was not sent ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// A rule said not to answer.
    Skipped,
    Failed,
}

/// Closes a reply that was not sent, with the reason.
pub async fn close(
    conn: &mut AsyncPgConnection,
    id: i64,
    how: Unsent,
    reason: &str,
) -> Result<(), diesel::result::Error> {
    use bot_replies::dsl as r;
    let status = match how {
        Unsent::Skipped => ReplyStatus::Skipped,
        Unsent::Failed => ReplyStatus::Failed,
    };
    diesel::update(
        r::bot_replies
            .find(id)
            .filter(r::status.eq_any([ReplyStatus::Pending, ReplyStatus::Generated])),
    )
    .set((
        r::status.eq(status),
        r::reason.eq(reason),
        r::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// A reply Evolution API accepted.
#[derive(Debug, Clone)]
pub struct SentReply<'a> {
    pub reply_id: i64,
    pub dialog_id: DialogId,
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
    // SQL: `RETURNING (xmax = 0)` tells a fresh insert from the webhook's row taken over.
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
        use dialog_analysis::dsl as d;
        diesel::update(d::dialog_analysis.find(r.dialog_id))
            .set((
                d::outgoing_count.eq(d::outgoing_count + 1),
                d::last_message.eq(greatest(d::last_message, Some(r.sent_at))),
                d::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    use bot_replies::dsl as b;
    diesel::update(b::bot_replies.find(r.reply_id))
        .set((
            b::status.eq(ReplyStatus::Sent),
            b::message_id.eq(r.message_id),
            b::response_ms.eq(response_ms),
            b::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(())
}
