//! WhatsApp Cloud API numbers through the whole pipeline (real PostgreSQL
//! and RabbitMQ): Meta's signed webhooks in at the gateway, the Lead out to
//! a fake Meta, and the bot's replies out to a fake Cloud API that records
//! exactly what it received.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::whatsapp_cloud::sign;
use pipeline_tests::{
    BotOptions, CLOUD_API_VERSION, CLOUD_APP_IDS, CLOUD_APP_SECRETS, CLOUD_VERIFY_TOKEN, Pipeline,
    PipelineOptions, Seed, SeedOptions, TestEnv, cloud_referral_payload as referral_payload, count,
    eventually, meta_accepts, recent, reply_status, seed,
    wiremock::{Mock, MockServer, Request, ResponseTemplate, matchers},
};
use serde_json::{Value, json};
use std::time::Duration;
use storage::cloud_numbers::{self, CloudMapping};

const PHONE_NUMBER_ID: &str = "1204727649384372";
/// `entry[].id` of the docs' example: not the WABA the seeded direction has.
const PAYLOAD_WABA: &str = "102290129340398";
const NUMBER_TOKEN: &str = "EAAG-system-user-token-of-the-number";
const ANSWER: &str = "Hi Sheena! Our succulents start at 12 dollars. Shall I book you a visit?";
const WAIT: Duration = Duration::from_secs(30);

/// The same customer's next message, without the ad's referral.
fn follow_up_payload(message_id: &str, text: &str) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&referral_payload(message_id, 1)).unwrap();
    let m = &mut v["entry"][0]["changes"][0]["value"]["messages"][0];
    m.as_object_mut().unwrap().remove("referral");
    m["text"]["body"] = json!(text);
    serde_json::to_vec(&v).unwrap()
}

/// A text from a customer known only by a business-scoped user id.
fn username_payload(message_id: &str, user_id: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": PAYLOAD_WABA, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Ana", "username": "@ana"}, "user_id": user_id}],
            "messages": [{"from_user_id": user_id, "id": message_id,
                          "timestamp": recent(2).to_string(), "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

fn statuses_payload() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": PAYLOAD_WABA, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": PHONE_NUMBER_ID},
            "statuses": [{"id": "wamid.OUT1", "status": "delivered", "timestamp": recent(1).to_string(),
                          "recipient_id": "16505551234"}]
        }}]}]
    }))
    .unwrap()
}

/// POSTs `body` to the Cloud API endpoint with `signature` as the header.
async fn post_cloud(p: &Pipeline, body: &[u8], signature: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/webhooks/whatsapp-cloud",
            p.gateway_port
        ))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(s) = signature {
        req = req.header("X-Hub-Signature-256", s);
    }
    let resp = req.send().await.expect("gateway reachable");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Signed with the second configured app secret (two Meta apps send here).
