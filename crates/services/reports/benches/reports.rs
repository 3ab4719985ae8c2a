//! `scripts/bench-reports`' measuring side (run by the script on a seeded
//! database, with the reports service already up):
//!
//!   reports-bench generate DAYS_AGO     — each account's report of that local
//!                                         day, timed one by one: p50/p99
//!   reports-bench api URL N [PATH]      — N calls of PATH (default
//!                                         /analytics/capi-stats; 30-day
//!                                         range) over 100 accounts: p50/p99
//!   reports-bench export URL            — the "Bulk" account's leads CSV
//!                                         (30 days): time, rows, bytes
//!   reports-bench explain               — EXPLAIN (ANALYZE, BUFFERS) of the
//!                                         report's and the API's queries
//!
//! The database comes from CAPI_DATABASE__URL.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a benchmark tool: a failure ends the run

use diesel::{
    QueryableByName,
    sql_types::{Date, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(QueryableByName)]
struct Account {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    timezone: String,
}

#[derive(QueryableByName)]
struct PlanLine {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn summary(what: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "{what}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );
}

async fn accounts(conn: &mut AsyncPgConnection) -> Vec<Account> {
    // The export's "Bulk" account is not one of the 1,000 measured.
    diesel::sql_query("SELECT id, timezone FROM user_accounts WHERE name <> 'Bulk' ORDER BY id")
        .load(conn)
        .await
        .unwrap()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let url = std::env::var("CAPI_DATABASE__URL").expect("CAPI_DATABASE__URL");
    let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
    match <[String]>::first(&args).map(String::as_str) {
        Some("generate") => {
            let days_ago: i64 = args.get(1).and_then(|d| d.parse().ok()).unwrap_or(3);
            let mut times = Vec::new();
            for a in accounts(&mut conn).await {
                let account = storage::reports::account(&mut conn, a.id.into())
                    .await
                    .unwrap()
                    .unwrap();
                let today = storage::reports::local_today(&mut conn, &a.timezone)
                    .await
                    .unwrap();
                let day = today - chrono::Duration::days(days_ago);
                let started = Instant::now();
                storage::reports::generate(&mut conn, &account, day, true)
                    .await
                    .unwrap();
                times.push(started.elapsed());
            }
            summary("daily report, one account (count + render + store)", times);
        }
        Some("api") => {
            let base = args.get(1).expect("URL");
            let n: usize = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(1000);
            let path = args.get(3).map_or("/analytics/capi-stats", String::as_str);
            let joiner = if path.contains('?') { '&' } else { '?' };
            let all = accounts(&mut conn).await;
            let mut keys = Vec::new();
            for a in all.iter().take(100) {
                let key = domain::api_key::generate();
                storage::api_keys::create(
                    &mut conn,
                    a.id.into(),
                    "bench",
                    &domain::api_key::hash(&key),
                    "capi_bench",
                )
                .await
                .unwrap();
                keys.push((a.id, key));
            }
            let http = reqwest::Client::new();
            let mut times = Vec::new();
            for i in 0..n + 20 {
                let (id, key) = &keys[(i * 37) % keys.len()];
                let started = Instant::now();
                let resp = http
                    .get(format!("{base}{path}{joiner}user_account_id={id}"))
                    .bearer_auth(key)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), 200);
                let body: serde_json::Value = resp.json().await.unwrap();
                assert!(body["lead"].as_i64().is_some() || body["rows"].is_array());
                if i >= 20 {
                    times.push(started.elapsed()); // the first 20 warm the pools
                }
            }
            summary(&format!("GET {path} (30 days), sequential"), times);
        }
        Some("export") => {
            let base = args.get(1).expect("URL");
            let bulk: Uuid = diesel::sql_query("SELECT md5('bulk')::uuid AS id, 'UTC' AS timezone")
                .get_result::<Account>(&mut conn)
                .await
                .unwrap()
                .id;
            let key = domain::api_key::generate();
            storage::api_keys::create(
                &mut conn,
                bulk.into(),
                "bench",
                &domain::api_key::hash(&key),
                "capi_bench",
            )
            .await
            .unwrap();
            let started = Instant::now();
            let mut resp = reqwest::Client::new()
                .get(format!("{base}/api/capi-events.csv?user_account_id={bulk}"))
                .bearer_auth(&key)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let first_byte = started.elapsed();
            let (mut bytes, mut lines) = (0usize, 0usize);
            while let Some(chunk) = resp.chunk().await.unwrap() {
                bytes += chunk.len();
                lines += chunk.iter().filter(|b| **b == b'\n').count();
            }
            println!(
                "GET /api/capi-events.csv, one account's 30 days: {} rows, {:.1} MB in {:.2} s (first byte after {:.0} ms)",
                lines - 1,
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64(),
                first_byte.as_secs_f64() * 1000.0
            );
        }
        Some("explain") => {
            let a = accounts(&mut conn).await.into_iter().nth(1).unwrap();
            let today = storage::reports::local_today(&mut conn, &a.timezone)
                .await
                .unwrap();
            let day = today - chrono::Duration::days(1);
            let since = today - chrono::Duration::days(29);
            for (name, sql, range) in [
                (
                    "report: dialogs and messages of the day (day_groups)",
                    storage::reports::DAY_GROUPS_SQL,
                    false,
                ),
                (
                    "report: CAPI events of the day (day_capi)",
                    storage::reports::DAY_CAPI_SQL,
                    false,
                ),
                (
                    "capi-stats: events per day (events_by_day)",
                    storage::analytics::EVENTS_BY_DAY_SQL,
                    true,
                ),
                (
                    "capi-stats: leads per direction (leads_by_direction)",
                    storage::analytics::LEADS_BY_DIRECTION_SQL,
                    true,
                ),
                (
                    "ads: dialogs per direction and ad (dialogs_by_ad)",
                    storage::ads::DIALOGS_BY_AD_SQL,
                    true,
                ),
                (
                    "ads: events per ad (events_by_ad)",
                    storage::ads::EVENTS_BY_AD_SQL,
                    true,
                ),
            ] {
                let q = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}");
                let lines: Vec<PlanLine> = if range {
                    diesel::sql_query(q)
                        .bind::<SqlUuid, _>(a.id)
                        .bind::<Date, _>(since)
                        .bind::<Date, _>(today)
                        .bind::<Text, _>(&a.timezone)
                        .load(&mut conn)
                        .await
                        .unwrap()
                } else {
                    diesel::sql_query(q)
                        .bind::<SqlUuid, _>(a.id)
                        .bind::<Date, _>(day)
                        .bind::<Text, _>(&a.timezone)
                        .load(&mut conn)
                        .await
                        .unwrap()
                };
                println!("-- {name}");
                for l in lines {
                    println!("{}", l.line);
                }
                println!();
            }
        }
        _ => eprintln!(
            "usage: reports-bench generate DAYS_AGO | api URL N [PATH] | export URL | explain"
        ),
    }
}
