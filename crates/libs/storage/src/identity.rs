//! One person, one dialog. WhatsApp may address a customer by phone, by LID
//! (Evolution API) or by business-scoped user id (the Cloud API's BSUID,
//! kept as the contact's LID), and a message naming only one of them cannot
//! tell whose it is: a conversation begun under the LID and continued under
//! the phone (or the other way round) first becomes two dialogs. The first
//! message that names both merges them into one, keyed by the phone.
//!
//! Every message first takes a transaction-scoped advisory lock on each id
//! it names (the LID before the phone, always in that order, so two messages
//! never wait on each other in a cycle): two messages of one person arriving
//! together are recorded one after the other, the second seeing the first's
//! dialog.
//!
//! A merge keeps the dialog whose conversation began first and moves the
//! other's messages, model runs, audit rows, bot replies and deliveries into
//! it; counters add up, flags and levels join, and the click id and ad stay
//! the earlier conversation's when it came from an ad (else the other's).
//! Each level (and purchase) stays delivered at most once: where both
//! dialogs claimed the same one, the more advanced delivery is kept (sent,
//! then in flight, then waiting) and a waiting duplicate is closed with a
//! `skipped`/`merged` audit row before its row goes, so its queued bus
//! message finds nothing to send. The absorbed dialog and its lead are then
//! deleted: the person counts once in every report from then on.

use crate::PreparedExt;
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Bool, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// Locks the contact's ids for the rest of the transaction (the LID first).
pub(crate) async fn lock_contact(
    conn: &mut AsyncPgConnection,
    instance: &str,
    lid: Option<&str>,
    phone: Option<&str>,
) -> Result<(), diesel::result::Error> {
    // SQL: `pg_advisory_xact_lock` on a 64-bit hash of (instance, id); the
    // select list is evaluated left to right, so the LID's lock comes first.
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 28)) \
           FROM (SELECT 1) one WHERE $2::text IS NOT NULL \
         UNION ALL \
         SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $3, 28)) \
           FROM (SELECT 1) one WHERE $3::text IS NOT NULL",
    )
    .bind::<Text, _>(instance)
    .bind::<Nullable<Text>, _>(lid)
    .bind::<Nullable<Text>, _>(phone)
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Known {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    contact_key: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    lead_id: Option<Uuid>,
}

/// What [`unify`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unified {
    /// Nothing to join: no dialog, or one already keyed by the phone.
    Nothing,
    /// The one dialog known by the LID is now keyed by the phone too.
    Rekeyed,
    /// Dialogs merged into one (this many absorbed).
    Merged(usize),
}

/// A message names both the phone and the LID of one contact: every dialog
/// of the instance known by either becomes one, keyed by the phone (so the
/// message's upsert by phone finds it). Call under [`lock_contact`].
pub(crate) async fn unify(
    conn: &mut AsyncPgConnection,
    instance: &str,
    phone: &str,
    lid: &str,
) -> Result<Unified, diesel::result::Error> {
    // SQL: both indexes (the unique key, the LID's) answer the OR; the
    // conversation that began first comes first and is the one kept.
    let known: Vec<Known> = diesel::sql_query(
        "SELECT id, contact_key, lead_id FROM dialog_analysis \
         WHERE instance_name = $1 AND (contact_key = $2 OR contact_key = $3 OR contact_lid = $3) \
         ORDER BY first_message NULLS LAST, created_at, id FOR UPDATE",
    )
    .bind::<Text, _>(instance)
    .bind::<Text, _>(phone)
    .bind::<Text, _>(lid)
    .load(conn)
    .await?;
    let Some((kept, absorbed)) = known.split_first() else {
        return Ok(Unified::Nothing);
    };
    if absorbed.is_empty() && kept.contact_key == phone {
        return Ok(Unified::Nothing);
    }
    for other in absorbed {
        merge(conn, kept, other).await?;
    }
    rekey(conn, instance, kept, phone, lid).await?;
    tracing::info!(
        dialog_id = %kept.id,
        absorbed = ?absorbed.iter().map(|d| d.id).collect::<Vec<_>>(),
        "one person's dialogs joined (LID and phone seen together)"
    );
    Ok(if absorbed.is_empty() {
        Unified::Rekeyed
    } else {
        Unified::Merged(absorbed.len())
    })
}

