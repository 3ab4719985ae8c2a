//! webhook-gateway against real PostgreSQL and RabbitMQ: what is stored, and
//! the exact error each bad request gets (with nothing stored).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use pipeline_tests::{
    Pipeline, PipelineOptions, SeedOptions, TestEnv, count, customer_message, post_webhook, seed,
};
use serde_json::json;

async fn stored_messages(env: &TestEnv) -> i64 {
    count(env, "SELECT count(*) AS n FROM dialog_messages").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_their_status_and_a_json_error_and_store_nothing() {
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

    let (status, body) =
        post_webhook(p.gateway_port, &s.instance, Some(&s.secret), b"{not json").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_json")),
        "{body}"
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));

    let (status, body) =
        post_webhook(p.gateway_port, "no-such-instance", Some(&s.secret), &good).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("unknown_instance")),
        "{body}"
    );

    let (status, body) = post_webhook(p.gateway_port, &s.instance, Some("wrong"), &good).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    assert!(
        !body.to_string().contains(&s.secret),
        "the secret must not be echoed"
    );

    let (status, body) = post_webhook(p.gateway_port, &s.instance, None, &good).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );

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
        (400, Some("invalid_payload")),
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
               'phone', d.contact_phone, 'lead_clid', l.ctwa_clid, 'from_ad', d.from_ad) AS d \
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
            "from_ad": true
        })
    );
    p.stop().await;
}
