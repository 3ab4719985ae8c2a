//! The whole pipeline against real PostgreSQL and RabbitMQ, with a fake Meta
//! Graph API that records exactly what it received.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::{capi_event::event_id, level::Level, normalize::sha256_hex};
use pipeline_tests::{
    Pipeline, PipelineOptions, SeedOptions, TestEnv, count, customer_message, dialog_ids,
    eventually, log_rows, meta_accepts, meta_events, post_ok, seed, successes,
    wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers},
};
use serde_json::{Value, json};
use std::{sync::LazyLock, time::Duration};

const PHONE: &str = "5511999999999";
const CLID: &str = "ARAkLkA8rmlFeiCktEJQ";
static T1: LazyLock<i64> = LazyLock::new(|| pipeline_tests::recent(600));
static T2: LazyLock<i64> = LazyLock::new(|| pipeline_tests::recent(540));
const WAIT: Duration = Duration::from_secs(30);

async fn meta_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r: &Request| serde_json::from_slice(&r.body).expect("Meta got JSON"))
        .collect()
}

/// Waits until the pipeline has been quiet long enough for a stray second event to show.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ad_click_and_a_second_message_send_one_lead_exactly_as_specified() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;

    let first = customer_message(
        &s.instance,
        "M1",
        PHONE,
        "Olá! Tenho interesse",
        Some(CLID),
        *T1,
    );
    let second = customer_message(&s.instance, "M2", PHONE, "Quanto custa?", None, *T2);
    post_ok(&p, &s, &first).await;
    post_ok(&p, &s, &second).await;

    eventually("one success row", WAIT, || async {
        (successes(&env).await == 1).then_some(())
    })
    .await;
    let dialog = dialog_ids(&env).await[0];
    let bodies = meta_bodies(&meta).await;
    assert_eq!(bodies.len(), 1, "exactly one request at Meta: {bodies:?}");
    assert_eq!(
        bodies[0],
        json!({
            "data": [{
                "event_name": "LeadSubmitted",
                "event_time": *T2,
                "event_id": event_id(dialog, Level::Interest),
                "event_source_url": "https://wa.me/",
                "action_source": "business_messaging",
                "messaging_channel": "whatsapp",
                "user_data": {
                    "ph": [sha256_hex(PHONE)],
                    "ctwa_clid": CLID,
                    "whatsapp_business_account_id": "102938475610"
                },
                "custom_data": {"event_level": 1},
                "data_processing_options": []
            }],
            "access_token": "EAAB-test-token"
        })
    );

    let mut conn = env.conn().await;
    let flags = storage::deliveries::sent_flags(&mut conn, dialog)
        .await
        .expect("query")
        .expect("dialog");
    assert!(flags.capi_interest_sent && !flags.capi_qualified_sent && !flags.capi_scheduled_sent);
    assert_eq!(
        flags.capi_interest_event_id.as_deref(),
        Some(event_id(dialog, Level::Interest).as_str())
    );
    let rows = log_rows(&env).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["status"], "success");
    assert_eq!(rows[0]["event_name"], "LeadSubmitted");
    assert_eq!(rows[0]["response"]["fbtrace_id"], "AbCdEf");
    assert!(
        !rows[0].to_string().contains("EAAB-test-token"),
        "the log must not hold the token"
    );

    // Evolution re-delivers both webhooks: nothing more reaches Meta.
    post_ok(&p, &s, &first).await;
    post_ok(&p, &s, &second).await;
    settle().await;
    assert_eq!(meta_bodies(&meta).await.len(), 1);
    assert_eq!(successes(&env).await, 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_message_keeps_the_click_id_and_a_dialog_without_one_is_sent_as_other() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;

    // Dialog A: clid on the first message only, then two without.
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "A1", PHONE, "oi", Some(CLID), *T1),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "A2", PHONE, "tudo bem?", None, *T2),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "A3", PHONE, "alô?", None, *T2 + 10),
    )
    .await;
    // Dialog B: never came from an ad.
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "B1", "5511888888888", "hello", None, *T1),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "B2", "5511888888888", "price?", None, *T2),
    )
    .await;

    eventually("two success rows", WAIT, || async {
        (successes(&env).await == 2).then_some(())
    })
    .await;
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM dialog_analysis WHERE ctwa_clid = 'ARAkLkA8rmlFeiCktEJQ'"
        )
        .await,
        1
    );
    let events = meta_events(&meta).await;
    assert_eq!(events.len(), 2);
    let by_phone = |phone: &str| {
        events
            .iter()
            .find(|e| e["user_data"]["ph"][0] == sha256_hex(phone))
            .cloned()
            .expect("event for phone")
    };
    let a = by_phone(PHONE);
    assert_eq!(
        (
            a["action_source"].as_str(),
            a["user_data"]["ctwa_clid"].as_str()
        ),
        (Some("business_messaging"), Some(CLID))
    );
    let b = by_phone("5511888888888");
    assert_eq!(b["action_source"], "other");
    assert!(b.get("messaging_channel").is_none(), "{b}");
    assert!(b["user_data"].get("ctwa_clid").is_none(), "{b}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_error_is_logged_with_its_message_and_sets_no_flag() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    let error = json!({"error": {"message": "Invalid parameter", "type": "OAuthException", "code": 100,
        "error_subcode": 2804066, "error_user_msg": "Messaging Event Invalid Event Type", "fbtrace_id": "Xy1"}});
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(error.clone()))
        .expect(1)
        .mount(&meta)
        .await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M1", PHONE, "oi", Some(CLID), *T1),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M2", PHONE, "preço?", None, *T2),
    )
    .await;

    let rows = eventually("an error row", WAIT, || async {
        let rows = log_rows(&env).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    settle().await;
    assert_eq!(rows.len(), 1, "a permanent error is not retried: {rows:?}");
    assert_eq!(rows[0]["status"], "error");
    assert_eq!(rows[0]["error_message"], "Invalid parameter");
    assert_eq!(rows[0]["http_status"], 400);
    assert_eq!(rows[0]["response"], error);
    let dialog = dialog_ids(&env).await[0];
    let mut conn = env.conn().await;
    let flags = storage::deliveries::sent_flags(&mut conn, dialog)
        .await
        .expect("query")
        .expect("dialog");
    assert!(!flags.capi_interest_sent);
    assert_eq!(flags.capi_interest_event_id, None);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_down_for_a_while_then_up_gets_the_event_once() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream unavailable"))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&meta)
        .await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M1", PHONE, "oi", Some(CLID), *T1),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M2", PHONE, "preço?", None, *T2),
    )
    .await;

    eventually("the event arrives", WAIT, || async {
        (successes(&env).await == 1).then_some(())
    })
    .await;
    settle().await;
    let bodies = meta_bodies(&meta).await;
    assert_eq!(bodies.len(), 3, "two refused attempts, then one accepted");
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "every retry sends the same event"
    );
    let statuses: Vec<String> = log_rows(&env)
        .await
        .iter()
        .map(|r| format!("{}:{}", r["status"], r["attempt"]))
        .collect();
    assert_eq!(
        statuses,
        vec![r#""error":1"#, r#""error":2"#, r#""success":3"#]
    );
    assert_eq!(successes(&env).await, 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_of_each_stage_still_send_each_event_once() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.replicas = 2;
    let p = Pipeline::start(&env, &opts).await;
    let phones: Vec<String> = (0..6).map(|i| format!("55119000000{i:02}")).collect();
    for (i, phone) in phones.iter().enumerate() {
        post_ok(
            &p,
            &s,
            &customer_message(&s.instance, &format!("X{i}a"), phone, "oi", Some(CLID), *T1),
        )
        .await;
        post_ok(
            &p,
            &s,
            &customer_message(&s.instance, &format!("X{i}b"), phone, "preço?", None, *T2),
        )
        .await;
    }
    // Replays of the later stages' messages, as a crash or a double publish would cause.
    let bus = env.bus();
    eventually("six successes", WAIT, || async {
        (successes(&env).await == 6).then_some(())
    })
    .await;
    for d in dialog_ids(&env).await {
        let ready = bus::messages::DialogReady {
            dialog_id: d,
            seq: 2,
        };
        let queued = bus::messages::CapiEventQueued {
            dialog_id: d,
            level: Level::Interest,
            event_id: event_id(d, Level::Interest),
        };
        bus.publish_message(&ready).await.expect("publish");
        bus.publish_message(&queued).await.expect("publish");
    }
    settle().await;
    let events = meta_events(&meta).await;
    assert_eq!(events.len(), 6, "one event per dialog reached Meta");
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| e["event_id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    assert_eq!(successes(&env).await, 6);
    bus.close().await;
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directions_that_cannot_send_send_nothing() {
    let env = TestEnv::new().await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let disabled = seed(
        &env,
        &SeedOptions {
            capi_enabled: false,
            ..Default::default()
        },
    )
    .await;
    let no_pixel = seed(
        &env,
        &SeedOptions {
            pixel: None,
            ..Default::default()
        },
    )
    .await;
    let unmapped = seed(
        &env,
        &SeedOptions {
            map_instance: false,
            ..Default::default()
        },
    )
    .await;
    let no_token = seed(
        &env,
        &SeedOptions {
            ad_account_token: None,
            ..Default::default()
        },
    )
    .await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    for s in [&disabled, &no_pixel, &unmapped, &no_token] {
        post_ok(
            &p,
            s,
            &customer_message(&s.instance, "M1", PHONE, "oi", Some(CLID), *T1),
        )
        .await;
        post_ok(
            &p,
            s,
            &customer_message(&s.instance, "M2", PHONE, "preço?", None, *T2),
        )
        .await;
    }
    // Only the direction without a token gets as far as the sender, which skips it.
    let rows = eventually("a skipped row", WAIT, || async {
        let rows = log_rows(&env).await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    settle().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["status"].as_str(), rows[0]["reason"].as_str()),
        (Some("skipped"), Some("no_access_token"))
    );
    assert_eq!(rows[0]["direction_id"], json!(no_token.direction_id));
    assert!(meta_bodies(&meta).await.is_empty());
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
async fn the_user_account_token_is_the_fallback() {
    let env = TestEnv::new().await;
    let s = seed(
        &env,
        &SeedOptions {
            ad_account_token: None,
            user_token: Some("EAAB-user-token"),
            ..Default::default()
        },
    )
    .await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M1", PHONE, "oi", Some(CLID), *T1),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M2", PHONE, "preço?", None, *T2),
    )
    .await;
    eventually("sent", WAIT, || async {
        (successes(&env).await == 1).then_some(())
    })
    .await;
    assert_eq!(
        meta_bodies(&meta).await[0]["access_token"],
        "EAAB-user-token"
    );
    p.stop().await;
}

/// What Meta would refuse never leaves: a direction whose name for the
/// click-id path is off Meta's business-messaging list (here the old
/// default `Lead`) has its click-attributed event skipped and logged
/// (`event_name_not_allowed`), while a dialog without a click id goes out
/// as `action_source: other` under the standard name and Meta's rules take
/// it. A direction without its WABA id skips click events (`no_waba`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_fields_meta_refuses_are_never_sent() {
    use diesel_async::SimpleAsyncConnection;
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    env.conn()
        .await
        .batch_execute(&format!(
            "UPDATE account_directions SET event_name_interest = 'Lead' WHERE id = '{}'",
            s.direction_id
        ))
        .await
        .unwrap();
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    // From the ad (a click id), and a customer who wrote on their own.
    for (id, phone, clid) in [("A", PHONE, Some(CLID)), ("B", "5511988887777", None)] {
        post_ok(
            &p,
            &s,
            &customer_message(&s.instance, &format!("{id}1"), phone, "Oi", clid, *T1),
        )
        .await;
        post_ok(
            &p,
            &s,
            &customer_message(&s.instance, &format!("{id}2"), phone, "Preço?", None, *T2),
        )
        .await;
    }
    let rows = eventually("two audit rows", WAIT, || async {
        let rows = log_rows(&env).await;
        (rows.len() >= 2).then_some(rows)
    })
    .await;
    settle().await;
    let by_status: Vec<(String, String, String)> = log_rows(&env)
        .await
        .iter()
        .map(|r| {
            (
                r["status"].as_str().unwrap().to_owned(),
                r["reason"].as_str().unwrap_or("").to_owned(),
                r["event_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        by_status.contains(&(
            "skipped".into(),
            "event_name_not_allowed".into(),
            "Lead".into()
        )),
        "{by_status:?}"
    );
    assert!(
        by_status.contains(&("success".into(), "".into(), "Lead".into())),
        "{by_status:?}"
    );
    let events = meta_events(&meta).await;
    assert_eq!(
        events.len(),
        1,
        "only the event without a click id: {events:?}"
    );
    assert_eq!(events[0]["action_source"], "other");
    assert_eq!(events[0]["event_name"], "Lead");
    assert!(events[0]["user_data"].get("ctwa_clid").is_none());

    // The same direction back on Meta's names but without its WABA id.
    env.conn()
        .await
        .batch_execute(&format!(
            "UPDATE account_directions SET event_name_interest = 'LeadSubmitted', whatsapp_business_account_id = NULL
               WHERE id = '{}'",
            s.direction_id
        ))
        .await
        .unwrap();
    let other_phone = "5511977776666";
    post_ok(
        &p,
        &s,
        &customer_message(
            &s.instance,
            "C1",
            other_phone,
            "Oi",
            Some("ARsecondClick"),
            *T1,
        ),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "C2", other_phone, "Preço?", None, *T2),
    )
    .await;
    eventually("a third audit row", WAIT, || async {
        (log_rows(&env).await.len() >= 3).then_some(())
    })
    .await;
    let third = log_rows(&env).await.pop().unwrap();
    assert_eq!(
        (third["status"].as_str(), third["reason"].as_str()),
        (Some("skipped"), Some("no_waba")),
        "{third}"
    );
    assert_eq!(
        meta_events(&meta).await.len(),
        1,
        "nothing more reached Meta"
    );
    p.stop().await;
}
