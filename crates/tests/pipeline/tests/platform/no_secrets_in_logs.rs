//! Everything the services log while handling real conversations (an
//! Evolution instance's and a WhatsApp Cloud API number's), read back: no
//! access token, no webhook secret, app secret or verify token, no model or
//! Evolution API key, no raw phone number.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use pipeline_tests::{
    Pipeline, PipelineOptions, SeedOptions, TestEnv, customer_message, seed,
    wiremock::{Mock, MockServer, ResponseTemplate, matchers},
};
use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

/// The Cloud API number and its token; the customer in Meta's example webhook.
const CLOUD_NUMBER_ID: &str = "1204727649384372";
const CLOUD_NUMBER_TOKEN: &str = "EAAG-cloud-number-secret-token";
const CLOUD_CUSTOMER_PHONE: &str = "16505551234";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_token_secret_or_phone() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug,h2=info,hyper=info,lapin=info,amq_protocol=info,reqwest=info")
        .json()
        .with_current_span(true)
        .with_span_list(true)
        .with_writer(move || writer.clone())
        .init();

    let env = TestEnv::new().await;
    let s = seed(
        &env,
        &SeedOptions {
            ad_account_token: Some("EAAB-very-secret-token"),
            ..Default::default()
        },
    )
    .await;
    let meta = MockServer::start().await;
    // One failure first, so the error paths log too.
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(500))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&meta)
        .await;
    pipeline_tests::meta_accepts(&meta).await;
    // The bot too, with its model and Evolution API each failing once.
    let (llm, evolution) = (MockServer::start().await, MockServer::start().await);
    for (server, ok) in [
        (
            &llm,
            ResponseTemplate::new(200).set_body_json(serde_json::json!({
                "choices": [{"message": {"role": "assistant", "content": "Здравствуйте!"}}]
            })),
        ),
        (
            &evolution,
            ResponseTemplate::new(201).set_body_json(serde_json::json!({"key": {"id": "BOT1"}})),
        ),
    ] {
        Mock::given(matchers::method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(server)
            .await;
        Mock::given(matchers::method("POST"))
            .respond_with(ok)
            .mount(server)
            .await;
    }
    let mut conn = env.conn().await;
    storage::directions::set_instance_bot(
        &mut conn,
        &env.keys(),
        &s.instance,
        Some("evo-secret-instance-key"),
        None,
        None,
    )
    .await
    .unwrap();
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.bot = Some(pipeline_tests::BotOptions::new(
        &format!("{}/v1", llm.uri()),
        &evolution.uri(),
    ));
    // Qualification asks the same model, whose chatty answer is no analysis:
    // the malformed-answer path logs too.
    opts.qualification = Some(pipeline_tests::QualificationOptions::new(&format!(
        "{}/v1",
        llm.uri()
    )));
    let p = Pipeline::start(&env, &opts).await;
    let phone = "79161234567";
    let client = reqwest::Client::new();
    for (i, clid) in [(1, Some("CLID-1")), (2, None)] {
        let body = customer_message(
            &s.instance,
            &format!("M{i}"),
            phone,
            "Здравствуйте",
            clid,
            pipeline_tests::recent(300) + i,
        );
        // The secret in the query string this time.
        let resp = client
            .post(format!(
                "http://127.0.0.1:{}/webhooks/evolution/{}?token={}",
                p.gateway_port, s.instance, s.secret
            ))
            .json(&body)
            .send()
            .await
            .expect("gateway");
        assert_eq!(resp.status().as_u16(), 200);
    }
    let wrong = client
        .post(format!(
            "http://127.0.0.1:{}/webhooks/evolution/{}?token=guessed-{}",
            p.gateway_port, s.instance, s.secret
        ))
        .json(&customer_message(
            &s.instance,
            "M3",
            phone,
            "x",
            None,
            pipeline_tests::recent(200),
        ))
        .send()
        .await
        .expect("gateway");
    assert_eq!(wrong.status().as_u16(), 401);
    pipeline_tests::wait_for_successes(&env, 1, Duration::from_secs(30)).await;
    pipeline_tests::eventually("the bot's reply", Duration::from_secs(30), || async {
        let sent = evolution.received_requests().await.unwrap_or_default();
        (sent.len() >= 2).then_some(())
    })
    .await;
    pipeline_tests::eventually("the analysis recorded", Duration::from_secs(30), || async {
        (pipeline_tests::count(&env, "SELECT count(*) AS n FROM qualification_runs").await == 1)
            .then_some(())
    })
    .await;
    // A Cloud API number with its own token: the subscription handshake (right
    // and wrong token), a signed ad click, a forged signature, and the bot's
    // reply through the Cloud API (the fake answers it as Evolution would:
    // the error path logs too).
    storage::cloud_numbers::map(
        &mut conn,
        &env.keys(),
        &storage::cloud_numbers::CloudMapping {
            phone_number_id: CLOUD_NUMBER_ID,
            direction_id: s.direction_id,
            waba_id: None,
            phone_number: Some("+1 555 078 3881"),
            access_token: Some(CLOUD_NUMBER_TOKEN),
            meta_app_id: Some(pipeline_tests::CLOUD_APP_IDS[0]),
        },
    )
    .await
    .unwrap();
    let cloud_url = format!(
        "http://127.0.0.1:{}/webhooks/whatsapp-cloud",
        p.gateway_port
    );
    for token in [pipeline_tests::CLOUD_VERIFY_TOKEN, "guessed-verify-token"] {
        client
            .get(format!(
                "{cloud_url}?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444"
            ))
            .send()
            .await
            .unwrap();
    }
    let click = pipeline_tests::cloud_referral_payload("wamid.NO-LEAK-1", 5);
    for (secret, expected) in [
        (pipeline_tests::CLOUD_APP_SECRETS[0], 200),
        ("forged-app-secret", 401),
    ] {
        let answer = client
            .post(&cloud_url)
            .header("content-type", "application/json")
            .header(
                "X-Hub-Signature-256",
                domain::whatsapp_cloud::sign(secret.as_bytes(), &click),
            )
            .body(click.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), expected);
    }
    pipeline_tests::eventually(
        "the bot's reply through the Cloud API",
        Duration::from_secs(30),
        || async {
            let sent = evolution.received_requests().await.unwrap_or_default();
            sent.iter()
                .any(|r| r.url.path().contains(CLOUD_NUMBER_ID))
                .then_some(())
        },
    )
    .await;
    // The reports service: yesterday's report to Telegram (a 429 first), the
    // spend sync (Meta refusing the token), an API call with a key and one
    // with a wrong key, a dashboard sign-in.
    let sandbox = pipeline_tests::SandboxServer::start().await;
    sandbox
        .put(
            "/sandbox/telegram/faults",
            &serde_json::json!({"fail_next": [429], "retry_after": 1}),
        )
        .await;
    sandbox
        .put(
            "/sandbox/insights/faults",
            &serde_json::json!({"fail_next": [{"status": 400, "code": 190}]}),
        )
        .await;
    let bot_token = "555000:very-secret-bot-token";
    storage::reports::set_account(
        &mut conn,
        &env.keys(),
        s.user_account_id,
        &storage::reports::AccountSettings {
            telegram_chat_id: Some(Some("-42")),
            telegram_bot_token: Some(Some(bot_token)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let api_key = domain::api_key::generate();
    storage::api_keys::create(
        &mut conn,
        s.user_account_id,
        "k",
        &domain::api_key::hash(&api_key),
        "capi_x",
    )
    .await
    .unwrap();
    let reports =
        pipeline_tests::ReportsService::start(&env, pipeline_tests::reports_settings(&sandbox.url))
            .await;
    pipeline_tests::eventually("the report delivered", Duration::from_secs(30), || async {
        (pipeline_tests::count(
            &env,
            "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    pipeline_tests::eventually(
        "the spend sync refused",
        Duration::from_secs(30),
        || async {
            (pipeline_tests::count(
                &env,
                "SELECT count(*) AS n FROM ad_spend_syncs WHERE status = 'failed'",
            )
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    for key in [api_key.as_str(), "capi_wrong-key-000000"] {
        client
            .get(reports.url(&format!(
                "/analytics/capi-stats?user_account_id={}",
                s.user_account_id
            )))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
    }
    let (link, _) = pipeline_tests::reports_settings("x")
        .dashboard_link(s.user_account_id, 0, domain::api_key::Role::Viewer)
        .unwrap();
    let token = link
        .rsplit_once("token=")
        .map(|(_, t)| t.to_owned())
        .unwrap();
    client
        .get(reports.url(&format!("/dashboard/login?token={token}")))
        .send()
        .await
        .unwrap();
    reports.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.stop().await;

    let logs = String::from_utf8(captured.0.lock().map(|b| b.clone()).unwrap_or_default())
        .expect("utf-8 logs");
    assert!(
        logs.contains("CAPI event sent"),
        "the capture works: {} bytes",
        logs.len()
    );
    assert!(logs.contains("Meta unavailable"));
    for line in [
        "bot replied",
        "the model is unavailable",
        "the WhatsApp API is unavailable",
        "Telegram asked to wait",
        "report delivered",
        "ad spend sync failed",
        "[capi-stats] fetching",
    ] {
        assert!(logs.contains(line), "the bot's paths are logged: {line}");
    }
    assert!(
        logs.contains("wamid.NO-LEAK-1"),
        "the Cloud API message is logged (by its id)"
    );
    for secret in [
        "EAAB-very-secret-token",
        &s.secret,
        phone,
        CLOUD_CUSTOMER_PHONE,
        CLOUD_NUMBER_TOKEN,
        pipeline_tests::CLOUD_APP_SECRETS[0],
        pipeline_tests::CLOUD_APP_SECRETS[1],
        pipeline_tests::CLOUD_VERIFY_TOKEN,
        "sk-test-key",
        "evo-secret-instance-key",
        bot_token,
        "very-secret-bot-token",
        &api_key,
        "capi_wrong-key",
        &token,
        pipeline_tests::DASHBOARD_SECRET,
    ] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(
            leaks.is_empty(),
            "{secret:?} leaked into the logs:\n{}",
            leaks.join("\n")
        );
    }
}
