//! webhook-gateway against real PostgreSQL and RabbitMQ: what is stored, and
//! the exact error each bad request gets (with nothing stored).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use pipeline_tests::{
    Pipeline, PipelineOptions, Seed, SeedOptions, TestEnv, count, customer_message, post_webhook,
    seed,
};
use serde_json::json;

async fn stored_messages(env: &TestEnv) -> i64 {
    count(env, "SELECT count(*) AS n FROM dialog_messages").await
}

/// A running gateway (no Meta behind it), a seeded instance and a valid
/// webhook body for it.
async fn gateway_with_one_instance() -> (TestEnv, Seed, Pipeline, Vec<u8>) {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let good = serde_json::to_vec(&customer_message(
        &s.instance,
        "M1",
        "5511999999999",
        "hi",
        None,
        1_773_449_493,
    ))
    .expect("json");
    (env, s, p, good)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_and_a_json_error_and_store_nothing() {
    let (env, s, p, good) = gateway_with_one_instance().await;

    let (status, body) =
        post_webhook(p.gateway_port, &s.instance, Some(&s.secret), b"{not json").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_body")),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    // An unknown instance, a wrong secret and no secret: the same answer,
    // byte for byte, so a caller without the secret learns nothing.
    let wrong = post_webhook(p.gateway_port, &s.instance, Some("wrong"), &good).await;
    assert_eq!(
        (wrong.0, wrong.1["code"].as_str()),
        (401, Some("unauthorized")),
        "{}",
        wrong.1
    );
    assert!(
        !wrong.1.to_string().contains(&s.secret),
        "the secret must not be echoed"
    );
    let unknown = post_webhook(p.gateway_port, "no-such-instance", Some(&s.secret), &good).await;
    assert_eq!(
        unknown, wrong,
        "an unknown instance answers like a wrong secret"
    );
    let missing = post_webhook(p.gateway_port, &s.instance, None, &good).await;
    assert_eq!(missing, wrong);
    let unknown_no_secret = post_webhook(p.gateway_port, "no-such-instance", None, &good).await;
    assert_eq!(unknown_no_secret, wrong);

    let mut huge = customer_message(
        &s.instance,
        "M2",
        "5511999999999",
        "hi",
        None,
        1_773_449_493,
    );
    huge["data"]["message"]["base64"] = json!("A".repeat(1024 * 1024));
    let (status, body) = post_webhook(
        p.gateway_port,
        &s.instance,
        Some(&s.secret),
        &serde_json::to_vec(&huge).expect("json"),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("payload_too_large")),
        "{body}"
    );

    let other =
        json!({"event": "connection.update", "instance": s.instance, "data": {"state": "open"}});
    let (status, body) = post_webhook(
        p.gateway_port,
        &s.instance,
        Some(&s.secret),
        other.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("ignored")),
        "{body}"
    );

    let no_id = json!({"event": "messages.upsert", "data": {"key": {"remoteJid": "5511999999999@s.whatsapp.net"}}});
    let (status, body) = post_webhook(
        p.gateway_port,
        &s.instance,
        Some(&s.secret),
        no_id.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_body")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("data.key.id")),
        "{body}"
    );

    assert_eq!(
        stored_messages(&env).await,
        0,
        "no bad request may store anything"
    );
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM dialog_analysis").await,
        0
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_stored_once_with_the_click_id_kept_and_groups_ignored() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let first = customer_message(
        &s.instance,
        "M1",
        "5511999999999",
        "Olá, vi o anúncio",
        Some("ARAkLkA8rmlFeiCktEJQ"),
        1_773_449_493,
    );
    let first = serde_json::to_vec(&first).expect("json");

    let (status, body) = post_webhook(p.gateway_port, &s.instance, Some(&s.secret), &first).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("stored")),
        "{body}"
    );
    // Evolution retries and duplicates webhooks: the same message is stored once.
    let (status, body) = post_webhook(p.gateway_port, &s.instance, Some(&s.secret), &first).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("duplicate")),
        "{body}"
    );

    // The secret may come as ?token= for senders that cannot set headers.
    let later = customer_message(
        &s.instance,
        "M2",
        "5511999999999",
        "quanto custa?",
        None,
        1_773_449_600,
    );
    let resp = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/webhooks/evolution/{}?token={}",
            p.gateway_port, s.instance, s.secret
        ))
        .json(&later)
        .send()
        .await
        .expect("gateway");
    assert_eq!(resp.status().as_u16(), 200);

    // The business answering from the phone: stored as outgoing.
    let mut from_phone = customer_message(
        &s.instance,
        "M3",
        "5511999999999",
        "Olá! Como podemos ajudar?",
        None,
        1_773_449_700,
    );
    from_phone["data"]["key"]["fromMe"] = json!(true);
    let (status, _) = post_webhook(
        p.gateway_port,
        &s.instance,
        Some(&s.secret),
        from_phone.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    let mut group = customer_message(
        &s.instance,
        "G1",
        "5511999999999",
        "hi all",
        None,
        1_773_449_493,
    );
    group["data"]["key"]["remoteJid"] = json!("120363025246125888@g.us");
    let (status, body) = post_webhook(
        p.gateway_port,
        &s.instance,
        Some(&s.secret),
        group.to_string().as_bytes(),
    )
    .await;
    assert_eq!(
        (status, body["status"].as_str(), body["reason"].as_str()),
        (200, Some("ignored"), Some("group"))
    );

    assert_eq!(stored_messages(&env).await, 3);
    let dialog = {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName, Debug)]
        struct D {
            #[diesel(sql_type = diesel::sql_types::Jsonb)]
            d: serde_json::Value,
        }
        let mut conn = env.conn().await;
        let r: D = diesel::sql_query(
            "SELECT jsonb_build_object('ctwa_clid', d.ctwa_clid, 'incoming', d.incoming_count, 'outgoing', d.outgoing_count, \
               'last_message', extract(epoch FROM d.last_message)::bigint, 'direction_id', d.direction_id, \
               'phone', d.contact_phone, 'lead_clid', l.ctwa_clid, 'from_ad', d.from_ad, \
               'ad_id', d.ad_id, 'lead_ad_id', l.source_ad_id) AS d \
             FROM dialog_analysis d JOIN leads l ON l.id = d.lead_id",
        )
        .get_result(&mut conn)
        .await
        .expect("one dialog");
        r.d
    };
    assert_eq!(
        dialog,
        json!({
            "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ",
            "lead_clid": "ARAkLkA8rmlFeiCktEJQ",
            "incoming": 2,
            "outgoing": 1,
            "last_message": 1_773_449_700,
            "direction_id": s.direction_id,
            "phone": "5511999999999",
            "from_ad": true,
            "ad_id": "120239177205810192",
            "lead_ad_id": "120239177205810192"
        })
    );
    p.stop().await;
}

