//! Ad spend per ad account, ad and day: written by the daily sync from
//! Meta's insights at ad level (one sync per ad account and day, whichever
//! replica claims it) and, per campaign, by `capi spend import`.

use crate::{
    PreparedExt,
    schema::{ad_accounts, ad_spend_syncs, user_accounts},
};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::{
    ExpressionMethods, JoinOnDsl, OptionalExtension, QueryDsl, QueryableByName,
    sql_types::{Array, Date, Int4, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::analytics::{SpendSource, SyncStatus};
use uuid::Uuid;

/// One ad's (or, from a CSV import, one campaign's) spend on one day;
/// `spend` a decimal string ("12.30"). Ids are `""` where the row is not
/// broken down that far.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpendRow {
    pub date: NaiveDate,
    pub campaign_id: String,
    pub campaign_name: Option<String>,
    pub adset_id: String,
    pub adset_name: Option<String>,
    pub ad_id: String,
    pub ad_name: Option<String>,
    pub spend: String,
    pub currency: String,
}

/// Inserts or replaces the rows (the latest figure for an ad and day wins:
/// Meta revises recent days). Synced rows (`SpendSource::Api`) also drop
/// the synced rows without an ad of the same days, which an earlier
/// campaign-level sync wrote, so a day is never counted twice; both in one
/// transaction. A malformed amount fails the whole batch.
pub async fn upsert(
    conn: &mut AsyncPgConnection,
    ad_account_id: Uuid,
    rows: &[SpendRow],
    source: SpendSource,
) -> Result<usize, diesel::result::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    conn.transaction(async |conn| {
        if source == SpendSource::Api {
            drop_unbroken_synced_days(conn, ad_account_id, rows).await?;
        }
        insert_rows(conn, ad_account_id, rows, source).await
    })
    .await
}

async fn drop_unbroken_synced_days(
    conn: &mut AsyncPgConnection,
    ad_account_id: Uuid,
    rows: &[SpendRow],
) -> Result<usize, diesel::result::Error> {
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.date).collect();
    diesel::sql_query(
        "DELETE FROM ad_spend WHERE ad_account_id = $1 AND source = 'api' AND ad_id = '' \
             AND spend_date = ANY($2::date[])",
    )
    .bind::<SqlUuid, _>(ad_account_id)
    .bind::<Array<Date>, _>(dates)
    .execute(conn)
    .await
}

async fn insert_rows(
    conn: &mut AsyncPgConnection,
    ad_account_id: Uuid,
    rows: &[SpendRow],
    source: SpendSource,
) -> Result<usize, diesel::result::Error> {
    let dates: Vec<NaiveDate> = rows.iter().map(|r| r.date).collect();
    let text = |f: fn(&SpendRow) -> &str| rows.iter().map(f).collect::<Vec<&str>>();
    let name = |f: fn(&SpendRow) -> Option<&str>| rows.iter().map(f).collect::<Vec<Option<&str>>>();
    // SQL: one statement for the whole batch (unnest of arrays); the amounts
    // travel as text and PostgreSQL parses them as NUMERIC(14,2).
    diesel::sql_query(
        "INSERT INTO ad_spend AS s (ad_account_id, spend_date, campaign_id, campaign_name, \
           adset_id, adset_name, ad_id, ad_name, spend, currency, source) \
         SELECT $1, d, c, cn, st, sn, a, an, amount::numeric(14, 2), cur, $11 \
         FROM unnest($2::date[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::text[], $9::text[], $10::text[]) AS t(d, c, cn, st, sn, a, an, amount, cur) \
         ON CONFLICT (ad_account_id, spend_date, campaign_id, adset_id, ad_id) DO UPDATE SET \
           spend = EXCLUDED.spend, currency = EXCLUDED.currency, \
           campaign_name = coalesce(EXCLUDED.campaign_name, s.campaign_name), \
           adset_name = coalesce(EXCLUDED.adset_name, s.adset_name), \
           ad_name = coalesce(EXCLUDED.ad_name, s.ad_name), \
           source = EXCLUDED.source, synced_at = now()",
    )
    .bind::<SqlUuid, _>(ad_account_id)
    .bind::<Array<Date>, _>(dates)
    .bind::<Array<Text>, _>(text(|r| &r.campaign_id))
    .bind::<Array<diesel::sql_types::Nullable<Text>>, _>(name(|r| r.campaign_name.as_deref()))
    .bind::<Array<Text>, _>(text(|r| &r.adset_id))
    .bind::<Array<diesel::sql_types::Nullable<Text>>, _>(name(|r| r.adset_name.as_deref()))
    .bind::<Array<Text>, _>(text(|r| &r.ad_id))
    .bind::<Array<diesel::sql_types::Nullable<Text>>, _>(name(|r| r.ad_name.as_deref()))
    .bind::<Array<Text>, _>(text(|r| &r.spend))
    .bind::<Array<Text>, _>(text(|r| &r.currency))
    .bind::<Text, _>(source)
    .prepared()
    .execute(conn)
    .await
}

