//! Dialogs and their messages, as the webhook gateway records them and the
//! buffer and qualification read them.

use crate::{
    PreparedExt,
    schema::{dialog_analysis, dialog_messages},
};
use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, OptionalExtension, PgExpressionMethods, QueryDsl, QueryableByName,
    Selectable, SelectableHelper,
    sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
pub use domain::conversation::{Author, Message};
use serde_json::Value;
use uuid::Uuid;

/// A message to record, already parsed and attributed.
#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub instance_name: &'a str,
    pub message_id: &'a str,
    pub from_me: bool,
    pub author: Author,
    pub contact_key: &'a str,
    pub contact_phone: Option<&'a str>,
    pub contact_lid: Option<&'a str>,
    pub contact_name: Option<&'a str>,
    pub text: Option<&'a str>,
    pub message_type: Option<&'a str>,
    pub sent_at: DateTime<Utc>,
    pub ctwa_clid: Option<&'a str>,
    pub from_ad: bool,
    pub ad_context: Option<&'a Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// This (instance, message id, fromMe) was already stored.
    Duplicate,
    Stored {
        dialog_id: Uuid,
        /// The dialog's buffer sequence after a customer message bumped it.
        buffer_seq: Option<i64>,
    },
}

#[derive(QueryableByName)]
struct DialogKey {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    contact_key: String,
}

