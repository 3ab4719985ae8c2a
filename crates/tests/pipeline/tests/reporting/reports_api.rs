//! The reports API against real PostgreSQL: numbers equal a hand-computed
//! fixture, a key sees its own account only, every bad parameter is a 400
//! naming it, and the OpenAPI document lists exactly the served paths.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{ReportsService, SandboxServer, TestEnv, report_day as day, reports_settings};
use serde_json::{Value, json};
use uuid::Uuid;

pub(crate) async fn key_for(env: &TestEnv, account: Uuid) -> (Uuid, String) {
    let key = domain::api_key::generate();
    let id = storage::api_keys::create(
        &mut env.conn().await,
        account.into(),
        "test",
        &domain::api_key::hash(&key),
        &domain::api_key::display_prefix(&key),
    )
    .await
    .unwrap();
    (id, key)
}

pub(crate) async fn get(service: &ReportsService, path: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(service.url(path));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

struct World {
    env: TestEnv,
    service: ReportsService,
    f: day::Fixture,
    key: String,
    _sandbox: SandboxServer,
}

/// The day fixture (reports.rs) plus spend: 30.00 on 11-20 and 15.00 on
/// 11-21 inside the range, 100.00 on 11-10 outside; a1's Lead flags set.
async fn world() -> World {
    let env = TestEnv::new().await;
    let f = day::seed_day(&env, chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()).await;
    env.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, spend, currency) VALUES
               ('{a}', '2026-11-20', 'c1', 20.00, 'USD'), ('{a}', '2026-11-20', 'c2', 10.00, 'USD'),
               ('{a}', '2026-11-21', 'c1', 15.00, 'USD'), ('{a}', '2026-11-10', 'c1', 100.00, 'USD');
             UPDATE dialog_analysis SET capi_interest_sent = true, capi_interest_event_id = 'e1',
               capi_interest_sent_at = '2026-11-20T05:02:00Z' WHERE lead_id = '{l}';",
            a = f.ad_account,
            l = f.leads[0]
        ))
        .await
        .unwrap();
    let (_, key) = key_for(&env, f.account).await;
    let sandbox = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    World {
        env,
        service,
        f,
        key,
        _sandbox: sandbox,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capi_stats_equal_the_hand_computed_fixture() {
    let w = world().await;
    let (status, s) = get(
        &w.service,
        &format!(
            "/analytics/capi-stats?user_account_id={}&since=2026-11-19&until=2026-11-21",
            w.f.account
        ),
        Some(&w.key),
    )
    .await;
    assert_eq!(status, 200, "{s}");
    // Events: e1, e2, e3 (logged twice, counted once) and e6 (11-21) are
    // Leads, e4 a Registration; e5 failed. Leads: a1, a2, a4, a5 are new in
    // the range in the CAPI direction (a3 began 11-18; b1's direction has
    // CAPI off). Spend 45.00.
    assert_eq!(s["capi_enabled"], true);
    assert_eq!(s["timezone"], "Asia/Almaty");
    assert_eq!(
        (
            s["lead"].clone(),
            s["registration"].clone(),
            s["schedule"].clone()
        ),
        (json!(4), json!(1), json!(0))
    );
    assert_eq!(s["leads"], 4);
    assert_eq!(
        s["conversions"],
        json!({"leads_to_lead_pct": 100.0, "lead_to_registration_pct": 25.0, "registration_to_schedule_pct": 0.0})
    );
    assert_eq!(s["spend"], json!({"amount": 45.0, "currency": "USD"}));
    assert_eq!(
        (
            s["cost_per_lead"].clone(),
            s["cost_per_registration"].clone()
        ),
        (json!(11.25), json!(45.0))
    );
    assert_eq!(s["cost_per_schedule"], Value::Null);
    assert_eq!(
        (&s["purchase"], &s["revenue"], &s["cost_per_purchase"]),
        (&json!(0), &json!([]), &Value::Null),
        "no purchases in the fixture"
    );
    let dirs = s["directions"].as_array().unwrap();
    let cosmetology = dirs.iter().find(|d| d["name"] == "Косметология").unwrap();
    assert_eq!(
        (cosmetology["leads"].clone(), cosmetology["lead"].clone()),
        (json!(4), json!(4))
    );
    assert_eq!(cosmetology["cost_per_lead"], 11.25);
    assert_eq!(cosmetology["spend_shared"], false);
    let dentistry = dirs.iter().find(|d| d["name"] == "Стоматология").unwrap();
    assert_eq!(dentistry["capi_enabled"], false);
    assert_eq!(dentistry["leads"], 1);
    assert_eq!(dentistry["conversions"]["leads_to_lead_pct"], 0.0);
    assert_eq!(dentistry["spend"], Value::Null);
    assert_eq!(
        s["daily"],
        json!([
            {"date": "2026-11-19", "lead": 0, "registration": 0, "schedule": 0, "purchase": 0},
            {"date": "2026-11-20", "lead": 3, "registration": 1, "schedule": 0, "purchase": 0},
            {"date": "2026-11-21", "lead": 1, "registration": 0, "schedule": 0, "purchase": 0}
        ])
    );

    // One lead's three columns.
    let (status, lead) = get(
        &w.service,
        &format!(
            "/api/capi-events/{}?user_account_id={}",
            w.f.leads[0], w.f.account
        ),
        Some(&w.key),
    )
    .await;
    assert_eq!(status, 200, "{lead}");
    assert_eq!(lead["direction_name"], "Косметология");
    assert_eq!(lead["contact_name"], "Customer a1");
    assert_eq!(
        lead["interest"],
        json!({"sent": true, "sent_at": "2026-11-20T05:02:00Z", "event_id": "e1"})
    );
    assert_eq!(
        lead["qualified"],
        json!({"sent": false, "sent_at": null, "event_id": null})
    );
    assert_eq!(lead["scheduled"]["sent"], false);

    // The ROI table: a1, a2, a4, a5, b1 and c1 (no direction) began in the range.
    let (status, page) = get(
        &w.service,
        &format!("/api/capi-events?user_account_id={}&since=2026-11-19&until=2026-11-21&per_page=4&page=2", w.f.account),
        Some(&w.key),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 6);
    let names: Vec<&str> = page["leads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["contact_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Customer b1", "Customer a4"],
        "newest first: page 2 holds the oldest two"
    );

    // The stored report.
    let mut conn = w.env.conn().await;
    let account = storage::reports::account(&mut conn, w.f.account.into())
        .await
        .unwrap()
        .unwrap();
    storage::reports::generate(
        &mut conn,
        &account,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        false,
    )
    .await
    .unwrap();
    let (status, r) = get(
        &w.service,
        &format!(
            "/reports/daily?user_account_id={}&date=2026-11-20",
            w.f.account
        ),
        Some(&w.key),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert!(
        r["report_text"]
            .as_str()
            .unwrap()
            .starts_with("📊 Отчёт по перепискам за 20 ноября 2026")
    );
    assert_eq!(r["directions_data"].as_array().unwrap().len(), 3);
    let (status, _) = get(
        &w.service,
        &format!(
            "/reports/daily?user_account_id={}&date=2026-11-19",
            w.f.account
        ),
        Some(&w.key),
    )
    .await;
    assert_eq!(status, 404);
    w.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_sees_its_own_account_only() {
    let w = world().await;
    let other = day::seed_day(
        &w.env,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    )
    .await;
    let (other_key_id, other_key) = key_for(&w.env, other.account).await;
    let mine = w.f.account;
    // Another account's stats, lead, report and leads: 404, saying no more.
    for path in [
        format!("/analytics/capi-stats?user_account_id={mine}"),
        format!("/analytics/optimisation?user_account_id={mine}"),
        format!("/api/capi-events?user_account_id={mine}"),
        format!("/reports/daily?user_account_id={mine}&date=2026-11-20"),
    ] {
        let (status, body) = get(&w.service, &path, Some(&other_key)).await;
        assert_eq!(
            (status, body),
            (
                404,
                json!({"code": "not_found", "message": "no such user account"})
            ),
            "{path}"
        );
    }
    // My lead asked for under the other account (with its key): as if absent.
    let (status, body) = get(
        &w.service,
        &format!(
            "/api/capi-events/{}?user_account_id={}",
            w.f.leads[0], other.account
        ),
        Some(&other_key),
    )
    .await;
    assert_eq!(
        (status, body),
        (404, json!({"code": "not_found", "message": "no such lead"}))
    );
    // The other key still works for its own account…
    let (status, _) = get(
        &w.service,
        &format!("/analytics/capi-stats?user_account_id={}", other.account),
        Some(&other_key),
    )
    .await;
    assert_eq!(status, 200);
    // …until revoked; no key and an unknown key are 401.
    assert!(
        storage::api_keys::revoke(&mut w.env.conn().await, other_key_id)
            .await
            .unwrap()
    );
    for key in [Some(other_key.as_str()), None, Some("capi_0000")] {
        let (status, body) = get(
            &w.service,
            &format!("/analytics/capi-stats?user_account_id={}", other.account),
            key,
        )
        .await;
        assert_eq!(status, 401, "{key:?}");
        assert_eq!(body["code"], "unauthorized");
    }
    w.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_parameter_is_a_400_naming_it() {
    let w = world().await;
    let a = w.f.account;
    let cases = [
        (
            "/analytics/capi-stats".to_owned(),
            "user_account_id: required",
        ),
        (
            "/analytics/capi-stats?user_account_id=42".to_owned(),
            "user_account_id: expected a UUID",
        ),
        (
            format!("/analytics/capi-stats?user_account_id={a}&since=2026-13-01"),
            "since: expected a date YYYY-MM-DD",
        ),
        (
            format!("/analytics/capi-stats?user_account_id={a}&until=yesterday"),
            "until: expected a date YYYY-MM-DD",
        ),
        (
            format!("/analytics/capi-stats?user_account_id={a}&since=2026-11-21&until=2026-11-20"),
            "until: is before since",
        ),
        (
            format!("/analytics/capi-stats?user_account_id={a}&since=2025-01-01&until=2026-01-02"),
            "since: the range since..until is longer than 366 days",
        ),
        (
            format!("/analytics/capi-stats?user_account_id={a}&until=-262143-01-01"),
            "until: expected a date from 1970-01-01 to 9999-12-31",
        ),
        (
            format!("/analytics/capi-stats?user_account_id={a}&since=1969-12-31"),
            "since: expected a date from 1970-01-01 to 9999-12-31",
        ),
        (
            format!("/analytics/capi-stats?user_account_id={a}&since=%2B10000-01-01"),
            "since: expected a date from 1970-01-01 to 9999-12-31",
        ),
        (
            format!("/api/capi-events?user_account_id={a}&per_page=0"),
            "per_page: expected a whole number from 1 to 200",
        ),
        (
            format!("/api/capi-events?user_account_id={a}&page=x"),
            "page: expected a whole number from 1 to 1000000",
        ),
        (
            format!("/api/capi-events/not-a-uuid?user_account_id={a}"),
            "lead_id: expected a UUID",
        ),
        (
            format!("/reports/daily?user_account_id={a}"),
            "date: required (YYYY-MM-DD)",
        ),
        (
            format!("/reports/daily?user_account_id={a}&date=20.11.2026"),
            "date: expected a date YYYY-MM-DD",
        ),
    ];
    for (path, message) in cases {
        let (status, body) = get(&w.service, &path, Some(&w.key)).await;
        assert_eq!(
            (status, body),
            (400, json!({"code": "bad_parameter", "message": message})),
            "{path}"
        );
    }
    // A range of exactly 366 days is fine.
    let (status, _) = get(
        &w.service,
        &format!("/analytics/capi-stats?user_account_id={a}&since=2025-01-01&until=2026-01-01"),
        Some(&w.key),
    )
    .await;
    assert_eq!(status, 200);
    w.service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_served_paths() {
    let w = world().await;
    let (status, doc) = get(&w.service, "/openapi.json", None).await;
    assert_eq!(status, 200);
    let mut documented: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut served = reports::API_PATHS.to_vec();
    served.extend(reports::API_DELETE_PATHS);
    documented.sort_unstable();
    served.sort_unstable();
    served.dedup();
    assert_eq!(documented, served);
    // Every documented path answers (with the key) rather than 404 for a missing route.
    for path in reports::API_PATHS {
        let concrete = path
            .replace("{lead_id}", &w.f.leads[0].to_string())
            .replace("{phone}", "77010000001");
        let sep = if concrete.contains('?') { '&' } else { '?' };
        let (status, body) = get(
            &w.service,
            &format!(
                "{concrete}{sep}user_account_id={}&date=2026-11-20",
                w.f.account
            ),
            Some(&w.key),
        )
        .await;
        assert!(
            status == 200
                || body["code"] == "not_found" && body["message"] == "no such report for that date",
            "{path}: {status} {body}"
        );
    }
    // The optimisation advice for the fixture: too few events to move up.
    let (_, advice) = get(
        &w.service,
        &format!("/analytics/optimisation?user_account_id={}", w.f.account),
        Some(&w.key),
    )
    .await;
    let dirs = advice["directions"].as_array().unwrap();
    assert_eq!(dirs.len(), 1, "only the direction with CAPI on");
    assert_eq!(dirs[0]["optimise_for"], "lead");
    assert_eq!(dirs[0]["event_name"], "LeadSubmitted");
    w.service.stop().await;
}

/// The dashboard's sign-in as a browser meets it: a link signs in once, a
/// session ends on sign-out, a revoke ends every session of one account
/// (and its links not yet used) and no other account's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_links_work_once_and_sessions_end_on_sign_out_or_revoke() {
    let w = world().await;
    let other = day::seed_day(
        &w.env,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let link = |account: Uuid, generation: i32| {
        let (url, _) = reports_settings("x")
            .dashboard_link(account.into(), generation, domain::api_key::Role::Viewer)
            .unwrap();
        w.service.url(&format!(
            "/dashboard/login?{}",
            url.split_once('?').unwrap().1
        ))
    };
    let sign_in = |url: String| {
        let client = client.clone();
        async move {
            let resp = client.get(url).send().await.unwrap();
            let status = resp.status().as_u16();
            let cookie = resp
                .headers()
                .get("set-cookie")
                .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned());
            (status, cookie, resp.text().await.unwrap())
        }
    };
    let dashboard = |cookie: String| {
        let client = client.clone();
        let url = w.service.url("/dashboard");
        async move {
            let resp = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };

    let first = link(w.f.account, 0);
    let (status, cookie, _) = sign_in(first.clone()).await;
    assert_eq!(status, 303);
    let session = cookie.expect("a session cookie");
    assert_eq!(dashboard(session.clone()).await, 200);
    // The same link again: refused, and no new session.
    let (status, cookie, page) = sign_in(first).await;
    assert_eq!((status, cookie), (401, None));
    assert!(page.contains("already used"), "{page}");

    // Sign-out ends this session only.
    let (_, second, _) = sign_in(link(w.f.account, 0)).await;
    let second = second.unwrap();
    let out = client
        .post(w.service.url("/dashboard/logout"))
        .header("cookie", session.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 200);
    assert!(
        out.headers()
            .get("set-cookie")
            .is_some_and(|c| c.to_str().unwrap().contains("Max-Age=0")),
        "the cookie is removed"
    );
    assert_eq!(dashboard(session).await, 401);
    assert_eq!(dashboard(second.clone()).await, 200);

    // A revoke of this account: its open session and its unused link die,
    // the other account's session lives on.
    let unused = link(w.f.account, 0);
    let (_, theirs, _) = sign_in(link(other.account, 0)).await;
    let theirs = theirs.unwrap();
    let revoked = storage::dashboard::revoke(&mut w.env.conn().await, w.f.account.into())
        .await
        .unwrap();
    assert_eq!(revoked, Some((1, 1)));
    assert_eq!(dashboard(second).await, 401);
    let (status, _, page) = sign_in(unused).await;
    assert_eq!(status, 401);
    assert!(page.contains("ended after the link was made"), "{page}");
    assert_eq!(dashboard(theirs).await, 200);
    // A link of the new generation signs in again.
    let (status, _, _) = sign_in(link(w.f.account, 1)).await;
    assert_eq!(status, 303);
    w.service.stop().await;
}

/// Every answer carries the security headers; the dashboard's CSP allows
/// no script; a method a path does not serve is a 405 naming the ones it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_carry_security_headers_and_wrong_methods_get_405() {
    let w = world().await;
    let client = reqwest::Client::new();
    let a = w.f.account;
    for path in [
        format!("/analytics/capi-stats?user_account_id={a}"),
        "/dashboard".to_owned(),
        "/health".to_owned(),
        "/openapi.json".to_owned(),
    ] {
        let resp = client
            .get(w.service.url(&path))
            .bearer_auth(&w.key)
            .send()
            .await
            .unwrap();
        let h = resp.headers();
        let csp = h
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap().to_owned());
        let csp = csp.unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(!csp.contains("script-src"), "{path}: {csp}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
    let resp = client
        .post(
            w.service
                .url(&format!("/analytics/capi-stats?user_account_id={a}")),
        )
        .bearer_auth(&w.key)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "GET");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "method_not_allowed", "{body}");
    let resp = client
        .get(w.service.url("/dashboard/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    w.service.stop().await;
}

/// A set but guessable dashboard secret stops the service at start, with a
/// message naming the setting (and not the value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_dashboard_secret_stops_reports() {
    let env = TestEnv::new().await;
    for weak in ["CHANGE-ME", "s3cret", &"0".repeat(64)] {
        let mut settings = reports_settings("http://127.0.0.1:9");
        settings.dashboard_secret = weak.to_owned().into();
        let started = reports::build(
            reports::Settings {
                common: env.common(),
                reports: settings,
                meta: meta_graph::GraphSettings::default(),
                setup: Default::default(),
            },
            runtime::CancellationToken::new(),
        )
        .await;
        let e = format!("{:#}", started.err().expect("refused"));
        assert!(
            e.contains(
                "reports.dashboard_secret (CAPI_REPORTS__DASHBOARD_SECRET) is not a strong key"
            ),
            "{e}"
        );
        assert!(!e.contains(weak), "{e}");
    }
}

/// Whatever a tenant or Meta named things is text on the dashboard, never
/// markup: an account, a direction, a customer and an event id carrying
/// HTML come out escaped (maud escapes every value it is given).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_carrying_html_are_shown_as_text() {
    let w = world().await;
    let lead = w.f.leads[0];
    w.env
        .conn()
        .await
        .batch_execute(&format!(
            r#"UPDATE user_accounts SET name = 'Clinic <b>&</b>' WHERE id = '{a}';
               UPDATE account_directions SET name = '<script>alert(1)</script>' WHERE id = '{d}';
               UPDATE dialog_analysis SET contact_name = '"><img src=x onerror=alert(2)>',
                 capi_interest_event_id = '</td><iframe src=//evil>' WHERE lead_id = '{lead}';"#,
            a = w.f.account,
            d = w.f.cosmetology,
        ))
        .await
        .unwrap();
    let (url, _) = reports_settings("x")
        .dashboard_link(w.f.account.into(), 0, domain::api_key::Role::Viewer)
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = client
        .get(w.service.url(&format!(
            "/dashboard/login?{}",
            url.split_once('?').unwrap().1
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = |path: String| {
        let (client, cookie) = (client.clone(), cookie.clone());
        async move {
            let resp = client
                .get(path)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.text().await.unwrap()
        }
    };
    let dashboard = page(
        w.service
            .url("/dashboard?since=2026-11-15&until=2026-11-25"),
    )
    .await;
    for escaped in [
        "<title>Clinic &lt;b&gt;&amp;&lt;/b&gt;</title>",
        "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>",
        "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;</a>",
    ] {
        assert!(dashboard.contains(escaped), "{escaped} not in {dashboard}");
    }
    let lead_page = page(w.service.url(&format!("/dashboard/leads/{lead}"))).await;
    assert!(
        lead_page
            .contains("<div class=\"muted event-id\">&lt;/td&gt;&lt;iframe src=//evil&gt;</div>"),
        "{lead_page}"
    );
    assert!(
        lead_page.contains("<h2>&quot;&gt;&lt;img src=x onerror=alert(2)&gt;</h2>"),
        "{lead_page}"
    );
    for raw in ["<script>", "<img", "<iframe", "<b>"] {
        assert!(!dashboard.contains(raw), "{raw} in the dashboard");
        assert!(!lead_page.contains(raw), "{raw} on the lead page");
    }
    w.service.stop().await;
}