/// A sync this process holds the lease for. No `Debug`: it carries the token.
#[derive(Clone)]
pub struct SyncJob {
    pub ad_account_id: Uuid,
    pub sync_date: NaiveDate,
    pub attempts: i32,
    pub meta_ad_account_id: String,
    /// The ad account's token, else the user account's.
    pub access_token: secrecy::SecretString,
}

#[derive(QueryableByName)]
struct Claimed {
    #[diesel(sql_type = SqlUuid)]
    ad_account_id: Uuid,
    #[diesel(sql_type = Date)]
    sync_date: NaiveDate,
    #[diesel(sql_type = Int4)]
    attempts: i32,
}

/// Takes today's (UTC) sync of one ad account that has none done, running
/// or waiting; `None` when there is nothing to do.
pub async fn claim_sync(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    lease_secs: i32,
) -> Result<Option<SyncJob>, diesel::result::Error> {
    // SQL: the claim is the (ad_account_id, sync_date) key: a new row, or a
    // pending one whose lease and back-off have run out (ON CONFLICT … WHERE).
    let claimed: Option<Claimed> = diesel::sql_query(
        "WITH cand AS ( \
           SELECT a.id FROM ad_accounts a JOIN user_accounts u ON u.id = a.user_account_id \
           WHERE a.meta_ad_account_id IS NOT NULL AND coalesce(a.access_token, u.access_token) IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM ad_spend_syncs s WHERE s.ad_account_id = a.id \
                 AND s.sync_date = (now() AT TIME ZONE 'UTC')::date \
                 AND (s.status <> 'pending' OR s.lease_until > now() OR s.next_at > now())) \
           ORDER BY a.id LIMIT 1) \
         INSERT INTO ad_spend_syncs AS s (ad_account_id, sync_date, lease_until) \
         SELECT id, (now() AT TIME ZONE 'UTC')::date, now() + make_interval(secs => $1) FROM cand \
         ON CONFLICT (ad_account_id, sync_date) DO UPDATE SET attempts = s.attempts + 1, \
           lease_until = EXCLUDED.lease_until, updated_at = now() \
         WHERE s.status = 'pending' AND (s.lease_until IS NULL OR s.lease_until < now()) \
           AND (s.next_at IS NULL OR s.next_at <= now()) \
         RETURNING s.ad_account_id, s.sync_date, s.attempts",
    )
    .bind::<Int4, _>(lease_secs)
    .prepared()
    .get_result(conn)
    .await
    .optional()?;
    let Some(c) = claimed else {
        return Ok(None);
    };
    let (meta_id, token): (Option<String>, Option<String>) = ad_accounts::table
        .inner_join(user_accounts::table.on(user_accounts::id.eq(ad_accounts::user_account_id)))
        .filter(ad_accounts::id.eq(c.ad_account_id))
        .select((
            ad_accounts::meta_ad_account_id,
            diesel::dsl::sql::<diesel::sql_types::Nullable<Text>>(
                "coalesce(ad_accounts.access_token, user_accounts.access_token)",
            ),
        ))
        .first(conn)
        .await?;
    let token = keys.open(crate::secrets::AD_ACCESS_TOKEN, token.as_deref())?;
    Ok(match (meta_id, token) {
        (Some(meta_ad_account_id), Some(access_token)) => Some(SyncJob {
            ad_account_id: c.ad_account_id,
            sync_date: c.sync_date,
            attempts: c.attempts,
            meta_ad_account_id,
            access_token,
        }),
        _ => None,
    })
}

/// Ends a sync: done with `rows` written, or given back to be retried at
/// `retry_at` (`None`: failed for the day).
pub async fn finish_sync(
    conn: &mut AsyncPgConnection,
    job: &SyncJob,
    outcome: Result<i32, (&str, Option<DateTime<Utc>>)>,
) -> Result<(), diesel::result::Error> {
    use ad_spend_syncs::dsl as s;
    let target = s::ad_spend_syncs
        .filter(s::ad_account_id.eq(job.ad_account_id))
        .filter(s::sync_date.eq(job.sync_date));
    match outcome {
        Ok(rows) => {
            diesel::update(target)
                .set((
                    s::status.eq(SyncStatus::Done),
                    s::rows_synced.eq(rows),
                    s::error.eq(None::<String>),
                    s::lease_until.eq(None::<DateTime<Utc>>),
                    s::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?
        }
        Err((error, retry_at)) => {
            diesel::update(target)
                .set((
                    s::status.eq(if retry_at.is_some() {
                        SyncStatus::Pending
                    } else {
                        SyncStatus::Failed
                    }),
                    s::next_at.eq(retry_at),
                    s::error.eq(error),
                    s::lease_until.eq(None::<DateTime<Utc>>),
                    s::updated_at.eq(diesel::dsl::now),
                ))
                .execute(conn)
                .await?
        }
    };
    Ok(())
}

/// Whether the ad account exists (`capi spend import` checks before reading the file).
pub async fn ad_account_exists(
    conn: &mut AsyncPgConnection,
    id: Uuid,
) -> Result<bool, diesel::result::Error> {
    let found: Option<Uuid> = ad_accounts::table
        .filter(ad_accounts::id.eq(id))
        .select(ad_accounts::id)
        .first(conn)
        .await
        .optional()?;
    Ok(found.is_some())
}
