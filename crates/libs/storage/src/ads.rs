//! The reads behind results per campaign, ad set and ad: the account's new
//! dialogs, accepted events and purchases per ad id (the dialog's), and
//! its spend per ad from the synced insights. Each read counts as the
//! summary's does (`analytics`), so the rows add up to its cards.

use crate::PreparedExt;
use crate::analytics::over_local_days;
use chrono::NaiveDate;
use diesel::{
    QueryableByName,
    sql_types::{Array, BigInt, Date, Int2, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::analytics::Money;
use domain::ids::{DirectionId, UserAccountId};

/// New dialogs of one direction from one ad (`None`: no ad id).
#[derive(Debug, Clone, QueryableByName)]
pub struct DialogsByAd {
    #[diesel(sql_type = SqlUuid)]
    pub direction_id: DirectionId,
    #[diesel(sql_type = Nullable<Text>)]
    pub ad_id: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// `dialogs_by_ad`: $1 account, $2 since, $3 until, $4 time zone.
pub const DIALOGS_BY_AD_SQL: &str = "SELECT ad.id AS direction_id, da.ad_id, count(*) AS n \
         FROM account_directions ad JOIN dialog_analysis da ON da.direction_id = ad.id \
         WHERE ad.user_account_id = $1 \
           AND da.first_message >= ($2::date::timestamp AT TIME ZONE $4) \
           AND da.first_message < (($3::date + 1)::timestamp AT TIME ZONE $4) \
         GROUP BY 1, 2";

/// New dialogs (first message within the local days) per direction and ad,
/// as `analytics::leads_by_direction` counts them.
pub async fn dialogs_by_ad(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
) -> Result<Vec<DialogsByAd>, diesel::result::Error> {
    // SQL: local days (AT TIME ZONE) over dialog_analysis' (direction_id, first_message) index.
    over_local_days(DIALOGS_BY_AD_SQL, account_id, since, until, timezone)
        .load(conn)
        .await
}

/// Accepted events of one level whose dialog came from one ad.
#[derive(Debug, Clone, QueryableByName)]
pub struct EventsByAd {
    #[diesel(sql_type = Nullable<Text>)]
    pub ad_id: Option<String>,
    #[diesel(sql_type = Int2)]
    pub event_level: i16,
    #[diesel(sql_type = BigInt)]
    pub n: i64,
}

/// `events_by_ad`: $1 account, $2 since, $3 until, $4 time zone.
pub const EVENTS_BY_AD_SQL: &str = "SELECT da.ad_id, e.event_level, count(*) AS n \
         FROM (SELECT DISTINCT dialog_id, event_level, event_id FROM capi_events_log \
               WHERE user_account_id = $1 AND status = 'success' \
                 AND created_at >= ($2::date::timestamp AT TIME ZONE $4) \
                 AND created_at < (($3::date + 1)::timestamp AT TIME ZONE $4)) e \
         LEFT JOIN dialog_analysis da ON da.id = e.dialog_id \
         GROUP BY 1, 2";

/// Events Meta accepted in the local days (each event once, as the
/// summary counts them) per ad of their dialog; an event without a dialog
/// (a CRM deal nobody wrote about) counts as without an ad id.
pub async fn events_by_ad(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
) -> Result<Vec<EventsByAd>, diesel::result::Error> {
    // SQL: the audit log's (user_account_id, created_at) index, then each dialog by its key.
    over_local_days(EVENTS_BY_AD_SQL, account_id, since, until, timezone)
        .load(conn)
        .await
}

#[derive(QueryableByName)]
struct RevenueByAd {
    #[diesel(sql_type = Nullable<Text>)]
    ad_id: Option<String>,
    #[diesel(sql_type = Text)]
    currency: String,
    #[diesel(sql_type = BigInt)]
    cents: i64,
}

/// `revenue_by_ad`: $1 account, $2 since, $3 until, $4 time zone.
pub const REVENUE_BY_AD_SQL: &str = "SELECT da.ad_id, cd.purchase_currency AS currency, \
                round(sum(cd.purchase_value) * 100)::bigint AS cents \
         FROM (SELECT DISTINCT dialog_id, event_id FROM capi_events_log \
               WHERE user_account_id = $1 AND status = 'success' AND event_level = 4 \
                 AND created_at >= ($2::date::timestamp AT TIME ZONE $4) \
                 AND created_at < (($3::date + 1)::timestamp AT TIME ZONE $4)) l \
         JOIN capi_deliveries cd ON cd.event_id = l.event_id \
         LEFT JOIN dialog_analysis da ON da.id = l.dialog_id \
         GROUP BY 1, 2";

/// Purchases Meta accepted in the local days, summed per ad and currency;
/// the ad is found as for the events (the logged dialog's), so a row's
/// revenue and purchase count go together.
pub async fn revenue_by_ad(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
    timezone: &str,
) -> Result<Vec<(Option<String>, Money)>, diesel::result::Error> {
    // SQL: as analytics::revenue_by_direction, keyed by the dialog's ad.
    let rows: Vec<RevenueByAd> =
        over_local_days(REVENUE_BY_AD_SQL, account_id, since, until, timezone)
            .load(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.ad_id,
                Money {
                    cents: r.cents,
                    currency: r.currency,
                },
            )
        })
        .collect())
}

