//! capi-sender's production behaviour: batching and splitting, the error
//! policy per class, the 7-day rule, per-direction settings, and log rows.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::{capi_event::appsecret_proof, normalize::sha256_hex};
use pipeline_tests::{
    Pipeline, PipelineOptions, Seed, SeedOptions, TestEnv, count, customer_message, eventually,
    log_rows, post_ok, recent, seed,
    wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers},
};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Two customer messages from `phone` (the first from an ad): level 1.
async fn converse(p: &Pipeline, s: &Seed, phone: &str, sent_at: i64) {
    for (i, clid) in [(0, Some("CLID-X")), (1, None)] {
        let body = customer_message(
            &s.instance,
            &format!("{phone}-{i}"),
            phone,
            "oi",
            clid,
            sent_at + i,
        );
        post_ok(p, s, &body).await;
    }
}

fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).expect("JSON body")
}

fn phone_of(event: &Value) -> String {
    event["user_data"]["ph"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn requests(meta: &MockServer) -> Vec<Value> {
    meta.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(body)
        .collect()
}

async fn status_count(env: &TestEnv, status: &str) -> i64 {
    count(
        env,
        &format!("SELECT count(*) AS n FROM capi_events_log WHERE status = '{status}'"),
    )
    .await
}

fn assert_no_token(rows: &[Value], token: &str) {
    for r in rows {
        assert!(
            !r.to_string().contains(token),
            "a log row holds the token: {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_invalid_event_among_ten_is_isolated_and_the_nine_are_delivered() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let bad = sha256_hex("5511900000007");
    let meta = MockServer::start().await;
    let bad_for_responder = bad.clone();
    Mock::given(matchers::method("POST"))
        .respond_with(move |r: &Request| {
            let events = body(r)["data"].as_array().cloned().unwrap_or_default();
            if events.iter().any(|e| phone_of(e) == bad_for_responder) {
                ResponseTemplate::new(400).set_body_json(json!({"error": {"message": "Invalid parameter",
                    "type": "OAuthException", "code": 100, "error_subcode": 2804019, "fbtrace_id": "TRACE-BAD"}}))
            } else {
                ResponseTemplate::new(200).set_body_json(json!({"events_received": events.len(), "fbtrace_id": "TRACE-OK"}))
            }
        })
        .mount(&meta)
        .await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.linger_ms = 2_000; // long enough for all ten to share one batch
    let p = Pipeline::start(&env, &opts).await;
    for i in 0..10 {
        converse(&p, &s, &format!("55119000000{i:02}"), recent(120)).await;
    }
    eventually("ten finished events", WAIT, || async {
        (count(
            &env,
            "SELECT count(*) AS n FROM capi_deliveries WHERE status <> 'pending'",
        )
        .await
            == 10)
            .then_some(())
    })
    .await;

    let reqs = requests(&meta).await;
    assert_eq!(
        reqs[0]["data"].as_array().map(Vec::len),
        Some(10),
        "the first request carries all ten"
    );
    let last_bad = reqs
        .iter()
        .rfind(|b| {
            b["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| phone_of(e) == bad))
        })
        .expect("a request with the bad event");
    assert_eq!(
        last_bad["data"].as_array().map(Vec::len),
        Some(1),
        "bisected down to the bad event alone"
    );
    assert!(
        reqs.len() <= 1 + 2 * 4,
        "bisection, not one request per event: {} requests",
        reqs.len()
    );
    let delivered: usize = reqs
        .iter()
        .filter(|b| {
            !b["data"]
                .as_array()
                .is_some_and(|d| d.iter().any(|e| phone_of(e) == bad))
        })
        .map(|b| b["data"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(delivered, 9, "each good event delivered exactly once");

    assert_eq!(status_count(&env, "success").await, 9);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM dialog_analysis WHERE capi_interest_sent"
        )
        .await,
        9
    );
    let rows = log_rows(&env).await;
    let errors: Vec<&Value> = rows.iter().filter(|r| r["status"] == "error").collect();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["error_message"], "Invalid parameter");
    assert_eq!(errors[0]["fbtrace_id"], "TRACE-BAD");
    assert_eq!(errors[0]["batch_size"], 1);
    assert_eq!(phone_of(&errors[0]["request"]["data"][0]), bad);
    let ok = rows
        .iter()
        .find(|r| r["status"] == "success")
        .expect("a success row");
    assert_eq!(ok["fbtrace_id"], "TRACE-OK");
    assert!(ok["batch_id"].is_string() && ok["duration_ms"].is_number());
    assert_no_token(&rows, "EAAB-test-token");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_are_not_retried_and_exhausted_retries_are_dead_lettered() {
    let env = TestEnv::new().await;
    let token_error = seed(
        &env,
        &SeedOptions {
            pixel: Some("190190"),
            ..Default::default()
        },
    )
    .await;
    let always_down = seed(
        &env,
        &SeedOptions {
            pixel: Some("500500"),
            ..Default::default()
        },
    )
    .await;
    let meta = MockServer::start().await;
    Mock::given(matchers::path(format!(
        "/{}/190190/events",
        meta_graph::DEFAULT_GRAPH_VERSION
    )))
    .respond_with(
        ResponseTemplate::new(400)
            .set_body_json(json!({"error": {"message": "Error validating access token",
            "type": "OAuthException", "code": 190}})),
    )
    .mount(&meta)
    .await;
    Mock::given(matchers::path(format!(
        "/{}/500500/events",
        meta_graph::DEFAULT_GRAPH_VERSION
    )))
    .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
    .mount(&meta)
    .await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.retry_schedule = Some("300ms,300ms".into());
    let p = Pipeline::start(&env, &opts).await;
    converse(&p, &token_error, "5511911111111", recent(60)).await;
    converse(&p, &always_down, "5511922222222", recent(60)).await;
    eventually("both finished", WAIT, || async {
        (count(
            &env,
            "SELECT count(*) AS n FROM capi_deliveries WHERE status = 'error'",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let reqs = meta.received_requests().await.unwrap_or_default();
    let to = |pixel: &str| reqs.iter().filter(|r| r.url.path().contains(pixel)).count();
    assert_eq!(to("190190"), 1, "a token error is not retried");
    assert_eq!(
        to("500500"),
        3,
        "a 5xx is retried on the schedule: 1 + 2 retries"
    );
    let rows = log_rows(&env).await;
    let down: Vec<&Value> = rows.iter().filter(|r| r["pixel_id"] == "500500").collect();
    let attempts: Vec<i64> = down
        .iter()
        .map(|r| r["attempt"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    assert!(
        down.iter()
            .all(|r| r["status"] == "error" && r["http_status"] == 502)
    );
    assert!(
        down[2]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("gave up")),
        "{}",
        down[2]
    );
    let bus = env.bus();
    let dead = bus
        .dead_letter_depth(bus::Queue::CapiEvents)
        .await
        .expect("dlq depth");
    assert_eq!(dead, 1, "the exhausted event is in the dead-letter queue");
    bus.close().await;
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM dialog_analysis WHERE capi_interest_sent"
        )
        .await,
        0
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_one_ad_account_does_not_delay_another() {
    let env = TestEnv::new().await;
    let throttled = seed(
        &env,
        &SeedOptions {
            pixel: Some("444"),
            ad_account_token: Some("EAAB-A"),
            ..Default::default()
        },
    )
    .await;
    let free = seed(
        &env,
        &SeedOptions {
            pixel: Some("555"),
            ad_account_token: Some("EAAB-B"),
            ..Default::default()
        },
    )
    .await;
    let meta = MockServer::start().await;
    Mock::given(matchers::path(format!(
        "/{}/444/events",
        meta_graph::DEFAULT_GRAPH_VERSION
    )))
    .respond_with(
        ResponseTemplate::new(400)
            .set_body_json(json!({"error": {"message": "User request limit reached",
            "code": 80004, "error_subcode": 2446079, "is_transient": true}})),
    )
    .up_to_n_times(1)
    .with_priority(1)
    .mount(&meta)
    .await;
    pipeline_tests::meta_accepts(&meta).await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.retry_schedule = Some("200ms,200ms,200ms".into());
    opts.throttle_backoff = "4s".into();
    let p = Pipeline::start(&env, &opts).await;
    converse(&p, &throttled, "5511933333333", recent(60)).await;
    eventually("the throttle answer", WAIT, || async {
        (status_count(&env, "error").await == 1).then_some(())
    })
    .await;
    // Now the other ad account's event: it must not wait for the throttled one.
    converse(&p, &free, "5511944444444", recent(30)).await;
    eventually("both sent", WAIT, || async {
        (status_count(&env, "success").await == 2).then_some(())
    })
    .await;

    #[derive(diesel::QueryableByName, Debug)]
    struct Timing {
        #[diesel(sql_type = diesel::sql_types::Text)]
        pixel_id: String,
        #[diesel(sql_type = diesel::sql_types::Double)]
        secs_after_throttle: f64,
    }
    let mut conn = env.conn().await;
    let timings: Vec<Timing> = diesel_async::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT l.pixel_id, extract(epoch FROM l.created_at - t.created_at)::float8 AS secs_after_throttle \
             FROM capi_events_log l, (SELECT created_at FROM capi_events_log WHERE status = 'error') t \
             WHERE l.status = 'success' ORDER BY l.created_at",
        ),
        &mut conn,
    )
    .await
    .expect("timings");
    assert_eq!(
        timings[0].pixel_id, "555",
        "the free account's event went first: {timings:?}"
    );
    let retried = timings
        .iter()
        .find(|t| t.pixel_id == "444")
        .expect("throttled one sent");
    assert!(
        retried.secs_after_throttle >= 3.9,
        "the throttled account backed off its 4 s: {timings:?}"
    );
    let rows = log_rows(&env).await;
    assert!(rows.iter().any(|r| {
        r["reason"]
            .as_str()
            .is_some_and(|x| x.starts_with("throttled"))
    }));
    assert_no_token(&rows, "EAAB-A");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_old_event_is_skipped_without_blocking_others() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    pipeline_tests::meta_accepts(&meta).await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.linger_ms = 1_000;
    let p = Pipeline::start(&env, &opts).await;
    converse(&p, &s, "5511955555555", recent(8 * 24 * 3600)).await; // a backlog from 8 days ago
    converse(&p, &s, "5511966666666", recent(60)).await;
    eventually("both finished", WAIT, || async {
        (count(
            &env,
            "SELECT count(*) AS n FROM capi_deliveries WHERE status <> 'pending'",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    let rows = log_rows(&env).await;
    let skipped: Vec<&Value> = rows.iter().filter(|r| r["status"] == "skipped").collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["reason"], "too_old");
    let reqs = requests(&meta).await;
    let sent: Vec<String> = reqs
        .iter()
        .flat_map(|b| b["data"].as_array().cloned().unwrap_or_default())
        .map(|e| phone_of(&e))
        .collect();
    assert_eq!(
        sent,
        vec![sha256_hex("5511966666666")],
        "only the fresh event reached Meta"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direction_settings_shape_the_request() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    {
        let mut conn = env.conn().await;
        let update = storage::directions::DirectionCapiUpdate {
            event_names: [Some("LeadSubmitted"), None, None],
            test_event_code: Some("TEST4242"),
            ldu_enabled: Some(true),
            ldu_country: Some(1),
            ldu_state: Some(1000),
            ..Default::default()
        };
        assert!(
            storage::directions::update_direction_capi(&mut conn, s.direction_id, &update)
                .await
                .expect("update")
        );
        let ad: Vec<storage::directions::AdAccountRow> =
            storage::directions::list_ad_accounts(&mut conn)
                .await
                .expect("ad accounts");
        storage::directions::set_ad_account_app_secret(
            &mut conn,
            &env.keys(),
            ad[0].id,
            Some("app-secret-1"),
        )
        .await
        .expect("secret");
    }
    let meta = MockServer::start().await;
    pipeline_tests::meta_accepts(&meta).await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.partner_agent = "acme-capi".into();
    let p = Pipeline::start(&env, &opts).await;
    converse(&p, &s, "5511977777777", recent(60)).await;
    eventually("sent", WAIT, || async {
        (status_count(&env, "success").await == 1).then_some(())
    })
    .await;
    let b = &requests(&meta).await[0];
    assert_eq!(b["test_event_code"], "TEST4242");
    assert_eq!(b["partner_agent"], "acme-capi");
    assert_eq!(
        b["appsecret_proof"],
        appsecret_proof("app-secret-1", "EAAB-test-token")
    );
    let e = &b["data"][0];
    assert_eq!(e["event_name"], "LeadSubmitted");
    assert_eq!(e["data_processing_options"], json!(["LDU"]));
    assert_eq!(
        (
            e["data_processing_options_country"].as_i64(),
            e["data_processing_options_state"].as_i64()
        ),
        (Some(1), Some(1000))
    );
    let rows = log_rows(&env).await;
    assert_eq!(rows[0]["request"]["test_event_code"], "TEST4242");
    assert!(
        rows[0]["request"].get("appsecret_proof").is_none()
            && rows[0]["request"].get("access_token").is_none()
    );
    assert_no_token(&rows, "EAAB-test-token");
    p.stop().await;
}
