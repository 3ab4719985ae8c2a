//! A broker outage delays work and loses none of it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use pipeline_tests::{
    FlakyProxy, Pipeline, PipelineOptions, SeedOptions, TestEnv, count, customer_message, get_json,
    post_webhook, seed, wiremock::MockServer,
};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_taken_while_the_broker_is_down_reach_meta_once_it_is_back() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let meta = MockServer::start().await;
    pipeline_tests::meta_accepts(&meta).await;
    let proxy = FlakyProxy::start().await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.amqp_url = Some(proxy.amqp_url());
    let p = Pipeline::start(&env, &opts).await;
    // Let the consumers connect, then take the broker away under them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(get_json(p.gateway_port, "ready").await.0, 200);
    proxy.set_up(false);
    let (status, ready) = get_json(p.gateway_port, "ready").await;
    assert_eq!(
        (status, ready["broker"].as_str()),
        (503, Some("unreachable")),
        "{ready}"
    );
    assert_eq!(
        get_json(p.gateway_port, "health").await.0,
        200,
        "alive, just not ready"
    );

    for (i, clid) in [(1, Some("CLID-OUTAGE")), (2, None)] {
        let body = customer_message(
            &s.instance,
            &format!("M{i}"),
            "5511999999999",
            "oi",
            clid,
            pipeline_tests::recent(300) + i,
        );
        let (status, resp) = post_webhook(
            p.gateway_port,
            &s.instance,
            Some(&s.secret),
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(
            (status, resp["status"].as_str()),
            (200, Some("stored")),
            "the gateway answers without the broker"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM outbox").await,
        2,
        "both messages wait in the outbox"
    );
    assert!(
        meta.received_requests()
            .await
            .unwrap_or_default()
            .is_empty()
    );

    proxy.set_up(true);
    pipeline_tests::wait_for_successes(&env, 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        meta.received_requests().await.unwrap_or_default().len(),
        1,
        "exactly one request at Meta"
    );
    assert_eq!(count(&env, "SELECT count(*) AS n FROM outbox").await, 0);
    p.stop().await;
}

/// The readiness check asks the broker, not the connection's last known
/// state: a socket cut a moment ago reads as connected until its next read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_check_sees_a_cut_connection_at_once_and_a_return_too() {
    let env = TestEnv::new().await;
    let proxy = FlakyProxy::start().await;
    let mut amqp = env.common().amqp;
    amqp.url = proxy.amqp_url();
    let bus = bus::Bus::new(amqp);
    for round in 0..10 {
        assert!(bus.check().await, "round {round}: reachable");
        proxy.set_up(false);
        assert!(!bus.check().await, "round {round}: cut just now");
        proxy.set_up(true);
    }
    assert!(bus.check().await, "back");
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_not_ready_and_wait_until_the_schema_is_migrated() {
    let env = TestEnv::unmigrated().await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let (status, ready) = get_json(p.gateway_port, "ready").await;
    assert_eq!(status, 503);
    assert!(
        ready["database"]
            .as_str()
            .is_some_and(|d| d.contains("capi migrate")),
        "{ready}"
    );
    storage::migrations::run_pending(&env.db_url)
        .await
        .expect("migrate");
    let (status, ready) = get_json(p.gateway_port, "ready").await;
    assert_eq!(
        (status, ready["status"].as_str()),
        (200, Some("ready")),
        "{ready}"
    );
    p.stop().await;
}
