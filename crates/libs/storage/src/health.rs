//! What each direction's CAPI health is judged from (`domain::health`):
//! the audit log's last acceptance, refusals and skips, the usual gap
//! between acceptances, events still waiting, and ad dialogs without a
//! click id. Read by `capi doctor` and the dashboard alike.

use crate::doctor::Scope;
use chrono::{DateTime, Utc};
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Bool, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::health::{Facts, LastRefusal};
use domain::ids::{DirectionId, UserAccountId};

/// One direction and its facts.
#[derive(Debug, Clone)]
pub struct DirectionFacts {
    pub direction_id: DirectionId,
    pub user_account_id: UserAccountId,
    pub name: String,
    pub facts: Facts,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    id: DirectionId,
    #[diesel(sql_type = SqlUuid)]
    user_account_id: UserAccountId,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    capi_enabled: bool,
    #[diesel(sql_type = Nullable<Text>)]
    test_event_code: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_accepted_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    last_test_accepted_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<BigInt>)]
    usual_gap_secs: Option<i64>,
    #[diesel(sql_type = BigInt)]
    accepted_24h: i64,
    #[diesel(sql_type = BigInt)]
    refused_24h: i64,
    #[diesel(sql_type = Jsonb)]
    skipped_24h: serde_json::Value,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    refusal_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    refusal_message: Option<String>,
    #[diesel(sql_type = Nullable<BigInt>)]
    refusal_code: Option<i64>,
    #[diesel(sql_type = BigInt)]
    waiting: i64,
    #[diesel(sql_type = BigInt)]
    ad_dialogs_7d: i64,
    #[diesel(sql_type = BigInt)]
    without_click_id_7d: i64,
}

/// Every direction in the scope (CAPI on or off), by name.
pub async fn direction_facts(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> Result<Vec<DirectionFacts>, diesel::result::Error> {
    // SQL: one LATERAL probe per direction on the audit log's
    // (direction_id, created_at) indexes: the newest acceptance and refusal,
    // the last 24 h's counts, and the 90th-percentile gap between the
    // minutes with acceptances over 14 days (a batch's events share a
    // minute, so their zero gaps do not count); an optional scope ($1/$2).
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT d.id, d.user_account_id, d.name, d.capi_enabled, nullif(d.test_event_code, '') AS test_event_code, \
           (SELECT l.created_at FROM capi_events_log l WHERE l.direction_id = d.id AND l.status = 'success' \
            ORDER BY l.created_at DESC LIMIT 1) AS last_accepted_at, \
           (SELECT max(l.created_at) FROM capi_events_log l WHERE l.direction_id = d.id AND l.status = 'success' \
              AND l.created_at > now() - interval '30 days' AND l.request ? 'test_event_code') AS last_test_accepted_at, \
           (SELECT round(percentile_cont(0.9) WITHIN GROUP (ORDER BY g.gap))::bigint FROM ( \
              SELECT extract(epoch FROM m - lag(m) OVER (ORDER BY m)) AS gap FROM ( \
                SELECT DISTINCT date_trunc('minute', l.created_at) AS m FROM capi_events_log l \
                WHERE l.direction_id = d.id AND l.status = 'success' AND l.created_at > now() - interval '14 days') ms) g \
            WHERE g.gap IS NOT NULL HAVING count(*) >= 2) AS usual_gap_secs, \
           c.accepted AS accepted_24h, c.refused AS refused_24h, \
           (SELECT coalesce(jsonb_object_agg(s.reason, s.n), '{}'::jsonb) FROM ( \
              SELECT coalesce(l.reason, 'unknown') AS reason, count(*) AS n FROM capi_events_log l \
              WHERE l.direction_id = d.id AND l.status = 'skipped' AND l.created_at > now() - interval '24 hours' \
              GROUP BY 1) s) AS skipped_24h, \
           r.created_at AS refusal_at, r.error_message AS refusal_message, \
           CASE WHEN r.code ~ '^-?[0-9]{1,18}$' THEN r.code::bigint END AS refusal_code, \
           (SELECT count(*) FROM capi_deliveries cd JOIN dialog_analysis da ON da.id = cd.dialog_id \
            WHERE da.direction_id = d.id AND cd.status = 'pending') AS waiting, \
           k.ad_dialogs AS ad_dialogs_7d, k.without AS without_click_id_7d \
         FROM account_directions d \
         CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE l.status = 'success') AS accepted, \
                                    count(*) FILTER (WHERE l.status = 'error') AS refused \
                             FROM capi_events_log l \
                             WHERE l.direction_id = d.id AND l.created_at > now() - interval '24 hours') c \
         LEFT JOIN LATERAL (SELECT l.created_at, coalesce(l.error_message, 'no message') AS error_message, \
                                   l.response #>> '{error,code}' AS code \
                            FROM capi_events_log l WHERE l.direction_id = d.id AND l.status = 'error' \
                            ORDER BY l.created_at DESC LIMIT 1) r ON true \
         CROSS JOIN LATERAL (SELECT count(*) AS ad_dialogs, count(*) FILTER (WHERE da.ctwa_clid IS NULL) AS without \
                             FROM dialog_analysis da WHERE da.direction_id = d.id AND da.from_ad \
                               AND da.first_message > now() - interval '7 days') k \
         WHERE ($1::uuid IS NULL OR d.user_account_id = $1) AND ($2::uuid IS NULL OR d.id = $2) \
         ORDER BY d.name, d.id",
    )
    .bind::<Nullable<SqlUuid>, _>(scope.user_account)
    .bind::<Nullable<SqlUuid>, _>(scope.direction)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(DirectionFacts::from).collect())
}

impl From<Row> for DirectionFacts {
    fn from(r: Row) -> DirectionFacts {
        let skipped_24h = r
            .skipped_24h
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_i64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let last_refusal = r.refusal_at.map(|at| LastRefusal {
            at,
            message: r.refusal_message.unwrap_or_default(),
            code: r.refusal_code,
        });
        DirectionFacts {
            direction_id: r.id,
            user_account_id: r.user_account_id,
            name: r.name,
            facts: Facts {
                capi_enabled: r.capi_enabled,
                test_event_code: r.test_event_code,
                last_accepted_at: r.last_accepted_at,
                last_test_accepted_at: r.last_test_accepted_at,
                usual_gap_secs: r.usual_gap_secs,
                accepted_24h: r.accepted_24h,
                refused_24h: r.refused_24h,
                skipped_24h,
                last_refusal,
                waiting: r.waiting,
                ad_dialogs_7d: r.ad_dialogs_7d,
                without_click_id_7d: r.without_click_id_7d,
            },
        }
    }
}