/// Raw HTTP on a socket: what a slow or careless sender does.
async fn raw_exchange(port: u16, head: &str, body_part: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    sock.write_all(head.as_bytes()).await.expect("head");
    sock.write_all(body_part).await.expect("body");
    let mut answer = Vec::new();
    // The gateway answers and closes; a hung gateway fails the test here.
    tokio::time::timeout(
        pipeline_tests::GATEWAY_BODY_TIMEOUT * 5,
        sock.read_to_end(&mut answer),
    )
    .await
    .expect("the gateway cut the slow sender off")
    .ok();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_content_types_and_slow_senders_are_cut_off() {
    let (env, s, p, good) = gateway_with_one_instance().await;
    let url = format!(
        "http://127.0.0.1:{}/webhooks/evolution/{}",
        p.gateway_port, s.instance
    );
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut req = reqwest::Client::new()
            .post(&url)
            .header("x-webhook-secret", &s.secret)
            .body(good.clone());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        let resp = req.send().await.expect("gateway answers");
        assert_eq!(resp.status().as_u16(), 415, "{content_type:?}");
        let body: serde_json::Value = resp.json().await.expect("json error");
        assert_eq!(body["code"], "unsupported_media_type", "{body}");
    }
    // A charset parameter is fine.
    let resp = reqwest::Client::new()
        .post(&url)
        .header("x-webhook-secret", &s.secret)
        .header("content-type", "application/json; charset=utf-8")
        .body(good.clone())
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(stored_messages(&env).await, 1);

    // A sender that declares a body and sends half of it, then stalls: 408
    // after the body timeout, nothing stored.
    let slow = customer_message(
        &s.instance,
        "M2",
        "5511999999999",
        "slow",
        None,
        1_773_449_500,
    );
    let slow = serde_json::to_vec(&slow).expect("json");
    let head = format!(
        "POST /webhooks/evolution/{} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         X-Webhook-Secret: {}\r\nContent-Length: {}\r\n\r\n",
        s.instance,
        s.secret,
        slow.len()
    );
    let answer = raw_exchange(p.gateway_port, &head, &slow[..slow.len() / 2]).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");

    // A sender that never finishes its headers is closed too (actix's 5 s
    // request-head timeout).
    let answer = raw_exchange(
        p.gateway_port,
        "POST /webhooks/evolution/x HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        b"",
    )
    .await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert_eq!(
        stored_messages(&env).await,
        1,
        "only the good message is stored"
    );
    p.stop().await;
}
