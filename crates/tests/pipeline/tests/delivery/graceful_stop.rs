//! SIGTERM (the stop token) costs nothing: a stopping capi-sender finishes
//! and records the request it has out and hands back the events it had not
//! sent; a stopping chatbot-service hands back the messages it holds. In
//! both cases another process finishes the work, and Meta gets each event
//! exactly once.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use bus::messages::{BusMessage, CapiEventQueued, encode};
use chrono::Utc;
use domain::level::Level;
use pipeline_tests::{
    Pipeline, PipelineOptions, SeedOptions, TestEnv, count, customer_message, dialog_ids,
    eventually, meta_accepts, post_ok, recent, seed,
    wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers},
};
use runtime::{CancellationToken, Runtime};
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
/// A stop that waited for a lingering batch or a held message would take
/// the consumer's whole drain (20 s); handing back takes well under this.
const QUICK_STOP: Duration = Duration::from_secs(10);

/// The event ids in every request Meta received, in order.
async fn event_ids_at_meta(meta: &MockServer) -> Vec<Vec<domain::ids::EventId>> {
    meta.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r: &Request| {
            let body: Value = serde_json::from_slice(&r.body).expect("JSON body");
            body["data"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|e| e["event_id"].as_str().unwrap_or_default().into())
                .collect()
        })
        .collect()
}

/// A dialog of the seeded instance reaching level 1 now, as
/// qualification-agent records it: the delivery and its queued message.
async fn reach_lead(env: &TestEnv, instance: &str, phone: &str) -> domain::ids::EventId {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut conn = env.conn().await;
    let dialog = domain::ids::DialogId::from(Uuid::new_v4());
    diesel::sql_query(
        "INSERT INTO dialog_analysis (id, instance_name, contact_key, contact_phone, ctwa_clid) \
         VALUES ($1, $2, $3, $3, 'CLID-' || $3)",
    )
    .bind::<diesel::sql_types::Uuid, _>(dialog)
    .bind::<diesel::sql_types::Text, _>(instance)
    .bind::<diesel::sql_types::Text, _>(phone)
    .execute(&mut conn)
    .await
    .expect("dialog");
    let event_id = domain::capi_event::event_id(dialog, Level::Interest);
    let queued = CapiEventQueued {
        dialog_id: dialog,
        level: Level::Interest,
        event_id: event_id.clone(),
    };
    conn.transaction::<_, storage::DbError, _>(async |c| {
        storage::deliveries::claim_level(c, dialog, Level::Interest, &event_id, Utc::now()).await?;
        storage::outbox::enqueue(c, CapiEventQueued::ROUTING_KEY, &encode(&queued), 0).await?;
        Ok(())
    })
    .await
    .expect("claim");
    event_id
}