#[derive(QueryableByName)]
struct Duplicate {
    #[diesel(sql_type = BigInt)]
    id: i64,
    #[diesel(sql_type = Bool)]
    waiting: bool,
}

/// Moves everything of `other` into `kept`, then deletes `other` and its lead.
async fn merge(
    conn: &mut AsyncPgConnection,
    kept: &Known,
    other: &Known,
) -> Result<(), diesel::result::Error> {
    // Deliveries both dialogs claimed (same level and order): the less
    // advanced one goes (a tie: the absorbed dialog's).
    // SQL: a rank per delivery (sent 3, request out or leased 2, waiting 1, closed otherwise 0) compared pairwise.
    let duplicates: Vec<Duplicate> = diesel::sql_query(
        "WITH ranked AS ( \
           SELECT id, dialog_id, event_level, order_ref, \
             CASE WHEN status = 'success' THEN 3 \
                  WHEN status = 'pending' AND (sending_at IS NOT NULL OR lease_until > now()) THEN 2 \
                  WHEN status = 'pending' THEN 1 ELSE 0 END AS rank \
           FROM capi_deliveries WHERE dialog_id IN ($1, $2)) \
         SELECT CASE WHEN k.rank >= o.rank THEN o.id ELSE k.id END AS id, \
                CASE WHEN k.rank >= o.rank THEN o.rank ELSE k.rank END = 1 AS waiting \
         FROM ranked k JOIN ranked o ON o.dialog_id = $2 AND o.event_level = k.event_level AND o.order_ref = k.order_ref \
         WHERE k.dialog_id = $1",
    )
    .bind::<SqlUuid, _>(kept.id)
    .bind::<SqlUuid, _>(other.id)
    .load(conn)
    .await?;
    let gone: Vec<i64> = duplicates.iter().map(|d| d.id).collect();
    let waiting: Vec<i64> = duplicates
        .iter()
        .filter(|d| d.waiting)
        .map(|d| d.id)
        .collect();
    // SQL: the waiting duplicates audited `skipped`/`merged` (on the kept dialog), then every duplicate deleted, in one statement.
    diesel::sql_query(
        "WITH audited AS ( \
           INSERT INTO capi_events_log (dialog_id, direction_id, user_account_id, event_level, event_name, \
                                        event_id, status, attempt, reason) \
           SELECT $3, da.direction_id, ad.user_account_id, cd.event_level, 'merged', cd.event_id, 'skipped', cd.attempts, 'merged' \
           FROM capi_deliveries cd JOIN dialog_analysis da ON da.id = cd.dialog_id \
           LEFT JOIN account_directions ad ON ad.id = da.direction_id \
           WHERE cd.id = ANY($2) RETURNING 1) \
         DELETE FROM capi_deliveries WHERE id = ANY($1)",
    )
    .bind::<Array<BigInt>, _>(&gone)
    .bind::<Array<BigInt>, _>(&waiting)
    .bind::<SqlUuid, _>(kept.id)
    .execute(conn)
    .await?;
    // SQL: one statement moves the rows of four tables (different tables, so
    // no row is touched twice); the bot's replies take sequence numbers below
    // the kept dialog's, so (dialog, seq) stays unique and later bursts go on
    // from the kept dialog's own sequence.
    diesel::sql_query(
        "WITH messages AS (UPDATE dialog_messages SET dialog_id = $1 WHERE dialog_id = $2 RETURNING 1), \
              runs AS (UPDATE qualification_runs SET dialog_id = $1 WHERE dialog_id = $2 RETURNING 1), \
              audit AS (UPDATE capi_events_log SET dialog_id = $1 WHERE dialog_id = $2 RETURNING 1), \
              deliveries AS (UPDATE capi_deliveries SET dialog_id = $1 WHERE dialog_id = $2 RETURNING 1), \
              floor AS (SELECT LEAST(0, min(seq)) AS lo FROM bot_replies WHERE dialog_id = $1), \
              numbered AS (SELECT id, row_number() OVER (ORDER BY seq, id) AS n FROM bot_replies WHERE dialog_id = $2), \
              replies AS (UPDATE bot_replies b SET dialog_id = $1, seq = floor.lo - numbered.n \
                          FROM numbered, floor WHERE b.id = numbered.id RETURNING 1) \
         SELECT (SELECT count(*) FROM messages) + (SELECT count(*) FROM runs) + (SELECT count(*) FROM audit) \
              + (SELECT count(*) FROM deliveries) + (SELECT count(*) FROM replies) AS n",
    )
    .bind::<SqlUuid, _>(kept.id)
    .bind::<SqlUuid, _>(other.id)
    .execute(conn)
    .await?;
    // SQL: the kept dialog's row joins the other's: counters add, times
    // widen, flags and levels join, the ad facts stay the kept (earlier)
    // conversation's when it has them; the model looks at it afresh.
    diesel::sql_query(
        "UPDATE dialog_analysis k SET \
           contact_phone = COALESCE(k.contact_phone, o.contact_phone), \
           contact_lid = COALESCE(k.contact_lid, o.contact_lid), \
           contact_name = COALESCE(k.contact_name, o.contact_name), \
           lead_id = COALESCE(k.lead_id, o.lead_id), \
           incoming_count = k.incoming_count + o.incoming_count, \
           outgoing_count = k.outgoing_count + o.outgoing_count, \
           first_message = LEAST(k.first_message, o.first_message), \
           last_message = GREATEST(k.last_message, o.last_message), \
           ctwa_clid = COALESCE(k.ctwa_clid, o.ctwa_clid), \
           ad_id = COALESCE(k.ad_id, o.ad_id), \
           ad_context = COALESCE(k.ad_context, o.ad_context), \
           from_ad = k.from_ad OR o.from_ad, \
           interest_level = CASE WHEN array_position(ARRAY['cold','warm','hot'], o.interest_level) \
                                    > COALESCE(array_position(ARRAY['cold','warm','hot'], k.interest_level), 0) \
                                 THEN o.interest_level ELSE k.interest_level END, \
           funnel_stage = CASE WHEN array_position(ARRAY['not_interested','first_contact','interested','qualifying','qualified','scheduled'], o.funnel_stage) \
                                  > COALESCE(array_position(ARRAY['not_interested','first_contact','interested','qualifying','qualified','scheduled'], k.funnel_stage), 0) \
                               THEN o.funnel_stage ELSE k.funnel_stage END, \
           qualification_reason = COALESCE(k.qualification_reason, o.qualification_reason), \
           analyzed_message_id = NULL, \
           capi_interest_event_id = CASE WHEN k.capi_interest_sent THEN k.capi_interest_event_id ELSE o.capi_interest_event_id END, \
           capi_interest_sent_at = CASE WHEN k.capi_interest_sent THEN k.capi_interest_sent_at ELSE o.capi_interest_sent_at END, \
           capi_interest_sent = k.capi_interest_sent OR o.capi_interest_sent, \
           capi_qualified_event_id = CASE WHEN k.capi_qualified_sent THEN k.capi_qualified_event_id ELSE o.capi_qualified_event_id END, \
           capi_qualified_sent_at = CASE WHEN k.capi_qualified_sent THEN k.capi_qualified_sent_at ELSE o.capi_qualified_sent_at END, \
           capi_qualified_sent = k.capi_qualified_sent OR o.capi_qualified_sent, \
           capi_scheduled_event_id = CASE WHEN k.capi_scheduled_sent THEN k.capi_scheduled_event_id ELSE o.capi_scheduled_event_id END, \
           capi_scheduled_sent_at = CASE WHEN k.capi_scheduled_sent THEN k.capi_scheduled_sent_at ELSE o.capi_scheduled_sent_at END, \
           capi_scheduled_sent = k.capi_scheduled_sent OR o.capi_scheduled_sent, \
           llm_calls = k.llm_calls + o.llm_calls, \
           llm_prompt_tokens = k.llm_prompt_tokens + o.llm_prompt_tokens, \
           llm_completion_tokens = k.llm_completion_tokens + o.llm_completion_tokens, \
           updated_at = now() \
         FROM dialog_analysis o WHERE k.id = $1 AND o.id = $2",
    )
    .bind::<SqlUuid, _>(kept.id)
    .bind::<SqlUuid, _>(other.id)
    .execute(conn)
    .await?;
    // SQL: the kept lead takes what it lacked from the other's; the other
    // dialog goes, then its lead (unless it is the one the kept dialog now uses).
    diesel::sql_query(
        "WITH joined AS ( \
           UPDATE leads k SET contact_phone = COALESCE(k.contact_phone, o.contact_phone), \
             contact_lid = COALESCE(k.contact_lid, o.contact_lid), name = COALESCE(k.name, o.name), \
             ctwa_clid = COALESCE(k.ctwa_clid, o.ctwa_clid), source_ad_id = COALESCE(k.source_ad_id, o.source_ad_id), \
             updated_at = now() \
           FROM leads o WHERE k.id = $2 AND o.id = $3 AND k.id <> o.id RETURNING 1), \
         gone AS (DELETE FROM dialog_analysis WHERE id = $1 RETURNING 1) \
         DELETE FROM leads WHERE id = $3 AND $2::uuid IS NOT NULL AND id <> $2",
    )
    .bind::<SqlUuid, _>(other.id)
    .bind::<Nullable<SqlUuid>, _>(kept.lead_id)
    .bind::<Nullable<SqlUuid>, _>(other.lead_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The kept dialog (and its lead) keyed by the phone, with the LID kept.
async fn rekey(
    conn: &mut AsyncPgConnection,
    instance: &str,
    kept: &Known,
    phone: &str,
    lid: &str,
) -> Result<(), diesel::result::Error> {
    // SQL: a lead left keyed by the phone with no dialog (its dialog erased
    // or deleted) gives its key up first; then the dialog and its lead are
    // re-keyed in one statement (different tables).
    diesel::sql_query(
        "WITH stray AS ( \
           DELETE FROM leads l WHERE l.instance_name = $1 AND l.contact_key = $3 \
             AND NOT EXISTS (SELECT 1 FROM dialog_analysis d WHERE d.lead_id = l.id) RETURNING 1), \
         dialog AS ( \
           UPDATE dialog_analysis SET contact_key = $3, contact_phone = $3, \
             contact_lid = COALESCE(contact_lid, $4), updated_at = now() \
           WHERE id = $2 RETURNING lead_id) \
         SELECT count(*) FROM stray, dialog",
    )
    .bind::<Text, _>(instance)
    .bind::<SqlUuid, _>(kept.id)
    .bind::<Text, _>(phone)
    .bind::<Text, _>(lid)
    .execute(conn)
    .await?;
    diesel::sql_query(
        "UPDATE leads SET contact_key = $2, contact_phone = $2, contact_lid = COALESCE(contact_lid, $3), \
           updated_at = now() WHERE id = (SELECT lead_id FROM dialog_analysis WHERE id = $1)",
    )
    .bind::<SqlUuid, _>(kept.id)
    .bind::<Text, _>(phone)
    .bind::<Text, _>(lid)
    .execute(conn)
    .await?;
    Ok(())
}
