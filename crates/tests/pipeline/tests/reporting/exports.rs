//! CSV exports against real PostgreSQL: each export parses back into the
//! same rows as its JSON twin, in the account language's dialect, with a
//! byte-order mark; a spreadsheet formula in a name stays text; an export
//! of more leads than one batch streams every lead once.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::reports_api::key_for;
use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{ReportsService, SandboxServer, TestEnv, report_day as day, reports_settings};
use serde_json::Value;

async fn fetch(service: &ReportsService, path: &str, key: &str) -> (u16, String, String, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(service.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (status, kind, disposition) = (
        resp.status().as_u16(),
        header("content-type"),
        header("content-disposition"),
    );
    (
        status,
        kind,
        disposition,
        resp.bytes().await.unwrap().to_vec(),
    )
}

/// The rows after the header, split by `delimiter`, once the BOM is checked.
fn parse(body: &[u8], delimiter: u8) -> (Vec<String>, Vec<Vec<String>>) {
    let text = body
        .strip_prefix(b"\xEF\xBB\xBF")
        .expect("a byte-order mark first");
    let mut r = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_reader(text);
    let header = r.headers().unwrap().iter().map(str::to_owned).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

async fn get_json(service: &ReportsService, path: &str, key: &str) -> Value {
    reqwest::Client::new()
        .get(service.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_parse_back_into_the_json_rows_in_the_accounts_dialect() {
    let env = TestEnv::new().await;
    let f = day::seed_day(&env, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()).await;
    env.conn()
        .await
        .batch_execute(&format!(
            "UPDATE dialog_analysis SET contact_name = '=HYPERLINK(\"http://evil\")' WHERE lead_id = '{l}';
             UPDATE dialog_analysis SET ad_id = '901' WHERE lead_id = '{l}';
             INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, campaign_name, ad_id, ad_name, spend, currency)
               VALUES ('{a}', '2026-11-20', 'c1', 'Spring; \"big\"', '901', 'Ad A', 30.50, 'USD');",
            l = f.leads[0],
            a = f.ad_account
        ))
        .await
        .unwrap();
    let (_, key) = key_for(&env, f.account).await;
    let sandbox = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    let range = format!(
        "user_account_id={}&since=2026-11-19&until=2026-11-21",
        f.account
    );

    // Russian: `;` and a decimal comma.
    let (status, kind, disposition, body) = fetch(
        &service,
        &format!("/analytics/ads.csv?{range}&group=campaign"),
        &key,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(kind, "text/csv; charset=utf-8");
    assert_eq!(
        disposition,
        "attachment; filename=\"ads-campaign-2026-11-19-2026-11-21.csv\""
    );
    let (header, rows) = parse(&body, b';');
    assert_eq!(
        header[..6],
        ["kind", "id", "name", "campaign", "adset", "dialogs"]
    );
    let json = get_json(
        &service,
        &format!("/analytics/ads?{range}&group=campaign"),
        &key,
    )
    .await;
    let json_rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), json_rows.len() + 1, "the rows and a total");
    for (csv_row, j) in rows.iter().zip(json_rows) {
        assert_eq!(csv_row[0], j["kind"].as_str().unwrap());
        assert_eq!(csv_row[1], j["id"].as_str().unwrap_or(""));
        assert_eq!(csv_row[5], j["leads"].to_string());
        assert_eq!(csv_row[6], j["lead"].to_string());
        let spend = j["spend"]["amount"]
            .as_f64()
            .map(|x| format!("{x:.2}").replace('.', ","));
        assert_eq!(csv_row[11], spend.unwrap_or_default());
    }
    assert_eq!(rows[0][2], "Spring; \"big\"", "quoted, not split");
    assert_eq!(rows[0][11], "30,50");
    let total = rows.last().unwrap();
    assert_eq!(
        (total[0].as_str(), total[5].as_str()),
        ("total", json["totals"]["leads"].to_string().as_str())
    );

    let (status, _, disposition, body) =
        fetch(&service, &format!("/api/capi-events.csv?{range}"), &key).await;
    assert_eq!(status, 200);
    assert_eq!(
        disposition,
        "attachment; filename=\"leads-2026-11-19-2026-11-21.csv\""
    );
    let (header, rows) = parse(&body, b';');
    assert_eq!(header.len(), 15);
    let page = get_json(
        &service,
        &format!("/api/capi-events?{range}&per_page=200"),
        &key,
    )
    .await;
    let mut from_json: Vec<(String, String)> = page["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["lead_id"].as_str().unwrap().to_owned(),
                l["interest"]["event_id"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let mut from_csv: Vec<(String, String)> =
        rows.iter().map(|r| (r[0].clone(), r[7].clone())).collect();
    from_json.sort();
    from_csv.sort();
    assert_eq!(from_csv, from_json);
    assert_eq!(from_csv.len(), page["total"].as_u64().unwrap() as usize);
    let evil = rows
        .iter()
        .find(|r| r[0] == f.leads[0].to_string())
        .unwrap();
    assert_eq!(
        evil[2], "'=HYPERLINK(\"http://evil\")",
        "a formula stays text"
    );

    // English: `,` and a decimal point.
    env.conn()
        .await
        .batch_execute(&format!(
            "UPDATE user_accounts SET report_language = 'en' WHERE id = '{}'",
            f.account
        ))
        .await
        .unwrap();
    let (_, _, _, body) = fetch(
        &service,
        &format!("/analytics/ads.csv?{range}&group=campaign"),
        &key,
    )
    .await;
    let (header, rows) = parse(&body, b',');
    assert_eq!(header.len(), 18);
    assert_eq!(rows[0][11], "30.50");

    // Bad parameters are refused before anything streams.
    let (status, kind, _, _) = fetch(
        &service,
        &format!("/api/capi-events.csv?{range}&until=2026-11-01"),
        &key,
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "application/json"));
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leads_export_longer_than_a_batch_has_every_lead_once() {
    let env = TestEnv::new().await;
    let f = day::seed_day(&env, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()).await;
    // 2,500 more dialogs, several in the same second (the keyset's tie-break).
    env.conn()
        .await
        .batch_execute(&format!(
            "WITH l AS (
               INSERT INTO leads (instance_name, contact_key, name)
               SELECT 'inst-a-{a}', 'bulk-' || i, 'Bulk ' || i FROM generate_series(1, 2500) i RETURNING id, contact_key)
             INSERT INTO dialog_analysis (instance_name, contact_key, lead_id, first_message)
             SELECT 'inst-a-{a}', contact_key, id,
                    timestamptz '2026-11-20 06:00:00+00' + (split_part(contact_key, '-', 2)::int / 3) * interval '1 second'
             FROM l;",
            a = f.account
        ))
        .await
        .unwrap();
    let (_, key) = key_for(&env, f.account).await;
    let sandbox = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    let range = format!(
        "user_account_id={}&since=2026-11-19&until=2026-11-21",
        f.account
    );
    let (status, _, _, body) =
        fetch(&service, &format!("/api/capi-events.csv?{range}"), &key).await;
    assert_eq!(status, 200);
    let (_, rows) = parse(&body, b';');
    let total = get_json(
        &service,
        &format!("/api/capi-events?{range}&per_page=1"),
        &key,
    )
    .await["total"]
        .as_u64()
        .unwrap() as usize;
    assert!(total > 2500, "{total}");
    let ids: std::collections::BTreeSet<&String> = rows.iter().map(|r| &r[0]).collect();
    assert_eq!((rows.len(), ids.len()), (total, total), "every lead once");
    let times: Vec<&String> = rows.iter().map(|r| &r[4]).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");
    service.stop().await;
}