async fn start_sender(env: &TestEnv, opts: &PipelineOptions, stop: CancellationToken) -> Runtime {
    capi_sender::build(
        capi_sender::Settings {
            common: env.common(),
            meta: opts.meta_settings(),
        },
        stop,
    )
    .await
    .expect("sender starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_sender_records_its_request_in_flight_and_hands_back_the_events_not_sent() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    // Meta takes 1.5 s to answer: the first request is still out at the stop.
    Mock::given(matchers::method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"events_received": 2, "messages": [], "fbtrace_id": "T"}))
                .set_delay(Duration::from_millis(1500)),
        )
        .mount(&meta)
        .await;
    // Two events fill a batch (sent at once); a third waits for 30 s to fill its own.
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.batch_size = 2;
    opts.linger_ms = 30_000;
    let stop = CancellationToken::new();
    let first = start_sender(&env, &opts, stop.clone()).await;
    let running = tokio::spawn(first.run_until_stopped());

    let sent = [
        reach_lead(&env, &s.instance, "5511900000001").await,
        reach_lead(&env, &s.instance, "5511900000002").await,
    ];
    eventually("the first request at Meta", WAIT, || async {
        (event_ids_at_meta(&meta).await.len() == 1).then_some(())
    })
    .await;
    let waiting = reach_lead(&env, &s.instance, "5511900000003").await;
    let leased = format!(
        "SELECT count(*) AS n FROM capi_deliveries WHERE event_id = '{waiting}' AND attempts = 1 AND lease_until > now()"
    );
    eventually("the third event leased, in its batch", WAIT, || async {
        (count(&env, &leased).await == 1).then_some(())
    })
    .await;

    stop.cancel();
    tokio::time::timeout(QUICK_STOP, running)
        .await
        .expect("the sender stops without waiting for the lingering batch")
        .expect("joined")
        .expect("clean stop");

    // The request that was out finished and is recorded.
    let mut at_meta = event_ids_at_meta(&meta).await;
    assert_eq!(at_meta.len(), 1, "no request after the stop");
    at_meta[0].sort();
    let mut expected = sent.to_vec();
    expected.sort();
    assert_eq!(at_meta[0], expected);
    for id in &sent {
        assert_eq!(
            count(&env, &format!("SELECT count(*) AS n FROM capi_deliveries WHERE event_id = '{id}' AND status = 'success' AND sending_at IS NULL AND lease_until IS NULL")).await,
            1,
            "{id} closed as sent"
        );
    }
    // The unsent one is free again, its attempt not counted.
    assert_eq!(
        count(&env, &format!("SELECT count(*) AS n FROM capi_deliveries WHERE event_id = '{waiting}' AND status = 'pending' AND attempts = 0 AND lease_until IS NULL AND sending_at IS NULL")).await,
        1,
        "the unsent event's lease is handed back"
    );

    // Its message went back to the queue: another sender delivers it.
    opts.linger_ms = 50;
    let stop = CancellationToken::new();
    let second = start_sender(&env, &opts, stop.clone()).await;
    let running = tokio::spawn(second.run_until_stopped());
    eventually("the handed-back event at Meta", WAIT, || async {
        (event_ids_at_meta(&meta).await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(event_ids_at_meta(&meta).await[1], vec![waiting.clone()]);
    let once_each =
        "SELECT count(*) AS n FROM capi_deliveries WHERE status = 'success' AND attempts = 1";
    eventually(
        "three events recorded as sent, each on its first counted attempt",
        WAIT,
        || async { (count(&env, once_each).await == 3).then_some(()) },
    )
    .await;
    stop.cancel();
    running.await.expect("joined").expect("clean stop");
    assert_eq!(
        event_ids_at_meta(&meta).await.concat().len(),
        3,
        "no event twice"
    );
}

/// The sum of a metric's samples on a service's `/metrics`.
async fn metric(port: u16, name: &str) -> f64 {
    pipeline_tests::metrics_text(port)
        .await
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_chatbot_hands_its_held_messages_to_the_next_replica() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    // The first pipeline holds each burst for 30 s.
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.buffer_delay_ms = 30_000;
    let first = Pipeline::start(&env, &opts).await;
    let phone = "5511900000042";
    for (i, clid) in [(0, Some("CLID-42")), (1, None)] {
        let body = customer_message(
            &s.instance,
            &format!("held-{i}"),
            phone,
            "oi",
            clid,
            recent(5 - i),
        );
        post_ok(&first, &s, &body).await;
    }
    let chatbot = first.chatbot_ports[0];
    eventually("both messages held", WAIT, || async {
        (metric(chatbot, "capi_chatbot_buffered_messages").await == 2.0).then_some(())
    })
    .await;

    tokio::time::timeout(QUICK_STOP, first.stop())
        .await
        .expect("the services stop without waiting out the buffer");
    assert!(
        meta.received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "nothing was sent before the stop"
    );

    // The next replica takes the messages back from the queue; their delay
    // has long run out by its clock, so it flushes and the Lead goes out.
    opts.buffer_delay_ms = 300;
    let second = Pipeline::start(&env, &opts).await;
    let dialog = dialog_ids(&env).await[0];
    let lead = domain::capi_event::event_id(dialog, Level::Interest);
    eventually("the Lead at Meta", WAIT, || async {
        let ids = event_ids_at_meta(&meta).await.concat();
        (!ids.is_empty()).then_some(ids)
    })
    .await;
    // Give a stray second flush time to show up, then check there was none.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(event_ids_at_meta(&meta).await.concat(), vec![lead]);
    second.stop().await;
}
