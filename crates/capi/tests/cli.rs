//! The `capi` binary as an operator runs it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use serde_json::{Value, json};
use std::{path::PathBuf, process::Command};

fn capi(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(args)
        .output()
        .expect("run capi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fixture(name: &str) -> String {
    let p: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "evolution",
        name,
    ]
    .iter()
    .collect();
    p.to_string_lossy().into_owned()
}

fn parse(name: &str) -> Value {
    let (code, out, err) = capi(&["parse-webhook", "evolution", &fixture(name)]);
    assert_eq!(code, 0, "{name}: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: one JSON line: {out}");
    serde_json::from_str(lines[0]).expect("JSON line")
}

#[test]
fn every_evolution_fixture_parses_as_documented() {
    let cases = [
        (
            "evolution-v1.8.0_webhook_messages-upsert_text-inbound_fromMe-false_issue631.json",
            // The capture's phone digits are masked (`55119********`), so no phone can be read.
            json!({"instance": "5535********", "message_id": "3A554E20ECABF3D45BB2", "from_me": false, "phone": null, "lid": null,
                   "text": "Olá! Vim do Instagram da **** e gostaria de agendar uma Consulta Online.", "timestamp": 1717607420,
                   "ctwa_clid": null, "from_ad": false}),
        ),
        (
            "evolution-v1.8.0_webhook_messages-upsert_text-sent-from-phone_fromMe-true_issue631.json",
            json!({"instance": "5535********", "message_id": "4DA1D8D1B5B0139AC8C44B44B8CF5A93", "from_me": true, "phone": null, "lid": null,
                   "text": "Clínica ****** agradece seu contato. Como podemos ajudar?\n*Atendimento de segunda a sexta das 08:00hs as 18:00hs*\nNosso telefone fixo: **********",
                   "timestamp": 1717604327, "ctwa_clid": null, "from_ad": false}),
        ),
        (
            "evolution-v2.3.6_webhook_messages-upsert_ctwa_SHAPE-DERIVED-from-code.json",
            json!({"instance": "my-instance", "message_id": "AC1830B11436BAC01F6FA6196C534B8A", "from_me": false,
                   "phone": "5511999999999", "lid": "66417458159826@lid",
                   "text": "Olá! Tenho interesse e queria mais informações, por favor.", "timestamp": 1773449493,
                   "ctwa_clid": "Aff...", "from_ad": true}),
        ),
        (
            "v1-media-ad-click.json",
            json!({"instance": "clinic-1", "message_id": "3EB0C4A1F2", "from_me": false, "phone": "79161234567", "lid": null,
                   "text": "Здравствуйте, хочу записаться", "timestamp": 1760000000,
                   "ctwa_clid": "AfhQz0w2_ClickIdFromAd", "from_ad": true}),
        ),
        (
            "v2-4-lid-markers-only.json",
            json!({"instance": "clinic-2", "message_id": "AC99", "from_me": false, "phone": "447700900123", "lid": "99887766554433@lid",
                   "text": "Hi, is this still available?", "timestamp": 1773449493, "ctwa_clid": null, "from_ad": true}),
        ),
        (
            "lid-only.json",
            json!({"instance": "clinic-3", "message_id": "L1", "from_me": false, "phone": null, "lid": "66417458159826@lid",
                   "text": "oi", "timestamp": 1773449000, "ctwa_clid": null, "from_ad": false}),
        ),
        ("group.json", json!({"ignored": "group"})),
        ("status.json", json!({"ignored": "status"})),
        ("broadcast.json", json!({"ignored": "broadcast"})),
    ];
    for (name, expected) in cases {
        assert_eq!(parse(name), expected, "{name}");
    }
}

