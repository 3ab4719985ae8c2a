//! The dashboard in a real browser: headless Chromium from Debian's
//! packages (`chromium`, `chromium-driver`; `scripts/test` installs them)
//! driven over WebDriver. The 12 cards (with purchases, revenue and ROAS) show the API's numbers, the CAPI
//! section is hidden for an account without CAPI, the lead view shows its
//! three columns, the session cookie is HttpOnly. Screenshots go to
//! `target/dashboard*.png` for a reviewer.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{
    ReportsService, SandboxServer, TestEnv, report_day, reports_settings, webdriver::Browser,
};
use serde_json::Value;
use std::path::PathBuf;

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target"))
}

fn link(service: &ReportsService, account: uuid::Uuid) -> String {
    let (url, _) = reports_settings("http://unused")
        .dashboard_link(account.into(), 0, domain::api_key::Role::Viewer)
        .unwrap();
    url.replace("http://127.0.0.1", &service.url(""))
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "—".to_owned(), |p| format!("{p:.1}%"))
}

fn money(v: &Value, currency: &str) -> String {
    v.as_f64()
        .map_or_else(|| "—".to_owned(), |x| format!("{x:.2} {currency}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_apis_numbers_in_a_real_browser() {
    let env = TestEnv::new().await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    let f = report_day::seed_day(&env, day).await;
    let plain = report_day::seed_day(&env, day).await;
    env.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, campaign_name, ad_id, ad_name, spend, currency)
               VALUES ('{a}', '2026-11-20', 'c1', 'Spring', '901', 'Ad A', 30.00, 'USD'),
                      ('{a}', '2026-11-21', 'c1', 'Spring', '902', 'Ad B', 15.00, 'USD');
             UPDATE dialog_analysis SET ad_id = '901' WHERE lead_id = '{l}';
             UPDATE dialog_analysis SET capi_interest_sent = true, capi_interest_event_id = 'e1',
               capi_interest_sent_at = '2026-11-20T05:02:00Z', capi_qualified_sent = true,
               capi_qualified_event_id = 'e4', capi_qualified_sent_at = '2026-11-20T07:00:00Z' WHERE lead_id = '{l}';
             UPDATE account_directions SET capi_enabled = false WHERE user_account_id = '{p}';
             INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, status, finished_at,
                                          order_ref, purchase_value, purchase_currency)
               SELECT dialog_analysis.id, 4, e.id, '2026-11-20T08:00:00Z', 'success', '2026-11-20T08:00:05Z', e.ref, e.v, e.c
               FROM dialog_analysis, (VALUES ('p1', 'INV-1', 60.00, 'USD'), ('p2', 'INV-2', 30.50, 'USD'),
                                             ('p3', 'INV-3', 100, 'EUR')) AS e(id, ref, v, c)
               WHERE lead_id = '{l}';
             INSERT INTO capi_events_log (dialog_id, direction_id, user_account_id, event_level, event_name, event_id, status, created_at)
               SELECT dialog_analysis.id, '{d}', '{u}', 4, 'Purchase', e.id, 'success', e.at::timestamptz
               FROM dialog_analysis, (VALUES ('p1', '2026-11-20T08:00:05Z'), ('p1', '2026-11-20T08:00:06Z'),
                                             ('p2', '2026-11-20T09:00:00Z'), ('p3', '2026-11-21T09:00:00Z')) AS e(id, at)
               WHERE lead_id = '{l}';
             INSERT INTO capi_events_log (direction_id, user_account_id, event_level, event_name, event_id, status,
                                          response, error_message, created_at)
               VALUES ('{d}', '{u}', 1, 'Lead', 'refused-1', 'error',
                       '{{\"error\": {{\"message\": \"Error validating access token: Session has expired.\", \"code\": 190}}}}',
                       'Meta answered 400: Error validating access token: Session has expired.', now() - interval '5 minutes');
             INSERT INTO capi_events_log (dialog_id, event_level, event_name, event_id, status, attempt, reason, http_status, error_message, created_at)
               SELECT dialog_analysis.id, 2, 'CompleteRegistration', 'e4', e.status, e.attempt, e.reason, e.http, e.message, e.at::timestamptz
               FROM dialog_analysis, (VALUES
                 ('error', 1, 'invalid', 400, 'Meta answered 400: Invalid parameter (event_time)', '2026-11-20T06:59:00Z'),
                 ('success', 2, NULL, 200, NULL, '2026-11-20T07:00:00Z'),
                 ('skipped', 1, 'too_old', NULL, NULL, '2026-11-20T07:30:00Z')) AS e(status, attempt, reason, http, message, at)
               WHERE lead_id = '{l}';",
            a = f.ad_account,
            l = f.leads[0],
            p = plain.account,
            d = f.cosmetology,
            u = f.account
        ))
        .await
        .unwrap();
    let sandbox = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    let key = domain::api_key::generate();
    storage::api_keys::create(
        &mut env.conn().await,
        f.account.into(),
        "t",
        &domain::api_key::hash(&key),
        "capi_x",
    )
    .await
    .unwrap();
    let api: Value = reqwest::Client::new()
        .get(service.url(&format!(
            "/analytics/capi-stats?user_account_id={}&since=2026-11-19&until=2026-11-21",
            f.account
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let c = Browser::start().await;
    // Without a session: the sign-in page, not the data.
    c.goto(&service.url("/dashboard")).await;
    assert!(c.text_of("main").await.contains("Open a sign-in link"));
    // A forged link is refused.
    c.goto(&service.url(&format!(
        "/dashboard/login?token={}.9999999999.00",
        f.account.simple()
    )))
    .await;
    assert!(c.text_of("main").await.contains("invalid or has expired"));

    c.goto(&link(&service, f.account)).await;
    let cookies = c.cookies().await;
    let session = cookies
        .iter()
        .find(|k| k["name"] == "capi_session")
        .expect("the session cookie");
    assert_eq!(session["httpOnly"], true);
    c.goto(&service.url("/dashboard?since=2026-11-19&until=2026-11-21"))
        .await;
    let currency = api["spend"]["currency"].as_str().unwrap();
    let expected = [
        ("lead", api["lead"].to_string()),
        ("registration", api["registration"].to_string()),
        ("schedule", api["schedule"].to_string()),
        (
            "leads_to_lead_pct",
            pct(&api["conversions"]["leads_to_lead_pct"]),
        ),
        (
            "lead_to_registration_pct",
            pct(&api["conversions"]["lead_to_registration_pct"]),
        ),
        (
            "registration_to_schedule_pct",
            pct(&api["conversions"]["registration_to_schedule_pct"]),
        ),
        ("cost_per_lead", money(&api["cost_per_lead"], currency)),
        (
            "cost_per_registration",
            money(&api["cost_per_registration"], currency),
        ),
        (
            "cost_per_schedule",
            money(&api["cost_per_schedule"], currency),
        ),
        ("purchase", api["purchase"].to_string()),
        (
            "revenue",
            api["revenue"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| money(&r["amount"], r["currency"].as_str().unwrap()))
                .collect::<Vec<_>>()
                .join(" + "),
        ),
        (
            "roas",
            api["revenue"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|r| {
                    r["roas"]
                        .as_f64()
                        .map(|x| format!("{x:.2}× {}", r["currency"].as_str().unwrap()))
                })
                .collect::<Vec<_>>()
                .join(" · "),
        ),
    ];
    // The health section first: Meta refused the token, so a banner says
    // what to do and the direction is failing.
    let banner = c.find(".banner[data-refusal='token']").await.unwrap();
    let banner_text = c.text(&banner).await;
    assert!(banner_text.contains("Косметология"), "{banner_text}");
    assert!(banner_text.contains("new access token"), "{banner_text}");
    let row = c
        .find(&format!(
            "#capi-health tr[data-direction='{}']",
            f.cosmetology
        ))
        .await
        .unwrap();
    assert_eq!(
        c.attr(&row, "data-status").await.as_deref(),
        Some("failing")
    );
    assert!(c.text(&row).await.contains("Session has expired"));
    let cards = c.find_all("#capi-section .grid .card").await;
    assert_eq!(cards.len(), 12);
    for (i, (metric, value)) in expected.iter().enumerate() {
        assert_eq!(
            c.attr(&cards[i], "data-metric").await.as_deref(),
            Some(*metric),
            "card {i} in the 4×3 order"
        );
        assert_eq!(
            &c.text_of(&format!(".card[data-metric='{metric}'] .value"))
                .await,
            value,
            "{metric}"
        );
    }
    // The numbers themselves, as computed by hand for this fixture.
    assert_eq!(expected[0].1, "4");
    assert_eq!(expected[6].1, "11.25 USD");
    // Three purchases (one logged twice counts once); revenue per currency;
    // ROAS only in the spend's currency: 90.50 ÷ 45.00.
    assert_eq!(expected[9].1, "3");
    assert_eq!(expected[10].1, "100.00 EUR + 90.50 USD");
    assert_eq!(expected[11].1, "2.01× USD");
    assert!(c.text_of("#funnel").await.contains("Косметология"));
    assert_eq!(
        c.find_all("#events-chart rect").await.len(),
        9,
        "3 days × 3 levels"
    );
    assert!(c.text_of("#optimisation").await.contains("Lead"));
    let png = c.screenshot().await;
    std::fs::create_dir_all(target_dir()).unwrap();
    std::fs::write(target_dir().join("dashboard.png"), &png).unwrap();
    assert!(png.starts_with(b"\x89PNG"));

    // Results by ad, sorted by ROAS through the column's link: ad 901 (the
    // purchases' dialog: 3 purchases, 90.50 USD on 30.00) before 902 (no
    // revenue), the rows without an ad id last.
    c.goto(&service.url("/dashboard?since=2026-11-19&until=2026-11-21&group=ad"))
        .await;
    let roas_header = c.find("#ads-table th[data-sort='roas'] a").await.unwrap();
    let href = c.attr(&roas_header, "href").await.unwrap();
    c.goto(&service.url(&href)).await;
    let mut order = Vec::new();
    for r in c.find_all("#ads-table tr[data-kind]").await {
        order.push((
            c.attr(&r, "data-kind").await.unwrap(),
            c.attr(&r, "data-id").await.unwrap(),
        ));
    }
    assert_eq!(
        order,
        [
            ("insights".to_owned(), "901".to_owned()),
            ("insights".to_owned(), "902".to_owned()),
            ("no_ad_id".to_owned(), String::new()),
        ]
    );
    assert_eq!(
        c.text_of("#ads-table tr[data-id='901'] td.roas").await,
        "3.02× USD"
    );
    assert_eq!(
        c.text_of("#ads-table tr[data-id='901'] td.purchases").await,
        "3"
    );
    assert!(
        c.text_of("#ads-table th[data-sort='roas']")
            .await
            .contains('▼')
    );
    std::fs::write(target_dir().join("dashboard-ads.png"), c.screenshot().await).unwrap();
    // The table's CSV link downloads the same rows in the same order, with
    // the signed-in session (the account is Russian: `;`).
    let csv_link = c.find("#ads-csv").await.unwrap();
    let href = c.attr(&csv_link, "href").await.unwrap();
    assert!(href.contains("group=ad&sort=roas&order=desc"), "{href}");
    let session_cookie = c
        .cookies()
        .await
        .into_iter()
        .find(|k| k["name"] == "capi_session")
        .unwrap();
    let download = reqwest::Client::new()
        .get(service.url(&href))
        .header(
            "cookie",
            format!("capi_session={}", session_cookie["value"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(download.status().as_u16(), 200);
    let body = download.bytes().await.unwrap();
    let text = body.strip_prefix(b"\xEF\xBB\xBF").expect("BOM");
    let mut reader = csv::ReaderBuilder::new().delimiter(b';').from_reader(text);
    let ids: Vec<String> = reader.records().map(|r| r.unwrap()[1].to_owned()).collect();
    assert_eq!(ids, ["901", "902", "", ""], "the rows, then the total");
    let anonymous = reqwest::get(service.url(&href)).await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401, "no session, no export");

    // The lead view: its three CAPI columns.
    c.goto(&service.url(&format!("/dashboard/leads/{}", f.leads[0])))
        .await;
    let interest = c.find("#col-interest").await.unwrap();
    assert_eq!(
        c.attr(&interest, "data-sent").await.as_deref(),
        Some("true")
    );
    assert!(c.text(&interest).await.contains("2026-11-20 05:02:00 UTC"));
    assert!(c.text_of("#col-interest .event-id").await.contains("e1"));
    assert!(c.text_of("#col-qualified").await.contains("✓ sent"));
    assert!(c.text_of("#col-scheduled").await.contains("— not sent"));
    // Every attempt, oldest first: the refusal with Meta's message, the
    // retry Meta accepted, a skip with its reason.
    let attempts = c.text_of("#attempts").await;
    for text in [
        "refused (400): Meta answered 400: Invalid parameter (event_time)",
        "(attempt 2)",
        "accepted by Meta",
        "not sent: older than Meta's 7 days",
        "e4",
    ] {
        assert!(attempts.contains(text), "{text} in {attempts}");
    }
    let refused = c.find("#attempts tr[data-status='error']").await.unwrap();
    assert!(c.text(&refused).await.contains("2026-11-20 06:59:00 UTC"));
    let lead_api: Value = reqwest::Client::new()
        .get(service.url(&format!(
            "/api/capi-events/{}?user_account_id={}",
            f.leads[0], f.account
        )))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<(&str, &str)> = lead_api["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["event_id"].as_str().unwrap(),
                a["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("e4", "error"),
            ("e4", "success"),
            ("e4", "skipped"),
            ("p1", "success"),
            ("p1", "success"),
            ("p2", "success"),
            ("p3", "success")
        ]
    );
    assert_eq!(
        lead_api["attempts"][0]["message"],
        "Meta answered 400: Invalid parameter (event_time)"
    );
    let purchases = c.text_of("#purchases").await;
    for text in [
        "INV-1",
        "60.00 USD",
        "INV-2",
        "30.50 USD",
        "INV-3",
        "100.00 EUR",
        "p3",
    ] {
        assert!(purchases.contains(text), "{text} in {purchases}");
    }
    std::fs::write(
        target_dir().join("dashboard-lead.png"),
        c.screenshot().await,
    )
    .unwrap();
    // Another account's lead is not there for this session.
    c.goto(&service.url(&format!("/dashboard/leads/{}", plain.leads[0])))
        .await;
    assert!(c.text_of("main").await.contains("No such lead"));

    // An account without CAPI: no CAPI section; its leads still listed.
    c.goto(&link(&service, plain.account)).await;
    c.goto(&service.url("/dashboard?since=2026-11-19&until=2026-11-21"))
        .await;
    assert!(
        c.find("#capi-section").await.is_err(),
        "hidden without CAPI"
    );
    assert!(c.text_of("#leads h2").await.contains("Leads (6)"));
    std::fs::write(
        target_dir().join("dashboard-no-capi.png"),
        c.screenshot().await,
    )
    .unwrap();
    service.stop().await;
}