async fn post_signed(p: &Pipeline, body: &[u8]) -> Value {
    let (status, answer) =
        post_cloud(p, body, Some(&sign(CLOUD_APP_SECRETS[1].as_bytes(), body))).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

async fn map_number(env: &TestEnv, s: &Seed, token: Option<&str>) {
    let mut conn = env.conn().await;
    cloud_numbers::map(
        &mut conn,
        &env.keys(),
        &CloudMapping {
            phone_number_id: PHONE_NUMBER_ID,
            direction_id: s.direction_id,
            waba_id: None,
            phone_number: Some("+1 555 078 3881"),
            access_token: token,
            meta_app_id: Some(CLOUD_APP_IDS[1]),
        },
    )
    .await
    .expect("map the number");
}

async fn stored_messages(env: &TestEnv) -> i64 {
    count(env, "SELECT count(*) AS n FROM dialog_messages").await
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subscription_handshake_echoes_the_challenge_only_for_the_configured_token() {
    let env = TestEnv::new().await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let get = |query: String| {
        let url = format!(
            "http://127.0.0.1:{}/webhooks/whatsapp-cloud?{query}",
            p.gateway_port
        );
        async move {
            let resp = reqwest::get(url).await.expect("gateway reachable");
            (
                resp.status().as_u16(),
                resp.text().await.unwrap_or_default(),
            )
        }
    };
    let (status, body) = get(format!(
        "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={CLOUD_VERIFY_TOKEN}"
    ))
    .await;
    assert_eq!((status, body.as_str()), (200, "1158201444"));
    let (status, body) =
        get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=guess".into()).await;
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("1158201444") && !body.contains(CLOUD_VERIFY_TOKEN));
    let (status, _) = get(format!(
        "hub.mode=unsubscribe&hub.challenge=1&hub.verify_token={CLOUD_VERIFY_TOKEN}"
    ))
    .await;
    assert_eq!(status, 403);
    let (status, _) = get("hub.mode=subscribe&hub.challenge=1".into()).await;
    assert_eq!(status, 403);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_signature_over_the_exact_bytes_is_accepted_and_repeats_store_nothing() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    map_number(&env, &s, None).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let body = referral_payload("wamid.SIGNATURE-CHECK", 5);

    // A wrong secret, a signature over the re-serialised JSON, no header,
    // a header that is not sha256=: 401 with the same error, nothing stored.
    let reserialised =
        serde_json::to_vec(&serde_json::from_slice::<Value>(&body).unwrap()).unwrap();
    assert_ne!(reserialised, body);
    for signature in [
        Some(sign(b"the-secret-of-another-app", &body)),
        Some(sign(CLOUD_APP_SECRETS[0].as_bytes(), &reserialised)),
        None,
        Some(sign(CLOUD_APP_SECRETS[0].as_bytes(), &body).replace("sha256=", "sha1=")),
    ] {
        let (status, answer) = post_cloud(&p, &body, signature.as_deref()).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (401, Some("unauthorized")),
            "{signature:?}: {answer}"
        );
        assert!(
            answer["message"]
                .as_str()
                .unwrap()
                .contains("X-Hub-Signature-256")
        );
    }
    assert_eq!(stored_messages(&env).await, 0);
    assert_eq!(count(&env, "SELECT count(*) AS n FROM outbox").await, 0);

    // Correctly signed, but by the other configured app: the number is
    // mapped under CLOUD_APP_IDS[1], so app 0 cannot speak for it.
    let (status, answer) = post_cloud(
        &p,
        &body,
        Some(&sign(CLOUD_APP_SECRETS[0].as_bytes(), &body)),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized")),
        "{answer}"
    );
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not signed by the Meta app this number is mapped under")
    );
    assert_eq!(stored_messages(&env).await, 0);
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM whatsapp_phone_numbers WHERE waba_id IS NOT NULL"
        )
        .await,
        0,
        "the refused webhook changed nothing of the number"
    );

    // The same payload three times (Meta retries for days): one message.
    let first = post_signed(&p, &body).await;
    assert_eq!(first["results"][0]["status"], "stored", "{first}");
    for _ in 0..2 {
        let again = post_signed(&p, &body).await;
        assert_eq!(again["results"][0]["status"], "duplicate", "{again}");
    }
    assert_eq!(stored_messages(&env).await, 1);

    // Statuses only: acknowledged, nothing stored.
    let statuses = post_signed(&p, &statuses_payload()).await;
    assert_eq!(statuses["status"], "ignored", "{statuses}");
    assert_eq!(stored_messages(&env).await, 1);

    // Signed but not JSON / not a messages payload: 400 with the reason.
    let junk = b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[]}]}";
    let (status, answer) =
        post_cloud(&p, junk, Some(&sign(CLOUD_APP_SECRETS[0].as_bytes(), junk))).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_body")),
        "{answer}"
    );
    assert_eq!(answer["message"], "entry[0].id is missing or not a string");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_id_later_seen_with_the_phone_joins_the_phones_dialog() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    map_number(&env, &s, None).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let user_id = "US.13491208655302741918";
    post_signed(
        &p,
        &username_payload("wamid.USER-ONLY", user_id, "Do you deliver?"),
    )
    .await;
    // The same person's next message carries the phone and the user id.
    let mut v: Value =
        serde_json::from_slice(&follow_up_payload("wamid.BOTH", "To Lisbon?")).unwrap();
    let value = &mut v["entry"][0]["changes"][0]["value"];
    value["contacts"][0]["user_id"] = json!(user_id);
    value["messages"][0]["from_user_id"] = json!(user_id);
    post_signed(&p, &serde_json::to_vec(&v).unwrap()).await;
    assert_eq!(
        pipeline_tests::query_json(
            &env,
            "SELECT jsonb_agg(jsonb_build_object('key', d.contact_key, 'lid', d.contact_lid, 'incoming', d.incoming_count, \
               'messages', (SELECT count(*) FROM dialog_messages m WHERE m.dialog_id = d.id))) AS v \
             FROM dialog_analysis d"
        )
        .await,
        json!([{"key": "16505551234", "lid": user_id, "incoming": 2, "messages": 2}])
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ad_click_reaches_lead_with_the_click_id_and_the_waba_from_the_payload() {
    let env = TestEnv::new().await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let s = seed(&env, &SeedOptions::default()).await;
    map_number(&env, &s, None).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    post_signed(&p, &referral_payload("wamid.AD-CLICK-1", 5)).await;
    post_signed(
        &p,
        &follow_up_payload("wamid.AD-CLICK-2", "How much is delivery?"),
    )
    .await;

    let lead = eventually("the Lead reaches Meta", WAIT, || async {
        let reqs = requests(&meta).await;
        reqs.first()
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
    })
    .await;
    let event = &lead["data"][0];
    assert_eq!(event["event_name"], "LeadSubmitted", "{lead}");
    assert_eq!(event["action_source"], "business_messaging");
    assert_eq!(event["messaging_channel"], "whatsapp");
    let user_data = &event["user_data"];
    assert_eq!(user_data["whatsapp_business_account_id"], PAYLOAD_WABA);
    assert_eq!(
        user_data["ctwa_clid"],
        "Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0NiNhEgpGo0AHemvuSoifXaytfTzcchptiErTKCqTrJ5nW1h7IHYeYymGb5K5J5iTROpBhWAGaIAeUzHL50"
    );
    // The phone leaves hashed: SHA-256 of its digits.
    let hashed = domain::normalize::hash_for_meta(
        domain::normalize::UserDataKey::Phone,
        "16505551234",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(user_data["ph"], json!([hashed]));
    assert!(!lead.to_string().contains("16505551234"));

    // The dialog: on the number's instance, in the direction, from the ad.
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM dialog_analysis WHERE instance_name = 'cloud-{PHONE_NUMBER_ID}' \
                 AND contact_phone = '16505551234' AND contact_name = 'Sheena Nelson' AND from_ad \
                 AND ctwa_clid LIKE 'Aff-n8ZT%' AND direction_id = '{}' \
                 AND ad_context->'referral'->>'source_id' = '120226305854810726' \
                 AND ad_id = '120226305854810726'",
                s.direction_id
            )
        )
        .await,
        1
    );
    // The number learnt its WABA from the webhook.
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) AS n FROM whatsapp_phone_numbers WHERE phone_number_id = '{PHONE_NUMBER_ID}' AND waba_id = '{PAYLOAD_WABA}' AND channel = 'cloud_api'")
        )
        .await,
        1
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_number_nobody_mapped_keeps_its_messages_until_it_is_mapped() {
    let env = TestEnv::new().await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let s = seed(&env, &SeedOptions::default()).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    let answer = post_signed(&p, &referral_payload("wamid.BEFORE-MAPPING", 5)).await;
    assert_eq!(answer["results"][0]["status"], "stored", "{answer}");
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM dialog_analysis WHERE direction_id IS NULL AND ctwa_clid IS NOT NULL").await,
        1
    );
    map_number(&env, &s, None).await;
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM dialog_analysis WHERE direction_id = '{}'",
                s.direction_id
            )
        )
        .await,
        1
    );
    p.stop().await;
}

