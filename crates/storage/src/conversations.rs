//! Dialogs and their messages, as the webhook gateway records them and the
//! buffer and qualification read them.

use crate::{
    PreparedExt,
    schema::{dialog_analysis, dialog_messages, leads},
    sql_functions::{coalesce, greatest, least},
};
use chrono::{DateTime, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, IntoSql, OptionalExtension, PgExpressionMethods,
    QueryDsl, QueryableByName, Selectable, SelectableHelper,
    dsl::now,
    sql_types::{BigInt, Bool, Jsonb, Text, Uuid as SqlUuid},
    upsert::excluded,
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

#[derive(diesel::Queryable)]
struct DialogKey {
    id: Uuid,
    contact_key: String,
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
    // The message folded into its dialog's counters and click data (a later
    // message never erases the click id or ad context a first one brought).
    use dialog_analysis::dsl as d;
    let (incoming, outgoing) = if m.from_me { (0, 1) } else { (1, 0) };
    let buffer_seq: i64 = diesel::update(d::dialog_analysis.find(dialog.id))
        .set((
            d::incoming_count.eq(d::incoming_count + incoming),
            d::outgoing_count.eq(d::outgoing_count + outgoing),
            d::first_message.eq(least(d::first_message, Some(m.sent_at))),
            d::last_message.eq(greatest(d::last_message, Some(m.sent_at))),
            d::ctwa_clid.eq(coalesce(m.ctwa_clid, d::ctwa_clid)),
            d::from_ad.eq(d::from_ad.or(m.from_ad.into_sql::<Bool>())),
            d::ad_context.eq(coalesce(m.ad_context, d::ad_context)),
            d::buffer_seq.eq(d::buffer_seq + i64::from(bumps_buffer)),
            d::updated_at.eq(now),
        ))
        .returning(d::buffer_seq)
        .get_result(conn)
        .await?;
    use leads::dsl as l;
    let lead_id: Uuid = diesel::insert_into(l::leads)
        .values((
            l::instance_name.eq(m.instance_name),
            l::contact_key.eq(&dialog.contact_key),
            l::contact_phone.eq(m.contact_phone),
            l::contact_lid.eq(m.contact_lid),
            l::name.eq(m.contact_name.filter(|_| !m.from_me)),
            l::ctwa_clid.eq(m.ctwa_clid),
        ))
        .on_conflict((l::instance_name, l::contact_key))
        .do_update()
        .set((
            l::contact_phone.eq(coalesce(excluded(l::contact_phone), l::contact_phone)),
            l::contact_lid.eq(coalesce(excluded(l::contact_lid), l::contact_lid)),
            l::name.eq(coalesce(l::name, excluded(l::name))),
            l::ctwa_clid.eq(coalesce(excluded(l::ctwa_clid), l::ctwa_clid)),
            l::updated_at.eq(now),
        ))
        .returning(l::id)
        .get_result(conn)
        .await?;
    diesel::update(
        d::dialog_analysis
            .find(dialog.id)
            .filter(d::lead_id.is_distinct_from(lead_id)),
    )
    .set(d::lead_id.eq(lead_id))
    .execute(conn)
    .await?;
    Ok(Recorded::Stored {
        dialog_id: dialog.id,
        buffer_seq: bumps_buffer.then_some(buffer_seq),
    })
}

/// The dialog a message belongs to: one already known by the contact's LID
/// (WhatsApp may address the same person by LID and by phone), else the one
/// keyed by the contact key, created if new.
async fn resolve_dialog(
    conn: &mut AsyncPgConnection,
    m: &NewMessage<'_>,
) -> Result<DialogKey, diesel::result::Error> {
    use dialog_analysis::dsl as d;
    let name = m.contact_name.filter(|_| !m.from_me);
    if let Some(lid) = m.contact_lid {
        let known = diesel::alias!(dialog_analysis as known);
        let oldest_with_lid = known
            .filter(known.field(d::instance_name).eq(m.instance_name))
            .filter(known.field(d::contact_lid).eq(lid))
            .order(known.field(d::created_at))
            .select(known.field(d::id))
            .limit(1);
        let by_lid: Option<DialogKey> = diesel::update(d::dialog_analysis)
            .filter(d::id.eq_any(oldest_with_lid))
            .set((
                d::contact_phone.eq(coalesce(d::contact_phone, m.contact_phone)),
                d::contact_name.eq(coalesce(d::contact_name, name)),
            ))
            .returning((d::id, d::contact_key))
            .get_result(conn)
            .await
            .optional()?;
        if let Some(d) = by_lid {
            return Ok(d);
        }
    }
    diesel::insert_into(d::dialog_analysis)
        .values((
            d::instance_name.eq(m.instance_name),
            d::contact_key.eq(m.contact_key),
            d::contact_phone.eq(m.contact_phone),
            d::contact_lid.eq(m.contact_lid),
            d::contact_name.eq(name),
        ))
        .on_conflict((d::instance_name, d::contact_key))
        .do_update()
        .set((
            d::contact_phone.eq(coalesce(d::contact_phone, excluded(d::contact_phone))),
            d::contact_lid.eq(coalesce(d::contact_lid, excluded(d::contact_lid))),
            d::contact_name.eq(coalesce(d::contact_name, excluded(d::contact_name))),
        ))
        .returning((d::id, d::contact_key))
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

/// The direction's dialog with one of these phones (digits with the country
/// code), the most recently active first.
/// A dialog for a CRM contact no WhatsApp dialog has (a crm direction set
/// to `phone_only`): on the direction's first instance, keyed by the phone
/// as WhatsApp would key it — so if the customer writes later, it is the
/// same dialog and no level is sent twice. `None` when the direction has no
/// instance.
pub async fn crm_contact_dialog(
    conn: &mut AsyncPgConnection,
    direction_id: Uuid,
    phone: &str,
) -> Result<Option<Uuid>, diesel::result::Error> {
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
    direction_id: Uuid,
    phones: &[String],
) -> Result<Option<Uuid>, diesel::result::Error> {
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