#[test]
fn the_ad_fragment_from_issue_1252_marks_a_message_as_from_an_ad() {
    let fragment: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture("evolution-v2.x_webhook_messages-upsert_contextInfo-externalAdReply_FRAGMENT_issue1252.json"))
            .expect("fixture"),
    )
    .expect("json");
    // The fragment alone is not a webhook body.
    let (code, _, err) = capi(&[
        "parse-webhook",
        "evolution",
        &fixture(
            "evolution-v2.x_webhook_messages-upsert_contextInfo-externalAdReply_FRAGMENT_issue1252.json",
        ),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("event"), "{err}");
    let body = json!({"event": "messages.upsert", "instance": "i", "data": {
        "key": {"remoteJid": "5511999999999@s.whatsapp.net", "fromMe": false, "id": "F1"},
        "message": {"conversation": "Quero agendar"}, "contextInfo": fragment, "messageTimestamp": 1739900000}});
    let path = std::env::temp_dir().join(format!("capi-fragment-{}.json", std::process::id()));
    std::fs::write(&path, body.to_string()).expect("write");
    let (code, out, err) = capi(&["parse-webhook", "evolution", &path.to_string_lossy()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        (v["from_ad"].as_bool(), v["ctwa_clid"].as_str()),
        (Some(true), None)
    );
}

#[test]
fn malformed_webhooks_exit_2_with_a_clear_message() {
    let path = std::env::temp_dir().join(format!("capi-bad-{}.json", std::process::id()));
    std::fs::write(&path, "{\"event\": \"messages.upsert\", \"data\": ").expect("write");
    let (code, out, err) = capi(&["parse-webhook", "evolution", &path.to_string_lossy()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = capi(&["parse-webhook", "evolution", "/no/such/file.json"]);
    assert_eq!(code, 2);
    assert!(err.contains("/no/such/file.json"), "{err}");
}

#[test]
fn normalize_prints_one_json_line() {
    let (code, out, _) = capi(&[
        "normalize",
        "ph",
        "(650)555-1212",
        "--default-country-code",
        "1",
    ]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).expect("json"),
        json!({"normalized": "16505551212", "sha256": "e323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176"})
    );
    let (_, out, _) = capi(&["normalize", "ln", "Valéry"]);
    assert_eq!(
        serde_json::from_str::<Value>(out.trim()).expect("json"),
        json!({"normalized": "valéry", "sha256": "08e1996b5dd49e62a4b4c010d44e4345592a863bb9f8e3976219bac29417149c"})
    );
    let (code, out, _) = capi(&["normalize", "em", "not-an-email"]);
    assert_eq!((code, out.trim()), (0, r#"{"normalized":null}"#));
    let (code, _, err) = capi(&["normalize", "phone", "123"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown user_data key"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_a_direction_without_sql() {
    let env = pipeline_tests::TestEnv::new().await;
    let db = ["--database-url", env.db_url.as_str()];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&db);
        let (code, out, err) = capi(&all);
        assert_eq!(code, 0, "capi {args:?}: {err}");
        out
    };
    let id = |out: String| -> String {
        serde_json::from_str::<Value>(out.trim()).expect("json")["id"]
            .as_str()
            .expect("id")
            .to_owned()
    };
    assert_eq!(run(&["migrate"]).trim(), r#"{"applied":[]}"#);
    let user = id(run(&["account", "create", "--name", "Clinic"]));
    let ad = id(run(&[
        "ad-account",
        "create",
        "--user-account",
        &user,
        "--name",
        "Main",
        "--access-token",
        "EAAB-secret",
    ]));
    let dir = id(run(&[
        "direction",
        "create",
        "--user-account",
        &user,
        "--name",
        "Dentistry",
        "--ad-account",
        &ad,
        "--capi-enabled",
        "--pixel",
        "555",
    ]));
    run(&["direction", "set", &dir, "--waba", "777"]);
    let mapped: Value = serde_json::from_str(
        run(&[
            "instance",
            "map",
            "--instance",
            "clinic-wa",
            "--direction",
            &dir,
        ])
        .trim(),
    )
    .expect("json");
    assert_eq!(mapped["webhook_secret"].as_str().map(str::len), Some(64));

    let dirs: Value =
        serde_json::from_str(run(&["direction", "list"]).trim()).expect("one direction");
    assert_eq!(
        (
            dirs["capi_enabled"].as_bool(),
            dirs["pixel_id"].as_str(),
            dirs["waba_id"].as_str(),
            dirs["instances"].as_str()
        ),
        (Some(true), Some("555"), Some("777"), Some("clinic-wa"))
    );
    let ads = run(&["ad-account", "list"]);
    assert!(
        ads.contains("\"has_token\":true") && !ads.contains("EAAB-secret"),
        "tokens are never listed: {ads}"
    );
    let mut conn = env.conn().await;
    let inst = storage::directions::instance(&mut conn, "clinic-wa")
        .await
        .expect("query")
        .expect("instance");
    assert_eq!(inst.direction_id.map(|d| d.to_string()), Some(dir.clone()));

    let (code, _, err) = capi(&[
        "direction",
        "set",
        "00000000-0000-0000-0000-000000000000",
        "--pixel",
        "1",
        "--database-url",
        &env.db_url,
    ]);
    assert_eq!(code, 2, "{err}");
}

/// `capi` with the model at `llm` (a fake) and the test database.
fn capi_with_model(llm: &str, db: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(args)
        .args(["--database-url", db])
        .env("CAPI_LLM__BASE_URL", llm)
        .env("CAPI_LLM__API_KEY", "sk-cli-test")
        .output()
        .expect("run capi");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_qualification_prompt_is_generated_shown_edited_and_cleared() {
    use pipeline_tests::wiremock::{Mock, MockServer, ResponseTemplate, matchers};
    let env = pipeline_tests::TestEnv::new().await;
    let s = pipeline_tests::seed(&env, &pipeline_tests::SeedOptions::default()).await;
    let dir = s.direction_id.to_string();
    let llm = MockServer::start().await;
    let draft = json!({
        "business_context": "A dental clinic offering aligners.",
        "questions": ["Who is the treatment for?", "What budget do you have?", "When can you start?"],
        "good_answers": "An adult patient, 2000+ USD, within a month.",
        "bad_answers": "Only the price, no time frame.",
        "booking_signs": "A consultation date and time confirmed."
    });
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/v1/chat/completions"))
        .and(matchers::header("authorization", "Bearer sk-cli-test"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "choices": [{"index": 0, "message": {"role": "assistant", "content": draft.to_string()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 90, "total_tokens": 210}
        })))
        .expect(1)
        .mount(&llm)
        .await;
    let url = format!("{}/v1", llm.uri());
    let run = |args: &[&str]| {
        let (code, out, err) = capi_with_model(&url, &env.db_url, args);
        assert_eq!(code, 0, "capi {args:?}: {err}");
        serde_json::from_str::<Value>(out.trim()).expect("one JSON line")
    };
    let shown = run(&["direction", "qualification-prompt", "show", &dir]);
    assert_eq!(shown["generic"], true);
    assert!(
        shown["prompt"]
            .as_str()
            .unwrap()
            .starts_with("You qualify leads for Cosmetology")
    );

    let generated = run(&[
        "direction",
        "qualification-prompt",
        "generate",
        &dir,
        "--sells",
        "aligners and whitening",
        "--good-customer",
        "adults who can pay 2000 USD",
        "--booking",
        "a free consultation",
    ]);
    let prompt = "Business context: A dental clinic offering aligners.\n\nQualification questions:\n\
        1. Who is the treatment for?\n2. What budget do you have?\n3. When can you start?\n\n\
        Good answers: An adult patient, 2000+ USD, within a month.\n\nBad answers: Only the price, no time frame.\n\n\
        Signs of a booking: A consultation date and time confirmed.";
    assert_eq!(generated["prompt"], prompt);
    assert_eq!(generated["stored"], true);
    // What the model was asked: the onboarding instructions, the description, the strict schema.
    let asked: Value =
        serde_json::from_slice(&llm.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(asked["model"], "gpt-4o-mini");
    assert_eq!(
        asked["response_format"],
        domain::qualification::onboarding_response_format()
    );
    assert_eq!(
        asked["messages"][0]["content"],
        domain::qualification::ONBOARDING_INSTRUCTIONS
    );
    assert_eq!(
        asked["messages"][1]["content"],
        "What the business sells: aligners and whitening\nWho the good customer is: adults who can pay 2000 USD\nHow booking works: a free consultation"
    );
    let shown = run(&["direction", "qualification-prompt", "show", &dir]);
    assert_eq!(
        (shown["generic"].clone(), shown["prompt"].clone()),
        (json!(false), json!(prompt))
    );
    let usage = run(&["usage"]);
    assert_eq!(
        (
            usage["purpose"].clone(),
            usage["calls"].clone(),
            usage["prompt_tokens"].clone(),
            usage["completion_tokens"].clone()
        ),
        (json!("onboarding"), json!(1), json!(120), json!(90))
    );

    run(&[
        "direction",
        "qualification-prompt",
        "set",
        &dir,
        "Ask for the budget. Booked = a date.",
    ]);
    let shown = run(&["direction", "qualification-prompt", "show", &dir]);
    assert_eq!(shown["prompt"], "Ask for the budget. Booked = a date.");
    let (code, _, err) = capi_with_model(
        &url,
        &env.db_url,
        &["direction", "qualification-prompt", "set", &dir, "  "],
    );
    assert_eq!(
        (code, err.trim()),
        (
            2,
            "capi: the prompt is empty (use `clear` for the generic one)"
        )
    );
    run(&["direction", "qualification-prompt", "clear", &dir]);
    assert_eq!(
        run(&["direction", "qualification-prompt", "show", &dir])["generic"],
        true
    );
    let (code, _, err) = capi_with_model(
        &url,
        &env.db_url,
        &[
            "direction",
            "qualification-prompt",
            "show",
            "00000000-0000-0000-0000-000000000000",
        ],
    );
    assert_eq!(
        (code, err.trim()),
        (2, "capi: no direction 00000000-0000-0000-0000-000000000000")
    );
}