#[derive(QueryableByName)]
struct Seq {
    #[diesel(sql_type = BigInt)]
    buffer_seq: i64,
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// Stores a message once and updates its dialog and lead. Call inside a
/// transaction (with the outbox row that announces it).
pub async fn record_message(
    conn: &mut AsyncPgConnection,
    m: &NewMessage<'_>,
) -> Result<Recorded, diesel::result::Error> {
    use dialog_messages::dsl as msg;
    let dialog = resolve_dialog(conn, m).await?;
    let inserted: Option<i64> = diesel::insert_into(msg::dialog_messages)
        .values((
            msg::dialog_id.eq(dialog.id),
            msg::instance_name.eq(m.instance_name),
            msg::message_id.eq(m.message_id),
            msg::from_me.eq(m.from_me),
            msg::author.eq(m.author),
            msg::text.eq(m.text),
            msg::message_type.eq(m.message_type),
            msg::sent_at.eq(m.sent_at),
        ))
        .on_conflict((msg::instance_name, msg::message_id, msg::from_me))
        .do_nothing()
        .returning(msg::id)
        .get_result(conn)
        .await
        .optional()?;
    if inserted.is_none() {
        return Ok(Recorded::Duplicate);
    }
    let bumps_buffer = m.author == Author::Customer;
    let seq: Seq = diesel::sql_query(
        "UPDATE dialog_analysis SET \
           incoming_count = incoming_count + CASE WHEN $2 THEN 0 ELSE 1 END, \
           outgoing_count = outgoing_count + CASE WHEN $2 THEN 1 ELSE 0 END, \
           first_message = LEAST(first_message, $3), \
           last_message = GREATEST(last_message, $3), \
           ctwa_clid = COALESCE($4, ctwa_clid), \
           from_ad = from_ad OR $5, \
           ad_context = COALESCE($6, ad_context), \
           buffer_seq = buffer_seq + CASE WHEN $7 THEN 1 ELSE 0 END, \
           updated_at = now() \
         WHERE id = $1 RETURNING buffer_seq",
    )
    .bind::<SqlUuid, _>(dialog.id)
    .bind::<Bool, _>(m.from_me)
    .bind::<Timestamptz, _>(m.sent_at)
    .bind::<Nullable<Text>, _>(m.ctwa_clid)
    .bind::<Bool, _>(m.from_ad)
    .bind::<Nullable<Jsonb>, _>(m.ad_context)
    .bind::<Bool, _>(bumps_buffer)
    .prepared()
    .get_result(conn)
    .await?;
    let lead: Id = diesel::sql_query(
        "INSERT INTO leads (instance_name, contact_key, contact_phone, contact_lid, name, ctwa_clid) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (instance_name, contact_key) DO UPDATE SET \
           contact_phone = COALESCE(EXCLUDED.contact_phone, leads.contact_phone), \
           contact_lid = COALESCE(EXCLUDED.contact_lid, leads.contact_lid), \
           name = COALESCE(leads.name, EXCLUDED.name), \
           ctwa_clid = COALESCE(EXCLUDED.ctwa_clid, leads.ctwa_clid), \
           updated_at = now() \
         RETURNING id",
    )
    .bind::<Text, _>(m.instance_name)
    .bind::<Text, _>(&dialog.contact_key)
    .bind::<Nullable<Text>, _>(m.contact_phone)
    .bind::<Nullable<Text>, _>(m.contact_lid)
    .bind::<Nullable<Text>, _>(m.contact_name.filter(|_| !m.from_me))
    .bind::<Nullable<Text>, _>(m.ctwa_clid)
    .prepared()
    .get_result(conn)
    .await?;
    use dialog_analysis::dsl as d;
    diesel::update(
        d::dialog_analysis
            .find(dialog.id)
            .filter(d::lead_id.is_distinct_from(lead.id)),
    )
    .set(d::lead_id.eq(lead.id))
    .execute(conn)
    .await?;
    Ok(Recorded::Stored {
        dialog_id: dialog.id,
        buffer_seq: bumps_buffer.then_some(seq.buffer_seq),
    })
}

/// The dialog a message belongs to: one already known by the contact's LID
/// (WhatsApp may address the same person by LID and by phone), else the one
/// keyed by the contact key, created if new.
async fn resolve_dialog(
    conn: &mut AsyncPgConnection,
    m: &NewMessage<'_>,
) -> Result<DialogKey, diesel::result::Error> {
    let name = m.contact_name.filter(|_| !m.from_me);
    if let Some(lid) = m.contact_lid {
        let by_lid: Option<DialogKey> = diesel::sql_query(
            "UPDATE dialog_analysis SET contact_phone = COALESCE(contact_phone, $3), \
               contact_name = COALESCE(contact_name, $4) \
             WHERE id = (SELECT id FROM dialog_analysis WHERE instance_name = $1 AND contact_lid = $2 \
                         ORDER BY created_at LIMIT 1) \
             RETURNING id, contact_key",
        )
        .bind::<Text, _>(m.instance_name)
        .bind::<Text, _>(lid)
        .bind::<Nullable<Text>, _>(m.contact_phone)
        .bind::<Nullable<Text>, _>(name)
        .prepared()
        .get_result(conn)
        .await
        .optional()?;
        if let Some(d) = by_lid {
            return Ok(d);
        }
    }
    diesel::sql_query(
        "INSERT INTO dialog_analysis (instance_name, contact_key, contact_phone, contact_lid, contact_name) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (instance_name, contact_key) DO UPDATE SET \
           contact_phone = COALESCE(dialog_analysis.contact_phone, EXCLUDED.contact_phone), \
           contact_lid = COALESCE(dialog_analysis.contact_lid, EXCLUDED.contact_lid), \
           contact_name = COALESCE(dialog_analysis.contact_name, EXCLUDED.contact_name) \
         RETURNING id, contact_key",
    )
    .bind::<Text, _>(m.instance_name)
    .bind::<Text, _>(m.contact_key)
    .bind::<Nullable<Text>, _>(m.contact_phone)
    .bind::<Nullable<Text>, _>(m.contact_lid)
    .bind::<Nullable<Text>, _>(name)
    .prepared()
    .get_result(conn)
    .await
}

/// A message to queue through the outbox.
#[derive(Debug, Clone)]
pub struct Queued {
    pub routing_key: &'static str,
    pub payload: Value,
    pub delay_ms: i64,
}

/// Flushes the dialog's buffer at `seq` if `seq` is still its newest burst
/// and nobody flushed it yet, and queues `then` (through the outbox) in the
/// same statement; false when the flush is stale or already done. One round
/// trip: two of every three flushes of a burst are stale.
pub async fn flush_buffer(
    conn: &mut AsyncPgConnection,
    dialog_id: Uuid,
    seq: i64,
    then: &[Queued],
) -> Result<bool, diesel::result::Error> {
    use diesel::sql_types::Array;
    #[derive(QueryableByName)]
    struct Flushed {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let ids: Vec<Uuid> = then.iter().map(|_| Uuid::new_v4()).collect();
    let keys: Vec<&str> = then.iter().map(|q| q.routing_key).collect();
    let payloads: Vec<&Value> = then.iter().map(|q| &q.payload).collect();
    let delays: Vec<i64> = then.iter().map(|q| q.delay_ms).collect();
    let flushed: Flushed = diesel::sql_query(
        "WITH flushed AS ( \
           UPDATE dialog_analysis SET buffer_flushed_seq = $2 \
           WHERE id = $1 AND buffer_seq = $2 AND buffer_flushed_seq < $2 RETURNING id \
         ), queued AS ( \
           INSERT INTO outbox (message_id, routing_key, payload, delay_ms) \
           SELECT m.id, m.key, m.payload, m.delay_ms FROM flushed \
           CROSS JOIN unnest($3::uuid[], $4::text[], $5::jsonb[], $6::bigint[]) AS m(id, key, payload, delay_ms) \
           RETURNING 1 \
         ) SELECT count(*) AS n FROM flushed",
    )
    .bind::<SqlUuid, _>(dialog_id)
    .bind::<BigInt, _>(seq)
    .bind::<Array<SqlUuid>, _>(ids)
    .bind::<Array<Text>, _>(keys)
    .bind::<Array<Jsonb>, _>(payloads)
    .bind::<Array<BigInt>, _>(delays)
    .prepared()
    .get_result(conn)
    .await?;
    Ok(flushed.n == 1)
}

#[derive(diesel::Queryable, Selectable)]
#[diesel(table_name = dialog_messages, check_for_backend(diesel::pg::Pg))]
struct MessageRow {
    id: i64,
    author: Author,
    text: Option<String>,
    sent_at: DateTime<Utc>,
}

impl From<MessageRow> for Message {
    fn from(r: MessageRow) -> Self {
        Message {
            id: r.id,
            author: r.author,
            text: r.text,
            sent_at: r.sent_at,
        }
    }
}

/// The dialog's newest `limit` messages (up to message `through`, when
/// given), oldest first.
pub async fn history(
    conn: &mut AsyncPgConnection,
    dialog_id: Uuid,
    through: Option<i64>,
    limit: i64,
) -> Result<Vec<Message>, diesel::result::Error> {
    use dialog_messages::dsl as msg;
    let newest: Vec<MessageRow> = msg::dialog_messages
        .filter(msg::dialog_id.eq(dialog_id))
        .filter(msg::id.le(through.unwrap_or(i64::MAX)))
        .order((msg::sent_at.desc(), msg::id.desc()))
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
        .await?;
    Ok(newest.into_iter().rev().map(Message::from).collect())
}
