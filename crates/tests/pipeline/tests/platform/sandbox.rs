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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_insights_sum_ads_up_to_the_level_asked_and_refuse_what_meta_would() {
    let sb = pipeline_tests::SandboxServer::start().await;
    let row = |ad: &str, adset: &str, spend: &str| {
        serde_json::json!({"campaign_id": "c1", "campaign_name": "Spring", "adset_id": adset,
            "adset_name": format!("Set {adset}"), "ad_id": ad, "ad_name": format!("Ad {ad}"),
            "date": "2026-11-30", "spend": spend, "currency": "EUR"})
    };
    sb.put(
        "/sandbox/insights/act_9",
        &serde_json::json!({"rows": [row("1", "s1", "1.25"), row("2", "s1", "2.50"), row("3", "s2", "0.05")]}),
    )
    .await;
    let get = |level: &'static str, fields: &'static str| {
        let url = format!(
            "{}/{}/act_9/insights",
            sb.url,
            meta_graph::DEFAULT_GRAPH_VERSION
        );
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth("EAAB-token")
                .query(&[
                    ("level", level),
                    ("fields", fields),
                    ("time_increment", "1"),
                    (
                        "time_range",
                        r#"{"since":"2026-11-30","until":"2026-11-30"}"#,
                    ),
                ])
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) = get("ad", "ad_id,ad_name,spend").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"][1],
        serde_json::json!({"ad_id": "2", "ad_name": "Ad 2", "spend": "2.50",
            "date_start": "2026-11-30", "date_stop": "2026-11-30"})
    );
    let (_, body) = get("adset", "adset_id,spend").await;
    let sets: Vec<(&str, &str)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["adset_id"].as_str().unwrap(),
                r["spend"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(sets, [("s1", "3.75"), ("s2", "0.05")]);
    let (_, body) = get("campaign", "campaign_id,spend").await;
    assert_eq!(body["data"][0]["spend"], "3.80");
    assert_eq!(body["data"].as_array().map(Vec::len), Some(1));
    let (status, body) = get("creative", "spend").await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)));
    let (status, body) = get("ad", "ad_id,spendd").await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(100)));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("spendd"),
        "{body}"
    );
}