/// One ad's (campaign's, for a CSV import) spend over the days, with the
/// names insights last gave; ids are `""` where the row has none.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct AdSpend {
    #[diesel(embed)]
    pub place: AdPlace,
    #[diesel(sql_type = Text)]
    pub currency: String,
    #[diesel(sql_type = BigInt)]
    pub cents: i64,
}

/// `spend_by_ad`: $1 account, $2 since, $3 until.
pub const SPEND_BY_AD_SQL: &str = "SELECT s.campaign_id, max(s.campaign_name) AS campaign_name, \
                s.adset_id, max(s.adset_name) AS adset_name, s.ad_id, max(s.ad_name) AS ad_name, \
                s.currency, (sum(s.spend) * 100)::bigint AS cents \
         FROM ad_accounts a JOIN ad_spend s ON s.ad_account_id = a.id \
         WHERE a.user_account_id = $1 AND s.spend_date BETWEEN $2 AND $3 \
         GROUP BY s.campaign_id, s.adset_id, s.ad_id, s.currency";

/// Spend per ad of the account's ad accounts over the days (the ad
/// accounts' own days, as `analytics::spend_by_ad_account`).
pub async fn spend_by_ad(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    since: NaiveDate,
    until: NaiveDate,
) -> Result<Vec<AdSpend>, diesel::result::Error> {
    // SQL: NUMERIC summed into integer cents in the database.
    diesel::sql_query(SPEND_BY_AD_SQL)
        .bind::<diesel::sql_types::Uuid, _>(account_id)
        .bind::<Date, _>(since)
        .bind::<Date, _>(until)
        .prepared()
        .load(conn)
        .await
}

/// Where an ad sits (ids `""` below the level a row was broken down to),
/// with the names insights gave.
#[derive(Debug, Clone, PartialEq, QueryableByName)]
pub struct AdPlace {
    #[diesel(sql_type = Text)]
    pub ad_id: String,
    #[diesel(sql_type = Text)]
    pub campaign_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub campaign_name: Option<String>,
    #[diesel(sql_type = Text)]
    pub adset_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub adset_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub ad_name: Option<String>,
}

/// The campaign and ad set of each of `ad_ids` that the account's synced
/// insights know (on any day); ads they never named are left out.
pub async fn ad_places(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    ad_ids: &[String],
) -> Result<Vec<AdPlace>, diesel::result::Error> {
    if ad_ids.is_empty() {
        return Ok(Vec::new());
    }
    // SQL: the newest row per ad on the partial (ad_id, spend_date) index.
    diesel::sql_query(
        "SELECT DISTINCT ON (s.ad_id) s.ad_id, s.campaign_id, s.campaign_name, s.adset_id, \
                s.adset_name, s.ad_name \
         FROM ad_spend s JOIN ad_accounts a ON a.id = s.ad_account_id \
         WHERE a.user_account_id = $1 AND s.ad_id = ANY($2) \
         ORDER BY s.ad_id, s.spend_date DESC",
    )
    .bind::<SqlUuid, _>(account_id)
    .bind::<Array<Text>, _>(ad_ids)
    .prepared()
    .load(conn)
    .await
}
