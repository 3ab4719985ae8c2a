//! The whole pipeline against the Meta sandbox, and capi-sender's metrics.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use pipeline_tests::{
    Pipeline, PipelineOptions, SeedOptions, TestEnv, count, customer_message, get_json,
    post_webhook, recent, seed,
};
use sandbox::{Faults, Sandbox};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_at_the_sandbox_once_each_and_metrics_count_them() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let sandbox_port = listener.local_addr().expect("addr").port();
    // One request in three fails: the sender must retry without doubling anything.
    let faults = Faults {
        error_rate: 0.34,
        latency_ms: 20,
        ..Faults::default()
    };
    let server =
        sandbox::serve(listener, actix_web::web::Data::new(Sandbox::new(faults))).expect("sandbox");
    let handle = server.handle();
    tokio::spawn(server);
    let mut opts = PipelineOptions::new(&format!("http://127.0.0.1:{sandbox_port}"));
    opts.retry_schedule = Some("200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms".into());
    let p = Pipeline::start(&env, &opts).await;
    for i in 0..3 {
        let phone = format!("551190000001{i}");
        for (j, clid) in [(0, Some("CLID-S")), (1, None)] {
            let body = customer_message(
                &s.instance,
                &format!("{phone}-{j}"),
                &phone,
                "oi",
                clid,
                recent(60) + j,
            );
            assert_eq!(
                post_webhook(
                    p.gateway_port,
                    &s.instance,
                    Some(&s.secret),
                    body.to_string().as_bytes()
                )
                .await
                .0,
                200
            );
        }
    }
    pipeline_tests::wait_for_successes(&env, 3, Duration::from_secs(30)).await;
    let (_, stats) = get_json(sandbox_port, "sandbox/stats").await;
    assert_eq!(stats["events_received"], 3, "{stats}");
    assert_eq!(stats["distinct_event_ids"], 3, "{stats}");
    assert_eq!(stats["duplicated_event_ids"], 0, "{stats}");
    let (_, listed) = get_json(sandbox_port, "sandbox/events?pixel_id=1234567890").await;
    let id = listed["events"][0]["event"]["event_id"]
        .as_str()
        .expect("event id")
        .to_owned();
    let (_, one) = get_json(sandbox_port, &format!("sandbox/events/{id}")).await;
    assert_eq!(one["count"], 1);

    let scrape = pipeline_tests::metrics_text;
    // Every service: its own metrics and the shared ones.
    let gateway = scrape(p.gateway_port).await;
    assert!(
        gateway.contains(r#"capi_http_requests_total{route="/webhooks/evolution/{instance}",method="POST",status="200"} 6"#),
        "{gateway}"
    );
    assert!(
        gateway.contains(
            r#"capi_http_request_duration_seconds_count{route="/webhooks/evolution/{instance}"} 6"#
        ),
        "{gateway}"
    );
    let qualification = scrape(p.qualification_ports[0]).await;
    assert!(
        qualification.contains(
            r#"capi_levels_claimed_total{level="interest",by="two customer messages"} 3"#
        ),
        "{qualification}"
    );
    let chatbot = scrape(p.chatbot_ports[0]).await;
    assert!(
        chatbot.contains("capi_chatbot_buffered_messages 0"),
        "{chatbot}"
    );
    for shared in [
        "capi_outbox_rows",
        "capi_outbox_oldest_seconds",
        "capi_queue_ready_messages",
        "capi_queue_dead_lettered_messages",
    ] {
        for (name, text) in [
            ("gateway", &gateway),
            ("qualification", &qualification),
            ("chatbot", &chatbot),
        ] {
            assert!(text.contains(shared), "{name} has {shared}: {text}");
        }
    }
    let metrics = scrape(p.sender_ports[0]).await;
    assert!(
        metrics.contains(r#"capi_events_total{outcome="sent"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains("capi_batch_size_bucket"), "{metrics}");
    assert!(
        metrics.contains("capi_meta_latency_seconds_count"),
        "{metrics}"
    );
    assert!(
        metrics.contains("capi_queue_lag_seconds_count"),
        "{metrics}"
    );
    let retries = count(
        &env,
        "SELECT count(*) AS n FROM capi_events_log WHERE status = 'error'",
    )
    .await;
    assert!(
        metrics.contains(&format!("capi_retries_total {retries}")),
        "retries counted ({retries} error rows): {metrics}"
    );
    p.stop().await;
    handle.stop(true).await;
}

/// The local setup `scripts/run` makes: the sandbox is Meta, the bot's model
/// and Evolution API at once; a customer's burst gets the model's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_answers_as_the_bots_model_and_records_its_whatsapp_messages() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let mut conn = env.conn().await;
    storage::directions::set_instance_bot(
        &mut conn,
        &env.keys(),
        &s.instance,
        Some("evo-key"),
        Some(domain::evolution::ApiVersion::V1),
        None,
    )
    .await
    .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = sandbox::serve(
        listener,
        actix_web::web::Data::new(Sandbox::new(Faults::default())),
    )
    .expect("sandbox");
    let handle = server.handle();
    tokio::spawn(server);
    let base = format!("http://127.0.0.1:{port}");
    let mut opts = PipelineOptions::new(&base);
    opts.bot = Some(pipeline_tests::BotOptions::new(
        &format!("{base}/v1"),
        &base,
    ));
    let p = Pipeline::start(&env, &opts).await;
    for (i, text) in ["Oi", "Quero marcar uma avaliação"].iter().enumerate() {
        let body = customer_message(
            &s.instance,
            &format!("S{i}"),
            "5511988887777",
            text,
            None,
            recent(2) + i as i64,
        );
        pipeline_tests::post_ok(&p, &s, &body).await;
    }
    let sent = pipeline_tests::eventually(
        "the bot's message at the sandbox",
        Duration::from_secs(30),
        || async {
            let (_, sent) = get_json(
                port,
                &format!("sandbox/whatsapp/sent?instance={}", s.instance),
            )
            .await;
            (sent["total"] == 1).then_some(sent)
        },
    )
    .await;
    let m = &sent["messages"][0];
    assert_eq!(m["number"], "5511988887777");
    assert_eq!(
        m["text"],
        sandbox::assistant::answer(&[
            serde_json::json!({"role": "user", "content": "Quero marcar uma avaliação"})
        ])
    );
    // The reply is recorded right after Evolution API took it, not before:
    // give that transaction its moment.
    const BOT_ROWS: &str =
        "SELECT count(*) AS n FROM dialog_messages WHERE author = 'bot' AND message_id LIKE 'SB%'";
    pipeline_tests::eventually(
        "the bot's message is stored",
        Duration::from_secs(10),
        || async { (count(&env, BOT_ROWS).await >= 1).then_some(()) },
    )
    .await;
    assert_eq!(count(&env, BOT_ROWS).await, 1);
    // Evolution's rules: no apikey → 401; no text → 400.
    let client = reqwest::Client::new();
    let url = format!("{base}/message/sendText/{}", s.instance);
    let r = client
        .post(&url)
        .json(&serde_json::json!({"number": "1", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = client
        .post(&url)
        .header("apikey", "k")
        .json(&serde_json::json!({"number": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    p.stop().await;
    handle.stop(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_cloud_api_records_texts_and_refuses_what_meta_would() {
    let sb = pipeline_tests::SandboxServer::start().await;
    let client = reqwest::Client::new();
    let url = format!(
        "{}/{}/1204727649384372/messages",
        sb.url,
        meta_graph::DEFAULT_GRAPH_VERSION
    );
    let text = serde_json::json!({"messaging_product": "whatsapp", "recipient_type": "individual",
        "to": "16505551234", "type": "text", "text": {"preview_url": false, "body": "Hello"}});
    let r = client.post(&url).json(&text).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 190);
    let r = client
        .post(&url)
        .bearer_auth("EAAG-token")
        .json(&serde_json::json!({"messaging_product": "whatsapp", "to": "1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client
        .post(&url)
        .bearer_auth("EAAG-token")
        .json(&text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["messages"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("wamid.")
    );
    let sent: serde_json::Value = client
        .get(format!(
            "{}/sandbox/whatsapp/sent?instance=cloud-1204727649384372",
            sb.url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sent["total"], 1, "{sent}");
    assert_eq!(sent["messages"][0]["number"], "16505551234");
    assert_eq!(sent["messages"][0]["text"], "Hello");
}
