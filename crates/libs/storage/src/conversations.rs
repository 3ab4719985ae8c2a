//! Dialogs and their messages, as the webhook gateway records them and the
//! buffer and qualification read them.

use crate::{
    PreparedExt, identity,
    schema::{dialog_analysis, dialog_messages},
    sql_functions::coalesce,
};
use chrono::{DateTime, Utc};
use diesel::{
    ExpressionMethods, OptionalExtension, QueryDsl, QueryableByName, Selectable, SelectableHelper,
    sql_types::{BigInt, Bool, Int4, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
pub use domain::conversation::{Author, Message};
use domain::ids::{DialogId, DirectionId, LeadId};
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
    /// The ad the message came from (digits, as `domain::ad_source` keeps).
    pub ad_id: Option<&'a str>,
    pub from_ad: bool,
    pub ad_context: Option<&'a Value>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// This (instance, message id, fromMe) was already stored.
    Duplicate,
    Stored {
        dialog_id: DialogId,
        /// The dialog's buffer sequence after a customer message bumped it.
        buffer_seq: Option<i64>,
    },
}

/// Stores a message once, folds it into its dialog and lead, and — for a
/// customer message, which starts or extends a burst — queues what
/// `announce(dialog_id, seq)` returns through the outbox. Call inside a
/// transaction. Two statements for a new message (one for a repeat): the
/// gateway's whole write is five round trips with the instance lookup and
/// the transaction's BEGIN and COMMIT (scripts/bench-gateway).
pub async fn record_message<F>(
    conn: &mut AsyncPgConnection,
    m: &NewMessage<'_>,
    announce: F,
) -> Result<Recorded, diesel::result::Error>
where
    F: FnOnce(DialogId, i64) -> Option<Queued>,
{
    let Some(stored) = store_message(conn, m).await? else {
        return Ok(Recorded::Duplicate);
    };
    let bumps_buffer = m.author == Author::Customer;
    // The dialog's row is locked since the store (its upsert or update), so
    // the sequence the fold below gives it is known now.
    let seq = stored.buffer_seq + i64::from(bumps_buffer);
    let queued = if bumps_buffer {
        announce(stored.dialog_id, seq)
    } else {
        None
    };
    let folded = fold_into_dialog(conn, m, &stored, bumps_buffer, queued.as_ref()).await?;
    if folded != seq {
        // Not reachable while the row lock holds; never queue a wrong seq.
        return Err(diesel::result::Error::RollbackTransaction);
    }
    Ok(Recorded::Stored {
        dialog_id: stored.dialog_id,
        buffer_seq: bumps_buffer.then_some(seq),
    })
}

/// A message just stored, with its dialog as the store left it.
#[derive(QueryableByName)]
struct Stored {
    #[diesel(sql_type = SqlUuid)]
    dialog_id: DialogId,
    #[diesel(sql_type = Text)]
    contact_key: String,
    #[diesel(sql_type = BigInt)]
    buffer_seq: i64,
    #[diesel(sql_type = Bool)]
    stored: bool,
}

/// Resolves the message's dialog and inserts the message unless it is a
/// repeat; `None` for a repeat. The contact's ids are locked first
/// ([`identity`]); a message naming the phone and the LID joins every dialog
/// known by either into the one keyed by the phone, which the upsert below
/// finds; one naming only the LID goes to the dialog known by it
/// ([`dialog_by_lid`]); else the dialog keyed by the contact key, created if new.
async fn store_message(
    conn: &mut AsyncPgConnection,
    m: &NewMessage<'_>,
) -> Result<Option<Stored>, diesel::result::Error> {
    let name = m.contact_name.filter(|_| !m.from_me);
    identity::lock_contact(conn, m.instance_name, m.contact_lid, m.contact_phone).await?;
    let by_lid = match (m.contact_lid, m.contact_phone) {
        (Some(lid), Some(phone)) => {
            identity::unify(conn, m.instance_name, phone, lid).await?;
            None
        }
        (Some(lid), None) => dialog_by_lid(conn, m, lid, name).await?,
        (None, _) => None,
    };
    // SQL: a CTE: the dialog's upsert (skipped when the LID found it) and the message's insert in one round trip.
    let stored: Stored = diesel::sql_query(
        "WITH upserted AS ( \
           INSERT INTO dialog_analysis (instance_name, contact_key, contact_phone, contact_lid, contact_name) \
           SELECT $1, $2, $3, $4, $5 WHERE $12::uuid IS NULL \
           ON CONFLICT (instance_name, contact_key) DO UPDATE SET \
             contact_phone = COALESCE(dialog_analysis.contact_phone, excluded.contact_phone), \
             contact_lid = COALESCE(dialog_analysis.contact_lid, excluded.contact_lid), \
             contact_name = COALESCE(dialog_analysis.contact_name, excluded.contact_name) \
           RETURNING id, contact_key, buffer_seq \
         ), dialog AS ( \
           SELECT id, contact_key, buffer_seq FROM upserted \
           UNION ALL SELECT $12::uuid, $13::text, $14::bigint WHERE $12::uuid IS NOT NULL \
         ), msg AS ( \
           INSERT INTO dialog_messages (dialog_id, instance_name, message_id, from_me, author, text, message_type, sent_at) \
           SELECT id, $1, $6, $7, $8, $9, $10, $11 FROM dialog \
           ON CONFLICT (instance_name, message_id, from_me) DO NOTHING RETURNING id \
         ) SELECT id AS dialog_id, contact_key, buffer_seq, EXISTS (SELECT 1 FROM msg) AS stored FROM dialog",
    )
    .bind::<Text, _>(m.instance_name)
    .bind::<Text, _>(m.contact_key)
    .bind::<Nullable<Text>, _>(m.contact_phone)
    .bind::<Nullable<Text>, _>(m.contact_lid)
    .bind::<Nullable<Text>, _>(name)
    .bind::<Text, _>(m.message_id)
    .bind::<Bool, _>(m.from_me)
    .bind::<Text, _>(m.author)
    .bind::<Nullable<Text>, _>(m.text)
    .bind::<Nullable<Text>, _>(m.message_type)
    .bind::<Timestamptz, _>(m.sent_at)
    .bind::<Nullable<SqlUuid>, _>(by_lid.as_ref().map(|d| d.id))
    .bind::<Nullable<Text>, _>(by_lid.as_ref().map(|d| d.contact_key.as_str()))
    .bind::<Nullable<BigInt>, _>(by_lid.as_ref().map(|d| d.buffer_seq))
    .prepared()
    .get_result(conn)
    .await?;
    Ok(stored.stored.then_some(stored))
}

#[derive(diesel::Queryable)]
struct DialogByLid {
    id: Uuid,
    contact_key: String,
    buffer_seq: i64,
}

/// The oldest dialog already known by the LID of a message that names only
/// the LID (it may be keyed by the phone), completed with the name it lacked.
async fn dialog_by_lid(
    conn: &mut AsyncPgConnection,
    m: &NewMessage<'_>,
    lid: &str,
    name: Option<&str>,
) -> Result<Option<DialogByLid>, diesel::result::Error> {
    use dialog_analysis::dsl as d;
    let known = diesel::alias!(dialog_analysis as known);
    let oldest_with_lid = known
        .filter(known.field(d::instance_name).eq(m.instance_name))
        .filter(known.field(d::contact_lid).eq(lid))
        .order(known.field(d::created_at))
        .select(known.field(d::id))
        .limit(1);
    diesel::update(d::dialog_analysis)
        .filter(d::id.eq_any(oldest_with_lid))
        .set(d::contact_name.eq(coalesce(d::contact_name, name)))
        .returning((d::id, d::contact_key, d::buffer_seq))
        .get_result(conn)
        .await
        .optional()
}

/// The stored message folded into its dialog's counters and click data (a
/// later message never erases the click id or ad context a first one
/// brought; the ad id stays the first ad message's), its lead upserted and linked, and `queued` written to the
/// outbox, in one statement; the dialog's buffer sequence after it.
async fn fold_into_dialog(
    conn: &mut AsyncPgConnection,
    m: &NewMessage<'_>,
    stored: &Stored,
    bumps_buffer: bool,
    queued: Option<&Queued>,
) -> Result<i64, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Seq {
        #[diesel(sql_type = BigInt)]
        buffer_seq: i64,
    }
    let (incoming, outgoing) = if m.from_me { (0, 1) } else { (1, 0) };
    // SQL: a CTE: the lead's upsert, the dialog's one update (counters, click data, buffer sequence, lead link) and the outbox row, in one round trip.
    let seq: Seq = diesel::sql_query(
        "WITH lead AS ( \
           INSERT INTO leads (instance_name, contact_key, contact_phone, contact_lid, name, ctwa_clid, source_ad_id) \
           VALUES ($1, $2, $3, $4, $5, $6, $18) \
           ON CONFLICT (instance_name, contact_key) DO UPDATE SET \
             contact_phone = COALESCE(excluded.contact_phone, leads.contact_phone), \
             contact_lid = COALESCE(excluded.contact_lid, leads.contact_lid), \
             name = COALESCE(leads.name, excluded.name), \
             ctwa_clid = COALESCE(excluded.ctwa_clid, leads.ctwa_clid), \
             source_ad_id = COALESCE(leads.source_ad_id, excluded.source_ad_id), \
             updated_at = now() \
           RETURNING id \
         ), counted AS ( \
           UPDATE dialog_analysis SET \
             incoming_count = incoming_count + $7, outgoing_count = outgoing_count + $8, \
             first_message = LEAST(first_message, $9), last_message = GREATEST(last_message, $9), \
             ctwa_clid = COALESCE($6, ctwa_clid), from_ad = from_ad OR $10, ad_context = COALESCE($11, ad_context), \
             ad_id = COALESCE(ad_id, $18), \
             buffer_seq = buffer_seq + $12, updated_at = now(), lead_id = (SELECT id FROM lead) \
           WHERE id = $13 RETURNING buffer_seq \
         ), queued AS ( \
           INSERT INTO outbox (message_id, routing_key, payload, delay_ms) \
           SELECT $14, $15, $16, $17 FROM counted WHERE $15::text IS NOT NULL RETURNING 1 \
         ) SELECT buffer_seq FROM counted",
    )
    .bind::<Text, _>(m.instance_name)
    .bind::<Text, _>(&stored.contact_key)
    .bind::<Nullable<Text>, _>(m.contact_phone)
    .bind::<Nullable<Text>, _>(m.contact_lid)
    .bind::<Nullable<Text>, _>(m.contact_name.filter(|_| !m.from_me))
    .bind::<Nullable<Text>, _>(m.ctwa_clid)
    .bind::<Int4, _>(incoming)
    .bind::<Int4, _>(outgoing)
    .bind::<Timestamptz, _>(m.sent_at)
    .bind::<Bool, _>(m.from_ad)
    .bind::<Nullable<Jsonb>, _>(m.ad_context)
    .bind::<BigInt, _>(i64::from(bumps_buffer))
    .bind::<SqlUuid, _>(stored.dialog_id)
    .bind::<SqlUuid, _>(Uuid::new_v4())
    .bind::<Nullable<Text>, _>(queued.map(|q| q.routing_key))
    .bind::<Nullable<Jsonb>, _>(queued.map(|q| &q.payload))
    .bind::<BigInt, _>(queued.map_or(0, |q| q.delay_ms))
    .bind::<Nullable<Text>, _>(m.ad_id)
    .prepared()
    .get_result(conn)
    .await?;
    Ok(seq.buffer_seq)
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
    dialog_id: DialogId,
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
    // SQL: a CTE: the conditional flush and its outbox rows (`unnest` of the messages) in one round trip.
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
    dialog_id: DialogId,
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

/// The direction's dialog with one of these phones (digits with the country
/// code), the most recently active first.
/// A dialog for a CRM contact no WhatsApp dialog has (a crm direction set
/// to `phone_only`): on the direction's first instance, keyed by the phone
/// as WhatsApp would key it — so if the customer writes later, it is the
/// same dialog and no level is sent twice. `None` when the direction has no
/// instance.
pub async fn crm_contact_dialog(
    conn: &mut AsyncPgConnection,
    direction_id: DirectionId,
    phone: &str,
) -> Result<Option<DialogId>, diesel::result::Error> {
    use crate::schema::whatsapp_phone_numbers::dsl as w;
    use dialog_analysis::dsl as d;
    let Some(instance): Option<String> = w::whatsapp_phone_numbers
        .filter(w::direction_id.eq(direction_id))
        .order(w::instance_name)
        .select(w::instance_name)
        .first(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    diesel::insert_into(d::dialog_analysis)
        .values((
            d::instance_name.eq(&instance),
            d::contact_key.eq(phone),
            d::contact_phone.eq(phone),
        ))
        .on_conflict((d::instance_name, d::contact_key))
        .do_update()
        .set(d::updated_at.eq(diesel::dsl::now))
        .returning(d::id)
        .get_result(conn)
        .await
        .map(Some)
}

pub async fn dialog_by_phones(
    conn: &mut AsyncPgConnection,
    direction_id: DirectionId,
    phones: &[String],
) -> Result<Option<DialogId>, diesel::result::Error> {
    use dialog_analysis::dsl as d;
    use diesel::PgSortExpressionMethods;
    if phones.is_empty() {
        return Ok(None);
    }
    d::dialog_analysis
        .filter(d::direction_id.eq(direction_id))
        .filter(d::contact_phone.eq_any(phones))
        .order(d::last_message.desc().nulls_last())
        .select(d::id)
        .first(conn)
        .await
        .optional()
}

/// A lead's dialog with a direction, as `capi lead purchase` picks one.
#[derive(Debug, Clone, QueryableByName)]
pub struct LeadDialog {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub dialog_id: DialogId,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub direction_id: DirectionId,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub direction_name: String,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub capi_enabled: bool,
}

/// The lead's dialogs that belong to a direction, oldest first.
pub async fn lead_dialogs(
    conn: &mut AsyncPgConnection,
    lead_id: LeadId,
) -> Result<Vec<LeadDialog>, diesel::result::Error> {
    // SQL: the dialog's direction, else its instance's (as the reports attribute it).
    diesel::sql_query(
        "SELECT da.id AS dialog_id, ad.id AS direction_id, ad.name AS direction_name, ad.capi_enabled \
         FROM dialog_analysis da \
         LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = da.instance_name \
         JOIN account_directions ad ON ad.id = coalesce(da.direction_id, w.direction_id) \
         WHERE da.lead_id = $1 ORDER BY da.created_at, da.id",
    )
    .bind::<diesel::sql_types::Uuid, _>(lead_id)
    .load(conn)
    .await
}