fn cloud_accepts(wamid: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": "16505551234", "wa_id": "16505551234"}],
        "messages": [{"id": wamid}]
    }))
}

struct BotFakes {
    llm: MockServer,
    cloud: MockServer,
}

async fn start_with_bot(env: &TestEnv, max_message_age: &str) -> (BotFakes, Seed, Pipeline) {
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let f = BotFakes {
        llm: MockServer::start().await,
        cloud: MockServer::start().await,
    };
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50}
        })))
        .mount(&f.llm)
        .await;
    let s = seed(env, &SeedOptions::default()).await;
    map_number(env, &s, Some(NUMBER_TOKEN)).await;
    let mut opts = PipelineOptions::new(&meta.uri());
    let mut bot = BotOptions::new(&format!("{}/v1", f.llm.uri()), "");
    bot.cloud_api_url = f.cloud.uri();
    bot.max_message_age = max_message_age.into();
    opts.bot = Some(bot);
    let p = Pipeline::start(env, &opts).await;
    (f, s, p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bot_replies_through_the_cloud_api_with_the_numbers_token() {
    let env = TestEnv::new().await;
    let (f, _s, p) = start_with_bot(&env, "10m").await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path(format!(
            "/{CLOUD_API_VERSION}/{PHONE_NUMBER_ID}/messages"
        )))
        .respond_with(cloud_accepts("wamid.BOT-REPLY-1"))
        .mount(&f.cloud)
        .await;
    post_signed(&p, &referral_payload("wamid.ASKS-1", 2)).await;
    eventually("the reply reaches the Cloud API", WAIT, || async {
        (!requests(&f.cloud).await.is_empty()).then_some(())
    })
    .await;

    let sends = requests(&f.cloud).await;
    assert_eq!(sends.len(), 1);
    let auth = sends[0]
        .headers
        .get("authorization")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(auth, format!("Bearer {NUMBER_TOKEN}"));
    let body: Value = serde_json::from_slice(&sends[0].body).unwrap();
    assert_eq!(
        body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
               "type": "text", "text": {"preview_url": false, "body": ANSWER}})
    );
    eventually("the reply is recorded", WAIT, || async {
        (count(&env, "SELECT count(*) AS n FROM dialog_messages WHERE author = 'bot' AND message_id = 'wamid.BOT-REPLY-1'").await == 1).then_some(())
    })
    .await;

    // A customer known only by a user id is answered at that id.
    let user_id = "US.13491208655302741918";
    post_signed(
        &p,
        &username_payload("wamid.USERNAME-1", user_id, "Do you deliver?"),
    )
    .await;
    eventually("the second reply", WAIT, || async {
        (requests(&f.cloud).await.len() == 2).then_some(())
    })
    .await;
    let body: Value = serde_json::from_slice(&requests(&f.cloud).await[1].body).unwrap();
    assert_eq!(body["recipient"], user_id);
    assert!(body.get("to").is_none(), "{body}");
    assert_eq!(
        count(&env, &format!("SELECT count(*) AS n FROM dialog_analysis WHERE contact_key = '{user_id}' AND contact_phone IS NULL AND contact_lid = '{user_id}'")).await,
        1
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_24_hour_window_no_reply_is_attempted_and_metas_refusal_is_not_retried() {
    let env = TestEnv::new().await;
    // Old messages would be answered (max_message_age 48 h) but for the window.
    let (f, _s, p) = start_with_bot(&env, "48h").await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
            "message": "Re-engagement message", "type": "OAuthException", "code": 131047,
            "error_data": {"messaging_product": "whatsapp",
                           "details": "Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
            "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}})))
        .mount(&f.cloud)
        .await;
    post_signed(&p, &referral_payload("wamid.YESTERDAY", 25 * 3600)).await;
    let (status, reason) = eventually("the bot's turn ends", WAIT, || async {
        reply_status(&env).await.filter(|(s, _)| s != "pending")
    })
    .await;
    assert_eq!(
        (status.as_str(), reason.as_deref()),
        ("skipped", Some("outside_24h_window"))
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(requests(&f.cloud).await.is_empty(), "nothing may be sent");
    assert!(
        requests(&f.llm).await.is_empty(),
        "no model call for a reply that cannot go"
    );

    // Within the window by our clock, but Meta says it closed: one try, failed.
    post_signed(&p, &username_payload("wamid.CLOSED", "US.777", "Hello?")).await;
    let (status, reason) = eventually("the refused reply ends", WAIT, || async {
        reply_status(&env)
            .await
            .filter(|(s, _)| s != "pending" && s != "skipped")
    })
    .await;
    assert_eq!(status, "failed");
    assert!(
        reason
            .as_deref()
            .unwrap()
            .starts_with("outside_24h_window: (131047) Re-engagement message"),
        "{reason:?}"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(requests(&f.cloud).await.len(), 1, "not retried");
    p.stop().await;
}
