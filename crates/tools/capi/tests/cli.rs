//! The `capi` binary as an operator runs it.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use serde_json::{Value, json};
use std::{path::PathBuf, process::Command};

fn capi(args: &[&str]) -> (i32, String, String) {
    capi_stdin(args, "")
}

/// `capi ARGS --database-url DB`.
fn capi_on(db: &str, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&["--database-url", db]);
    capi(&all)
}

/// `capi_on` that must succeed; its standard output.
fn capi_ok(db: &str, args: &[&str]) -> String {
    let (code, out, err) = capi_on(db, args);
    assert_eq!(code, 0, "capi {args:?}: {err}");
    out
}

/// `capi_ok`'s one-line JSON answer.
fn capi_json(db: &str, args: &[&str]) -> Value {
    serde_json::from_str(capi_ok(db, args).trim()).expect("one JSON line")
}

/// The `id` of a one-line JSON answer.
fn id_of(out: &str) -> String {
    serde_json::from_str::<Value>(out.trim()).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned()
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
fn both_cloud_api_fixtures_parse_through_the_cli_as_the_contract_says() {
    let dir: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "fixtures",
        "meta-cloud",
    ]
    .iter()
    .collect();
    let run = |name: &str| {
        let path = dir.join(name);
        let (code, out, err) = capi(&["parse-webhook", "whatsapp-cloud", &path.to_string_lossy()]);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out.lines().count(), 1, "{name}: one JSON line: {out}");
        serde_json::from_str::<Value>(out.trim()).expect("JSON line")
    };
    assert_eq!(
        run("meta-cloudapi_webhook_messages_text_ctwa-referral_META-DOCS-EXAMPLE.json"),
        json!({"messages": [{"phone_number_id": "1204727649384372", "waba_id": "102290129340398",
            "message_id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA=",
            "phone": "16505551234", "user_id": null, "from_me": false, "text": "Can I get more info about this?",
            "ctwa_clid": "Aff-n8ZTODiE79d22KtAwQKj9e_mIEOOj27vDVwFjN80dp4_0NiNhEgpGo0AHemvuSoifXaytfTzcchptiErTKCqTrJ5nW1h7IHYeYymGb5K5J5iTROpBhWAGaIAeUzHL50",
            "from_ad": true, "timestamp": 1750275992}]})
    );
    assert_eq!(
        run("meta-cloudapi_webhook_messages_text_APP-DASHBOARD-TEST-payload.json"),
        json!({"messages": [{"phone_number_id": "123456123", "waba_id": "0", "message_id": "ABGGFlA5Fpa",
            "phone": "16315551181", "user_id": null, "from_me": false, "text": "this is a text message",
            "ctwa_clid": null, "from_ad": false, "timestamp": 1504902988}]})
    );
    // Keys in the contract's order, on one line.
    let (_, out, _) = capi(&[
        "parse-webhook",
        "whatsapp-cloud",
        &dir.join("meta-cloudapi_webhook_messages_text_APP-DASHBOARD-TEST-payload.json")
            .to_string_lossy(),
    ]);
    assert!(out.starts_with(r#"{"messages":[{"phone_number_id":"123456123","waba_id":"0","message_id":"ABGGFlA5Fpa","phone":"16315551181","user_id":null,"from_me":false,"text":"#), "{out}");
    // Statuses only: no messages; another object: a clear error, exit 2.
    let statuses = std::env::temp_dir().join(format!("cloud-statuses-{}.json", std::process::id()));
    std::fs::write(&statuses, r#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"2"},"statuses":[{"id":"wamid.X","status":"delivered"}]}}]}]}"#).expect("write");
    let (code, out, _) = capi(&[
        "parse-webhook",
        "whatsapp-cloud",
        &statuses.to_string_lossy(),
    ]);
    assert_eq!((code, out.trim()), (0, r#"{"messages":[]}"#));
    std::fs::write(&statuses, r#"{"object":"page","entry":[]}"#).expect("write");
    let (code, _, err) = capi(&[
        "parse-webhook",
        "whatsapp-cloud",
        &statuses.to_string_lossy(),
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains(r#"not a WhatsApp Business Account webhook (object is "page")"#),
        "{err}"
    );
    let _ = std::fs::remove_file(&statuses);
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
    let run = |args: &[&str]| capi_ok(&env.db_url, args);
    let id = |out: String| id_of(&out);
    assert_eq!(run(&["migrate"]).trim(), r#"{"applied":[],"encrypted":0}"#);
    let user = id(run(&["account", "create", "--name", "Clinic"]));
    // A secret is never taken as an argument.
    let create = [
        "ad-account",
        "create",
        "--user-account",
        &user,
        "--name",
        "Main",
    ];
    let (code, _, err) = capi_on(
        &env.db_url,
        &[&create[..], &["--access-token", "EAAB-secret"]].concat(),
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("standard input") && !err.contains("EAAB-secret"),
        "{err}"
    );
    let (code, out, err) = capi_stdin(
        &[
            &create[..],
            &["--access-token", "-", "--database-url", &env.db_url],
        ]
        .concat(),
        "EAAB-secret\n",
    );
    assert_eq!(code, 0, "{err}");
    let ad = id_of(&out);
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
    let inst = storage::directions::instance(&mut conn, &env.keys(), "clinic-wa")
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
        .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
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

fn crm_fixture(crm: &str, name: &str) -> String {
    let p: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", crm, name]
        .iter()
        .collect();
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs `capi` on `body` written to a file of its own.
fn capi_on_body(args: &[&str], body: &str, tag: &str) -> (i32, String, String) {
    let path = std::env::temp_dir().join(format!("capi-{tag}-{}.txt", std::process::id()));
    std::fs::write(&path, body).expect("write body");
    let path = path.to_string_lossy().into_owned();
    let mut all: Vec<&str> = args.to_vec();
    all.push(&path);
    let out = capi(&all);
    std::fs::remove_file(&path).ok();
    out
}

fn parsed_line(out: (i32, String, String), what: &str) -> Value {
    let (code, out, err) = out;
    assert_eq!(code, 0, "{what}: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{what}: one JSON line: {out}");
    serde_json::from_str(lines[0]).expect("JSON line")
}

/// The amoCRM webhook bodies in the captures: raw bodies as they are; the
/// yandex capture's decoded body; each curl replay rebuilt as it went on the
/// wire (its keys already encoded, its values encoded by --data-urlencode).
fn amocrm_bodies() -> Vec<(String, String)> {
    let mut bodies = vec![
        (
            "unirock".to_owned(),
            crm_fixture("amocrm", "webhook_leads_update_2021_unirock.urlencoded"),
        ),
        (
            "apfitness".to_owned(),
            crm_fixture("amocrm", "webhook_leads_status_2018_apfitness.raw.txt"),
        ),
    ];
    let dp: Value = serde_json::from_str(&crm_fixture(
        "amocrm",
        "webhook_digital_pipeline_status_2023_yandexcloud.json",
    ))
    .expect("json");
    bodies.push((
        "digital pipeline".to_owned(),
        dp["body_decoded"].as_str().expect("body").to_owned(),
    ));
    let http = crm_fixture(
        "amocrm",
        "webhook_captured_with_headers_2025_etesttask.http",
    );
    for section in http.split("\n### ").skip(1) {
        let title = section.lines().next().unwrap_or_default().to_owned();
        let parts: Vec<String> = section
            .lines()
            .filter_map(|l| {
                l.trim()
                    .trim_end_matches('\\')
                    .trim_end()
                    .strip_prefix("--data-urlencode '")?
                    .strip_suffix('\'')
            })
            .map(|arg| {
                let (key, value) = arg.split_once('=').unwrap_or((arg, ""));
                let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
                format!("{key}={value}")
            })
            .collect();
        bodies.push((title, parts.join("&")));
    }
    bodies
}

#[test]
fn every_amocrm_webhook_capture_parses_as_the_contract_says() {
    let bodies = amocrm_bodies();
    assert_eq!(bodies.len(), 7, "three bodies and four curl replays");
    for (what, body) in &bodies {
        let v = parsed_line(
            capi_on_body(&["parse-webhook", "amocrm"], body, "amo"),
            what,
        );
        let changes = v["changes"].as_array().expect("changes");
        assert!(!changes.is_empty(), "{what}");
        let (_, raw, _) = capi_on_body(&["parse-webhook", "amocrm"], body, "amo-raw");
        let changes_text = &raw[raw.find("\"changes\":").unwrap_or(0)..];
        let at = |key: &str| {
            changes_text
                .find(&format!("\"{key}\":"))
                .unwrap_or(usize::MAX)
        };
        let order = [
            "entity",
            "action",
            "id",
            "status_id",
            "pipeline_id",
            "fields",
        ]
        .map(at);
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{what}: keys out of order: {raw}"
        );
        for c in changes {
            assert_eq!(c.as_object().map(|o| o.len()), Some(6), "{what}: {c}");
            assert!(c["id"].is_string(), "{what}: {c}");
        }
        if let Some(section) = what.strip_suffix(')').or(Some(what)) {
            // The replays are titled by their key, e.g. "contacts[update]  (…".
            if let Some((entity, rest)) = section.split_once('[') {
                let action = rest.split(']').next().unwrap_or_default();
                assert_eq!(changes[0]["action"], action, "{what}");
                assert_eq!(changes[0]["entity"], entity.trim_end_matches('s'), "{what}");
                assert_eq!(
                    v["account"],
                    json!({"subdomain": "etesttask", "id": "32427762"})
                );
            }
        }
    }
    let dp = parsed_line(
        capi_on_body(&["parse-webhook", "amocrm"], &bodies[2].1, "amo-dp"),
        "digital pipeline",
    );
    assert_eq!(
        dp,
        json!({"account": {"subdomain": "anyor", "id": "30307558"},
               "changes": [{"entity": "lead", "action": "status", "id": "10754147", "status_id": "54423922",
                            "pipeline_id": "6344290", "fields": []}]})
    );
    let unirock = parsed_line(
        capi_on_body(&["parse-webhook", "amocrm"], &bodies[0].1, "amo-u"),
        "unirock",
    );
    assert_eq!(
        unirock["account"],
        json!({"subdomain": "unirock", "id": "16700680"})
    );
    let fields = unirock["changes"][0]["fields"].as_array().expect("fields");
    // Fields present with no values, and a select with its enum id.
    assert_eq!(
        fields[0],
        json!({"id": "436799", "code": "UTM_MEDIUM", "values": []})
    );
    assert!(
        fields.iter().any(|f| f["values"][0]["enum_id"] == "960551"),
        "{fields:?}"
    );
    let apfitness = parsed_line(
        capi_on_body(&["parse-webhook", "amocrm"], &bodies[1].1, "amo-a"),
        "apfitness",
    );
    // A date arrives as a bare `values[0]`, without `[value]`.
    assert_eq!(
        apfitness["changes"][0]["fields"][2],
        json!({"id": "72333", "code": null, "values": [{"value": "1542067200", "enum_id": null}]})
    );
}

#[test]
fn bitrix24_events_parse_and_never_print_the_application_token() {
    let mut bodies: Vec<String> = vec![
        // The real form body quoted in the research (2024-02-12).
        "event=ONCRMDEALUPDATE&data[FIELDS][ID]=39&ts=1707749333&auth[domain]=b24-3tmral.bitrix24.ru\
         &auth[client_endpoint]=https://b24-3tmral.bitrix24.ru/rest/&auth[server_endpoint]=https://oauth.bitrix.info/rest/\
         &auth[member_id]=51e2&auth[application_token]=e57xsecret"
            .to_owned(),
    ];
    for doc in [
        "doc_ONCRMDEALUPDATE_payload.json.md",
        "doc_event_payloads_app_vs_outgoing_webhook.md",
    ] {
        let text = crm_fixture("bitrix24", doc);
        for block in text.split("```json").skip(1) {
            let json = block.split("```").next().unwrap_or_default();
            if json.contains("\"event\"") {
                bodies.push(json.to_owned());
            }
        }
    }
    assert_eq!(bodies.len(), 4);
    let got: Vec<Value> = bodies
        .iter()
        .map(|b| {
            let out = capi_on_body(&["parse-webhook", "bitrix24"], b, "b24");
            for token in [
                "e57xsecret",
                "51856fefc120afa4b628cc82d3935cce",
                "jvh9y1ulvt2m6k5or90v9mg8nn32ozas",
            ] {
                assert!(
                    !out.1.contains(token) && !out.2.contains(token),
                    "token printed: {}",
                    out.1
                );
            }
            parsed_line(out, b)
        })
        .collect();
    assert_eq!(
        got[0],
        json!({"event": "ONCRMDEALUPDATE", "entity": "deal", "action": "update", "id": "39",
               "domain": "b24-3tmral.bitrix24.ru", "member_id": "51e2", "ts": "1707749333"})
    );
    assert_eq!(
        got[1],
        json!({"event": "ONCRMDEALUPDATE", "entity": "deal", "action": "update", "id": "759",
               "domain": "some-domain.bitrix24.com", "member_id": "a223c6b3710f85df22e9377d6c4f7553", "ts": "1736405807"})
    );
    assert_eq!(
        (&got[2]["entity"], &got[2]["action"], &got[2]["id"]),
        (&json!("deal"), &json!("add"), &json!("7405"))
    );
    let (code, _, err) = capi_on_body(
        &["parse-webhook", "bitrix24"],
        "data[FIELDS][ID]=1",
        "b24-bad",
    );
    assert_eq!(code, 2);
    assert!(err.contains("no `event`"), "{err}");
    let (code, _, err) = capi_on_body(
        &["parse-webhook", "amocrm"],
        "leads[add]x[0][id]=1",
        "amo-bad",
    );
    assert_eq!(code, 2);
    assert!(err.contains("malformed key"), "{err}");
}

#[test]
fn crm_match_prints_the_levels_an_entity_reaches() {
    let lead = crm_fixture(
        "amocrm",
        "api_v4_lead_get_with_contacts_2024_auladisermx.json",
    );
    let deal_doc = crm_fixture("bitrix24", "doc_crm.deal.get_response.md");
    let deal = deal_doc
        .split("```json")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("deal JSON");
    let run = |crm: &str, entity_type: &str, entity: &str, mapping: &Value| {
        let dir = std::env::temp_dir();
        let e = dir.join(format!("capi-entity-{}-{crm}.json", std::process::id()));
        let m = dir.join(format!("capi-mapping-{}-{crm}.json", std::process::id()));
        std::fs::write(&e, entity).expect("entity");
        std::fs::write(&m, mapping.to_string()).expect("mapping");
        let out = capi(&[
            "crm-match",
            "--crm",
            crm,
            "--entity-type",
            entity_type,
            "--entity",
            &e.to_string_lossy(),
            "--mapping",
            &m.to_string_lossy(),
        ]);
        std::fs::remove_file(&e).ok();
        std::fs::remove_file(&m).ok();
        out
    };
    let amo_mapping = json!({
        "interest": [{"field_id": "926914"}],
        "qualified": [{"field_id": "747664", "field_name": "Programa", "field_type": "select", "enum_id": 656296}],
        "scheduled": [{"field_id": "status_id", "enum_id": "142"}]
    });
    assert_eq!(
        parsed_line(run("amocrm", "lead", &lead, &amo_mapping), "amo"),
        json!({"levels": ["interest", "qualified"]})
    );
    let b24_mapping = json!({
        "interest": [{"field_id": "UF_CRM_1721244482250", "entity_type": "lead"}],
        "qualified": [],
        "scheduled": [{"field_id": "STAGE_ID", "enum_value": "preparation", "entity_type": "deal"}]
    });
    assert_eq!(
        parsed_line(run("bitrix24", "deal", deal, &b24_mapping), "b24"),
        json!({"levels": ["interest", "qualified", "scheduled"]})
    );
    assert_eq!(
        parsed_line(run("bitrix24", "lead", deal, &b24_mapping), "b24 as a lead"),
        json!({"levels": ["interest"]})
    );
    let (code, _, err) = run("amocrm", "lead", &lead, &json!({"intrest": []}));
    assert_eq!(code, 2);
    assert!(err.contains("not a mapping"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_maps_crm_fields_per_level_and_bad_rules_store_nothing() {
    let env = pipeline_tests::TestEnv::new().await;
    let run = |args: &[&str]| capi_on(&env.db_url, args);
    let ok = |args: &[&str]| capi_ok(&env.db_url, args);
    let user: Value =
        serde_json::from_str(ok(&["account", "create", "--name", "Clinic"]).trim()).expect("json");
    let user = user["id"].as_str().expect("id").to_owned();
    let dir: Value = serde_json::from_str(
        ok(&[
            "direction",
            "create",
            "--user-account",
            &user,
            "--name",
            "Deals",
            "--source",
            "crm",
        ])
        .trim(),
    )
    .expect("json");
    let dir = dir["id"].as_str().expect("id").to_owned();
    ok(&["direction", "set", &dir, "--crm", "bitrix24"]);
    let listed: Value = serde_json::from_str(ok(&["direction", "list"]).trim()).expect("json");
    assert_eq!(
        (&listed["capi_source"], &listed["capi_crm_type"]),
        (&json!("crm"), &json!("bitrix24"))
    );

    let rules = std::env::temp_dir().join(format!("capi-rules-{}.json", std::process::id()));
    std::fs::write(
        &rules,
        r#"[{"field_id": "UF_CRM_LIST", "field_type": "enumeration", "enum_id": 81, "entity_type": "deal"},
            {"field_id": "STAGE_ID", "enum_value": "WON"}]"#,
    )
    .expect("rules");
    let rules_path = rules.to_string_lossy().into_owned();
    ok(&[
        "direction",
        "crm-fields",
        "set",
        &dir,
        "--level",
        "qualified",
        "--rules",
        &rules_path,
    ]);
    let lines: Vec<Value> = ok(&["direction", "crm-fields", "list", &dir])
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"level": "interest", "rules": []}),
            json!({"level": "qualified", "rules": [
                {"field_id": "UF_CRM_LIST", "field_type": "enumeration", "enum_id": "81", "entity_type": "deal"},
                {"field_id": "STAGE_ID", "enum_value": "WON"}]}),
            json!({"level": "scheduled", "rules": []}),
            json!({"level": "purchase", "rule": "default",
                   "amocrm": {"when": {"field_id": "status_id", "enum_id": "142", "entity_type": "lead"},
                              "value_field": "price"},
                   "bitrix24": {"when": {"field_id": "STAGE_SEMANTIC_ID", "enum_value": "S", "entity_type": "deal"},
                                "value_field": "OPPORTUNITY", "currency_field": "CURRENCY_ID"}}),
        ]
    );
    // The purchase rule: its own, none (false), back to the default.
    let purchase_line = || {
        ok(&["direction", "crm-fields", "list", &dir])
            .lines()
            .last()
            .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
            .expect("a purchase line")
    };
    let set_purchase = |rule: &str| {
        std::fs::write(&rules, rule).expect("rule");
        run(&[
            "direction",
            "crm-fields",
            "set",
            &dir,
            "--level",
            "purchase",
            "--rules",
            &rules_path,
        ])
    };
    let own = json!({"when": {"field_id": "STAGE_ID", "enum_value": "C2:WON"},
                     "value_field": "UF_CRM_PAID", "currency": "BRL"});
    assert_eq!(set_purchase(&own.to_string()).0, 0);
    assert_eq!(purchase_line(), json!({"level": "purchase", "rule": own}));
    assert_eq!(set_purchase("false").0, 0);
    assert_eq!(purchase_line(), json!({"level": "purchase", "rule": false}));
    for bad in [
        r#"{"when": {"field_id": "X"}}"#,
        r#"{"when": {"field_id": "X"}, "value_field": "V", "currency": "REAIS"}"#,
        "null",
        "true",
    ] {
        let (code, _, err) = set_purchase(bad);
        assert_eq!(code, 2, "{bad}: {err}");
    }
    assert_eq!(
        purchase_line(),
        json!({"level": "purchase", "rule": false}),
        "unchanged"
    );
    ok(&[
        "direction",
        "crm-fields",
        "clear",
        &dir,
        "--level",
        "purchase",
    ]);
    assert_eq!(purchase_line()["rule"], "default");
    // A misspelled key, a rule without a field, an unknown level: exit 2, nothing changes.
    for bad in [
        r#"[{"field_id": "X", "enum_vaule": "Y"}]"#,
        r#"[{"enum_id": 1}]"#,
        r#"{"field_id": "X"}"#,
    ] {
        std::fs::write(&rules, bad).expect("rules");
        let (code, _, err) = run(&[
            "direction",
            "crm-fields",
            "set",
            &dir,
            "--level",
            "qualified",
            "--rules",
            &rules_path,
        ]);
        assert_eq!(code, 2, "{bad}: {err}");
        assert!(err.contains("not a list of rules"), "{err}");
    }
    let (code, _, err) = run(&[
        "direction",
        "crm-fields",
        "clear",
        &dir,
        "--level",
        "booked",
    ]);
    assert_eq!(code, 2, "{err}");
    let still = ok(&["direction", "crm-fields", "list", &dir]);
    assert!(still.contains("UF_CRM_LIST"), "{still}");
    ok(&[
        "direction",
        "crm-fields",
        "clear",
        &dir,
        "--level",
        "qualified",
    ]);
    assert!(!ok(&["direction", "crm-fields", "list", &dir]).contains("UF_CRM_LIST"));
    let (code, _, err) = run(&[
        "direction",
        "crm-fields",
        "list",
        "00000000-0000-0000-0000-000000000000",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no direction"), "{err}");
    std::fs::remove_file(&rules).ok();
}

/// `capi` with `input` on its standard input.
fn capi_stdin(args: &[&str], input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(args)
        .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run capi");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("capi output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_connections_take_their_secrets_from_stdin_and_print_the_webhook_url() {
    let env = pipeline_tests::TestEnv::new().await;
    let db = env.db_url.as_str();
    let (_, out, _) = capi(&[
        "account",
        "create",
        "--name",
        "Clinic",
        "--database-url",
        db,
    ]);
    let user: Value = serde_json::from_str(out.trim()).expect("json");
    let user = user["id"].as_str().expect("id");
    let (code, out, err) = capi_stdin(
        &[
            "crm",
            "connect",
            "amocrm",
            "--user-account",
            user,
            "--base-url",
            "https://clinic.amocrm.ru/",
            "--subdomain",
            "clinic",
            "--gateway-url",
            "https://hooks.example.com",
            "--database-url",
            db,
        ],
        "amo-long-lived-token\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("amo-long-lived-token") && !err.contains("amo-long-lived-token"));
    let amo: Value = serde_json::from_str(out.trim()).expect("json");
    let hook = amo["webhook_url"].as_str().expect("url");
    let id = amo["id"].as_str().expect("id");
    assert!(
        hook.starts_with(&format!(
            "https://hooks.example.com/webhooks/amocrm/{id}?secret="
        )),
        "{hook}"
    );
    let mut conn = env.conn().await;
    let c = storage::crm::connection(&mut conn, &env.keys(), id.parse().expect("uuid"))
        .await
        .expect("query")
        .expect("connection");
    assert_eq!(c.account_subdomain.as_deref(), Some("clinic"));
    assert_eq!(
        hook.rsplit_once("secret=").map(|(_, s)| s),
        c.webhook_secret
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret)
    );

    let (code, out, err) = capi_stdin(
        &[
            "crm",
            "connect",
            "bitrix24",
            "--user-account",
            user,
            "--member-id",
            "m-1",
            "--database-url",
            db,
        ],
        "https://b24.example.com/rest/1/incoming-secret/\napp-token-secret\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("incoming-secret") && !out.contains("app-token-secret"),
        "{out}"
    );
    let b24: Value = serde_json::from_str(out.trim()).expect("json");
    assert!(
        b24["webhook_url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!(
                "/webhooks/bitrix24/{}",
                b24["id"].as_str().unwrap_or("?")
            )))
    );
    // One line where two are needed, or no token at all: exit 2, nothing stored.
    let (code, _, err) = capi_stdin(
        &[
            "crm",
            "connect",
            "bitrix24",
            "--user-account",
            user,
            "--database-url",
            db,
        ],
        "https://b24.example.com/rest/1/x/\n",
    );
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = capi_stdin(
        &[
            "crm",
            "connect",
            "amocrm",
            "--user-account",
            user,
            "--base-url",
            "https://c.amocrm.ru",
            "--subdomain",
            "c",
            "--database-url",
            db,
        ],
        "",
    );
    assert_eq!(code, 2, "{err}");
    let n = pipeline_tests::count(&env, "SELECT count(*) AS n FROM crm_connections").await;
    assert_eq!(n, 2);

    // What became of each change, newest first.
    let change = json!({"entity": "lead", "action": "status", "id": "99"});
    let ids = storage::crm::record_changes(
        &mut conn,
        &[(
            c.id,
            storage::crm::NewChange {
                entity: "lead",
                action: "status",
                entity_id: "99",
                key: "k-99",
                change: &change,
            },
        )],
    )
    .await
    .expect("change");
    let outcome = json!({"result": "evaluated", "directions": [{"levels": ["interest"], "reason": "no_dialog"}]});
    storage::crm::mark_evaluated(&mut conn, ids[0].0, &outcome)
        .await
        .expect("evaluated");
    let (code, out, err) = capi(&["crm", "changes", id, "--database-url", db]);
    assert_eq!(code, 0, "{err}");
    let line: Value = serde_json::from_str(out.trim()).expect("one JSON line");
    assert_eq!(
        (&line["entity_id"], &line["outcome"]),
        (&json!("99"), &outcome)
    );
    assert!(line["evaluated_at"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_fields_lists_the_crms_own_fields_refreshing_an_oauth_token_first() {
    let env = pipeline_tests::TestEnv::new().await;
    let db = env.db_url.as_str();
    let sb = pipeline_tests::SandboxServer::start().await;
    let user = id_of(&capi_ok(db, &["account", "create", "--name", "Clinic"]));
    let user = user.as_str();
    // 260 lead fields: more than one page of 250.
    let fields: Vec<Value> = (0..260)
        .map(|i| {
            json!({"id": 1000 + i, "name": format!("Field {i}"), "code": null, "type": "select",
                   "enums": [{"id": 5000 + i, "value": "Yes", "sort": 1}]})
        })
        .collect();
    sb.put("/sandbox/amocrm/custom_fields/leads", &json!(fields))
        .await;
    sb.put(
        "/sandbox/amocrm/pipelines",
        &json!([{"id": 936736, "name": "Sales", "_embedded": {"statuses": [
            {"id": 142, "name": "Won"}, {"id": 143, "name": "Lost"}]}}]),
    )
    .await;
    sb.put(
        "/sandbox/amocrm/account",
        &json!({"subdomain": "clinic", "id": "29", "access_token": "current-token",
                "refresh_token": "refresh-1", "client_id": "integration-1",
                "client_secret": "client-secret-1"}),
    )
    .await;
    let (code, out, err) = capi_stdin(
        &[
            "crm",
            "connect",
            "amocrm",
            "--user-account",
            user,
            "--base-url",
            &sb.url,
            "--subdomain",
            "clinic",
            "--oauth",
            "--client-id",
            "integration-1",
            "--redirect-uri",
            "https://example.com/oauth",
            "--expires-in",
            "60",
            "--database-url",
            db,
        ],
        "stale-access-token\nrefresh-1\nclient-secret-1\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("refresh-1") && !out.contains("client-secret-1"),
        "{out}"
    );
    let id = id_of(&out);
    let (code, out, err) = capi_on(db, &["crm", "fields", &id]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 261, "the statuses, then every field");
    assert_eq!(
        lines[0],
        json!({"id": "status_id", "name": "Lead status (pipeline / status)", "code": null,
               "type": "status", "enums": [{"id": "142", "value": "Sales / Won"},
                                          {"id": "143", "value": "Sales / Lost"}]})
    );
    assert_eq!(
        lines[260],
        json!({"id": "1259", "name": "Field 259", "code": null, "type": "select",
               "enums": [{"id": "5259", "value": "Yes"}]})
    );
    // The token was about to expire: refreshed once, before reading, and stored.
    let amo = sb.crm_stats("amocrm").await;
    assert_eq!(amo["refreshes"], 1, "{amo}");
    assert_eq!(amo["unauthorized"], 0, "{amo}");
    assert_eq!(
        pipeline_tests::opened_credentials(&env, storage::secrets::CRM_ACCESS_TOKEN, "true")
            .await
            .iter()
            .filter(|t| t.starts_with("amo-access-"))
            .count(),
        1
    );
    assert!(!out.contains("amo-access-") && !err.contains("amo-access-"));

    // Bitrix24 through its incoming webhook: crm.deal.fields, list items as enums.
    sb.put(
        "/sandbox/bitrix24/portal",
        &json!({"domain": "x.bitrix24.ru", "member_id": "m-1", "application_token": "app-token",
                "user_id": "1", "webhook_secret": "hook-secret"}),
    )
    .await;
    sb.put(
        "/sandbox/bitrix24/fields/deal",
        &json!({"STAGE_ID": {"type": "crm_status", "isMultiple": false, "title": "Stage"},
                "UF_CRM_SOURCE": {"type": "enumeration", "isMultiple": true, "title": "UF_CRM_SOURCE",
                                  "listLabel": "Source", "items": [{"ID": "79", "VALUE": "Ads"}, {"ID": "81", "VALUE": "WhatsApp"}]}}),
    )
    .await;
    let (code, out, err) = capi_stdin(
        &[
            "crm",
            "connect",
            "bitrix24",
            "--user-account",
            user,
            "--member-id",
            "m-1",
            "--database-url",
            db,
        ],
        &format!("{}/rest/1/hook-secret/\napp-token\n", sb.url),
    );
    assert_eq!(code, 0, "{err}");
    let b24 = id_of(&out);
    let (code, out, err) = capi_on(db, &["crm", "fields", &b24, "--entity-type", "deal"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"id": "STAGE_ID", "name": "Stage", "type": "crm_status", "multiple": false, "enums": []}),
            json!({"id": "UF_CRM_SOURCE", "name": "Source", "type": "enumeration", "multiple": true,
                   "enums": [{"id": "79", "value": "Ads"}, {"id": "81", "value": "WhatsApp"}]}),
        ]
    );
    // A wrong entity type for the CRM, an unknown connection: exit 2.
    let (code, _, err) = capi_on(db, &["crm", "fields", &b24, "--entity-type", "leads"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("deal, lead or contact"), "{err}");
    let (code, _, err) = capi_on(
        db,
        &["crm", "fields", "00000000-0000-0000-0000-000000000000"],
    );
    assert_eq!(code, 2, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_runs_reports_spend_keys_and_dashboard_links_from_the_cli() {
    let env = pipeline_tests::TestEnv::new().await;
    let db = env.db_url.as_str();
    let day = "2026-11-20";
    let f = pipeline_tests::report_day::seed_day(
        &env,
        chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
    )
    .await;
    let account = f.account.to_string();

    // Report settings: a bad zone is refused naming the flag; the token from stdin.
    let (code, _, err) = capi_on(
        db,
        &["account", "set", &account, "--timezone", "Mars/Olympus"],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("--timezone: \"Mars/Olympus\" is not a time zone"),
        "{err}"
    );
    let (code, _, err) = capi_stdin(
        &[
            "account",
            "set",
            &account,
            "--report-language",
            "en",
            "--telegram-chat-id",
            "-1001",
            "--telegram-bot-token",
            "-",
            "--database-url",
            db,
        ],
        "123456:SECRET-bot-token\n",
    );
    assert_eq!(code, 0, "{err}");

    // Generate, then regenerate: the second changes nothing.
    let out: Value = capi_json(
        db,
        &[
            "report",
            "generate",
            "--user-account",
            &account,
            "--date",
            day,
        ],
    );
    assert_eq!(out["stored"], "created");
    assert!(
        out["text"]
            .as_str()
            .unwrap()
            .starts_with("📊 Conversation report for 20 November 2026")
    );
    assert_eq!(out["directions_data"].as_array().unwrap().len(), 3);
    let again: Value = capi_json(
        db,
        &[
            "report",
            "generate",
            "--user-account",
            &account,
            "--date",
            day,
        ],
    );
    assert_eq!(again["stored"], "unchanged");
    let shown: Value = capi_json(
        db,
        &["report", "show", "--user-account", &account, "--date", day],
    );
    assert_eq!(shown["telegram_status"], "pending");
    assert!(
        !shown.to_string().contains("SECRET"),
        "the bot token is never printed"
    );

    // Spend from a CSV: all rows, or none with the line named.
    let dir = std::env::temp_dir().join(format!("capi-spend-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("good.csv");
    std::fs::write(&good, "date,campaign_id,campaign_name,spend,currency\n2026-11-20,c1,Spring,12.30,USD\n2026-11-21,c1,Spring,7.70,USD\n").unwrap();
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "date,spend\n2026-11-22,3.00\n2026-11-23,lots\n").unwrap();
    let ad = f.ad_account.to_string();
    let out = capi_ok(
        db,
        &[
            "spend",
            "import",
            good.to_str().unwrap(),
            "--ad-account",
            &ad,
        ],
    );
    assert!(out.contains("\"rows\":2"), "{out}");
    let (code, _, err) = capi_on(
        db,
        &[
            "spend",
            "import",
            bad.to_str().unwrap(),
            "--ad-account",
            &ad,
        ],
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("line 3: spend: expected a non-negative amount"),
        "{err}"
    );
    assert_eq!(
        pipeline_tests::count(
            &env,
            "SELECT count(*) AS n FROM ad_spend WHERE source = 'csv'"
        )
        .await,
        2
    );
    assert_eq!(
        pipeline_tests::count(&env, "SELECT (sum(spend) * 100)::bigint AS n FROM ad_spend").await,
        2000
    );
    // Re-importing the same file replaces, never doubles.
    capi_ok(
        db,
        &[
            "spend",
            "import",
            good.to_str().unwrap(),
            "--ad-account",
            &ad,
        ],
    );
    assert_eq!(
        pipeline_tests::count(&env, "SELECT count(*) AS n FROM ad_spend").await,
        2
    );

    // API keys: printed once, stored hashed, revocable.
    let created: Value = capi_json(
        db,
        &[
            "api-key",
            "create",
            "--user-account",
            &account,
            "--name",
            "roi",
        ],
    );
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("capi_") && key.len() == 69);
    assert_eq!(
        pipeline_tests::count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM api_keys WHERE key_hash = '{}'",
                domain::api_key::hash(key)
            )
        )
        .await,
        1
    );
    assert_eq!(
        pipeline_tests::count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM api_keys WHERE key_hash LIKE '%{}%'",
                &key[5..20]
            )
        )
        .await,
        0
    );
    let listed = capi_ok(db, &["api-key", "list", "--user-account", &account]);
    assert!(!listed.contains(key), "{listed}");
    let id = created["id"].as_str().unwrap();
    capi_ok(db, &["api-key", "revoke", id]);
    let (code, _, err) = capi_on(db, &["api-key", "revoke", id]);
    assert_eq!(code, 2, "{err}");

    // A dashboard link: refused without the secret, signed with it.
    let link = |secret: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_capi"));
        cmd.env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY);
        cmd.args([
            "dashboard-link",
            "--user-account",
            &account,
            "--database-url",
            db,
        ]);
        cmd.env_remove("CAPI_REPORTS__DASHBOARD_SECRET");
        if let Some(s) = secret {
            cmd.env("CAPI_REPORTS__DASHBOARD_SECRET", s)
                .env("CAPI_REPORTS__PUBLIC_URL", "https://reports.example.com");
        }
        cmd.output().unwrap()
    };
    let off = link(None);
    assert_eq!(off.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&off.stderr).contains("reports.dashboard_secret is not set"));
    let weak = link(Some("s3cret"));
    assert_eq!(weak.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("is not a strong key"),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );
    let secret = pipeline_tests::DASHBOARD_SECRET;
    let on = link(Some(secret));
    assert_eq!(
        on.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&on.stderr)
    );
    let printed: Value = serde_json::from_slice(&on.stdout).unwrap();
    let url = printed["url"].as_str().unwrap();
    let token = url
        .strip_prefix("https://reports.example.com/dashboard/login?token=")
        .expect(url);
    let now = chrono::Utc::now().timestamp();
    let grant = domain::api_key::verify_link(secret.as_bytes(), token, now).expect("a valid link");
    assert_eq!((grant.account, grant.generation), (f.account, 0));
    assert_eq!(
        domain::api_key::verify_link(secret.as_bytes(), token, now + 16 * 60),
        None,
        "short-lived: 15 minutes"
    );
    // Ending the account's sessions moves it to the next generation: the
    // next link carries it.
    let revoked: Value = serde_json::from_str(&capi_ok(
        db,
        &["dashboard-sessions", "revoke", "--user-account", &account],
    ))
    .unwrap();
    assert_eq!(revoked["generation"], 1, "{revoked}");
    assert_eq!(revoked["sessions_ended"], 0, "{revoked}");
    let again: Value = serde_json::from_slice(&link(Some(secret)).stdout).unwrap();
    let token = again["url"]
        .as_str()
        .unwrap()
        .rsplit_once("token=")
        .unwrap()
        .1
        .to_owned();
    assert_eq!(
        domain::api_key::verify_link(secret.as_bytes(), &token, now).map(|g| g.generation),
        Some(1)
    );
    let (code, _, err) = capi_on(
        db,
        &[
            "dashboard-sessions",
            "revoke",
            "--user-account",
            &uuid::Uuid::new_v4().to_string(),
        ],
    );
    assert_eq!(code, 2, "{err}");
}

/// `capi doctor --json` against the test's database, broker prefix and a fake Meta.
fn doctor(env: &pipeline_tests::TestEnv, meta: &str, args: &[&str]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(["doctor", "--json", "--database-url", &env.db_url])
        .args(args)
        .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
        .env("CAPI_AMQP__URL", env.common().amqp.url)
        .env("CAPI_AMQP__PREFIX", &env.amqp_prefix)
        .env("CAPI_META__GRAPH_BASE_URL", meta)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report: Value =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (out.status.code().unwrap_or(-1), report, stdout)
}

fn findings<'a>(report: &'a Value, check: &str) -> Vec<&'a Value> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["check"] == check)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doctor_is_quiet_on_a_healthy_system_and_names_each_problem_of_a_sick_one() {
    use diesel_async::SimpleAsyncConnection;
    let sandbox = pipeline_tests::SandboxServer::start().await;

    // Healthy: a CAPI direction with a pixel and a token Meta accepts, events sent.
    let env = pipeline_tests::TestEnv::new().await;
    let s = pipeline_tests::seed(&env, &pipeline_tests::SeedOptions::default()).await;
    env.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO capi_events_log (direction_id, user_account_id, event_level, event_name, event_id, status)
               VALUES ('{}', '{}', 1, 'Lead', 'ok-1', 'success')",
            s.direction_id, s.user_account_id
        ))
        .await
        .unwrap();
    // The direction's pixel becomes its WABA's dataset (made at Meta; a
    // second run finds the same one).
    let dataset = |env: &pipeline_tests::TestEnv, dir: uuid::Uuid| {
        let out = Command::new(env!("CARGO_BIN_EXE_capi"))
            .args([
                "direction",
                "dataset",
                &dir.to_string(),
                "--database-url",
                &env.db_url,
            ])
            .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
            .env("CAPI_META__GRAPH_BASE_URL", &sandbox.url)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(0), "{err}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let first = dataset(&env, s.direction_id);
    assert_eq!(first["waba"], "102938475610");
    assert_eq!(first["pixel_was"], "1234567890");
    let made = first["dataset"].as_str().unwrap().to_owned();
    assert_eq!(dataset(&env, s.direction_id)["dataset"], made.as_str());
    let listed = capi_ok(&env.db_url, &["direction", "list"]);
    assert!(
        listed.contains(&format!(r#""pixel_id":"{made}""#)),
        "{listed}"
    );
    let (code, report, out) = doctor(&env, &sandbox.url, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(report["status"], "healthy");
    assert_eq!(findings(&report, "meta_token")[0]["severity"], "info");
    assert!(
        findings(&report, "events")[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("last 24 h: 1 sent, 0 failed")
    );
    assert!(!out.contains("EAAB-test-token"), "no token in the output");

    // Sick: one seeded problem per check.
    let env = pipeline_tests::TestEnv::new().await;
    let s = pipeline_tests::seed(&env, &pipeline_tests::SeedOptions::default()).await;
    let (u, d) = (s.user_account_id, s.direction_id);
    let (nopixel, notoken, shared, expired) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let (ad_expired, dialog, conn_id) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    env.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO ad_accounts (id, user_account_id, name, access_token) VALUES ('{ad_expired}', '{u}', 'old', '{expired_token}');
             INSERT INTO account_directions (id, user_account_id, name, capi_enabled, pixel_id, ad_account_id) VALUES
               ('{nopixel}', '{u}', 'No pixel', true, NULL, NULL),
               ('{notoken}', '{u}', 'No token', true, '555', NULL),
               ('{shared}', '{u}', 'Shares a pixel', true, '1234567890', (SELECT ad_account_id FROM account_directions WHERE id = '{d}')),
               ('{expired}', '{u}', 'Expired token', true, '777', '{ad_expired}');
             INSERT INTO account_directions (user_account_id, name, capi_enabled, pixel_id, ad_account_id, event_name_interest)
               VALUES ('{u}', 'Old names', true, '1234567890', (SELECT ad_account_id FROM account_directions WHERE id = '{d}'), 'Lead');
             INSERT INTO dialog_analysis (id, instance_name, contact_key, contact_phone, from_ad, first_message, last_message)
               VALUES ('{dialog}', '{inst}', '79161234567', '79161234567', true, now() - interval '1 day', now());
             INSERT INTO capi_events_log (direction_id, user_account_id, event_level, event_name, event_id, status, reason, error_message) VALUES
               ('{d}', '{u}', 1, 'Lead', 'e-1', 'error', 'invalid', 'Invalid parameter'),
               ('{d}', '{u}', 1, 'Lead', 'e-2', 'error', 'invalid', 'Invalid parameter'),
               ('{d}', '{u}', 2, 'CompleteRegistration', 'e-3', 'skipped', 'too_old', NULL);
             INSERT INTO outbox (message_id, routing_key, payload, delay_ms, created_at)
               VALUES (gen_random_uuid(), 'capi.event', '{{}}', 0, now() - interval '20 minutes');
             INSERT INTO qualification_runs (dialog_id, direction_id, through_message_id, model, status, error, llm_calls, prompt_tokens, completion_tokens)
               VALUES ('{dialog}', '{d}', 1, 'gpt-4o-mini', 'error', 'the model answered 503', 1, 0, 0);
             INSERT INTO crm_connections (id, user_account_id, crm_type, base_url, access_token) VALUES ('{conn_id}', '{u}', 'amocrm', '{crm_url}', '{crm_token}');
             INSERT INTO crm_changes (connection_id, entity, action, entity_id, change_key, change, evaluated_at, outcome)
               VALUES ('{conn_id}', 'lead', 'status', '1', 'k1', '{{}}', now(), '{{\"result\": \"unreadable\", \"error\": \"amoCRM answered 401\"}}');",
            inst = s.instance,
            expired_token = env.keys().seal(storage::secrets::AD_ACCESS_TOKEN, "EAAB-expired-token").unwrap(),
            crm_token = env.keys().seal(storage::secrets::CRM_ACCESS_TOKEN, "t").unwrap(),
            crm_url = env.keys().seal(storage::secrets::CRM_BASE_URL, "http://x").unwrap(),
        ))
        .await
        .unwrap();
    // A dead-lettered message.
    let bus = env.bus();
    let channel = bus.open_channel().await.unwrap();
    channel
        .basic_publish(
            "".into(),
            bus.names()
                .dead_letter(bus::Queue::CapiEvents)
                .as_str()
                .into(),
            lapin::options::BasicPublishOptions::default(),
            b"{}",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    bus.close().await;
    let (code, report, out) = doctor(&env, &sandbox.url, &[]);
    assert_eq!(code, 2, "{out}");
    assert_eq!(report["status"], "errors");
    let setup: Vec<&str> = findings(&report, "capi_setup")
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert!(
        setup
            .iter()
            .any(|m| m.contains("\"No pixel\"") && m.contains("no pixel")),
        "{setup:?}"
    );
    assert!(
        setup
            .iter()
            .any(|m| m.contains("\"No token\"") && m.contains("no access token")),
        "{setup:?}"
    );
    assert!(
        setup.iter().any(|m| m.contains("\"Old names\"")
            && m.contains("event name \"Lead\" is not one Meta accepts with a click id")),
        "{setup:?}"
    );
    // Its pixel is not the dataset Meta holds for its WABA (made above).
    let wrong_dataset = findings(&report, "dataset")
        .into_iter()
        .find(|f| f["details"]["direction_id"] == d.to_string())
        .unwrap();
    assert_eq!(wrong_dataset["severity"], "error");
    assert!(
        wrong_dataset["message"]
            .as_str()
            .unwrap()
            .contains(&format!(
                "pixel 1234567890 is not its WABA 102938475610's dataset {made}"
            )),
        "{wrong_dataset}"
    );
    let token = findings(&report, "meta_token");
    let expired_token = token
        .iter()
        .find(|f| f["details"]["direction_id"] == expired.to_string())
        .unwrap();
    assert_eq!(expired_token["severity"], "error");
    assert!(
        expired_token["message"]
            .as_str()
            .unwrap()
            .contains("Session has expired")
    );
    let shared_pixel = &findings(&report, "shared_pixel")[0];
    assert_eq!(shared_pixel["severity"], "warning");
    assert!(
        shared_pixel["message"]
            .as_str()
            .unwrap()
            .contains("pixel 1234567890 is used by 3 directions")
    );
    let clid = &findings(&report, "ctwa_clid")[0];
    assert_eq!(clid["details"]["rate_pct"], 100.0);
    assert_eq!(
        clid["details"]["example_dialog_ids"],
        json!([dialog.to_string()])
    );
    let events = findings(&report, "events");
    assert!(events.iter().any(|f| {
        f["severity"] == "warning"
            && f["message"]
                .as_str()
                .unwrap()
                .contains("Invalid parameter ×2")
    }));
    assert_eq!(findings(&report, "too_old")[0]["details"]["too_old"], 1);
    assert_eq!(findings(&report, "outbox")[0]["severity"], "error");
    assert!(
        findings(&report, "models")[0]["message"]
            .as_str()
            .unwrap()
            .contains("1 of 1 analyses failed (last: the model answered 503)")
    );
    assert!(
        findings(&report, "crm")[0]["message"]
            .as_str()
            .unwrap()
            .contains("amoCRM answered 401")
    );
    let dead = &findings(&report, "dead_letters")[0];
    assert_eq!(
        (
            dead["severity"].clone(),
            dead["details"]["dead_lettered"].clone()
        ),
        (json!("error"), json!(1))
    );
    for secret in ["79161234567", "EAAB-expired-token", "EAAB-test-token"] {
        assert!(!out.contains(secret), "{secret} printed");
    }
    // Human-readable, the same findings.
    let human = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(["doctor", "--offline", "--database-url", &env.db_url])
        .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
        .env("CAPI_AMQP__URL", env.common().amqp.url)
        .env("CAPI_AMQP__PREFIX", &env.amqp_prefix)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(human.status.code(), Some(2));
    assert!(text.contains("ERROR   dead_letters"), "{text}");
    assert!(
        text.lines().last().unwrap().starts_with("errors: "),
        "{text}"
    );

    // Narrowed to the healthy direction: only warnings are left of its own
    // (shared pixel, failed events…) plus the system-wide outbox and dead letters.
    let (_, narrowed, _) = doctor(
        &env,
        &sandbox.url,
        &["--direction", &d.to_string(), "--offline"],
    );
    assert!(
        findings(&narrowed, "capi_setup")
            .iter()
            .all(|f| !f["message"].as_str().unwrap().contains("No pixel"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_api_number_is_mapped_with_its_token_from_stdin() {
    let env = pipeline_tests::TestEnv::new().await;
    let s = pipeline_tests::seed(&env, &pipeline_tests::SeedOptions::default()).await;
    let dir = s.direction_id.to_string();
    let (code, out, err) = capi_stdin(
        &[
            "number",
            "map",
            "--phone-number-id",
            "1204727649384372",
            "--direction",
            &dir,
            "--waba-id",
            "102290129340398",
            "--access-token",
            "-",
            "--database-url",
            &env.db_url,
        ],
        "EAAG-number-token\n",
    );
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        printed,
        json!({"phone_number_id": "1204727649384372", "instance": "cloud-1204727649384372",
               "direction_id": dir, "webhook_path": "/webhooks/whatsapp-cloud", "access_token_set": true})
    );
    assert!(!out.contains("EAAG-number-token") && !err.contains("EAAG-number-token"));
    let listed = capi_ok(&env.db_url, &["instance", "list"]);
    assert!(
        listed.contains(r#""instance_name":"cloud-1204727649384372","direction_id":""#)
            && listed.contains(r#""channel":"cloud_api","phone_number_id":"1204727649384372","waba_id":"102290129340398""#)
            && !listed.contains("EAAG"),
        "{listed}"
    );
    let tokens = pipeline_tests::opened_credentials(
        &env,
        storage::secrets::NUMBER_CLOUD_ACCESS_TOKEN,
        "cloud_access_token IS NOT NULL",
    )
    .await;
    assert_eq!(tokens, ["EAAG-number-token"]);

    let (code, _, err) = capi(&[
        "number",
        "map",
        "--phone-number-id",
        "12ab",
        "--direction",
        &dir,
        "--database-url",
        &env.db_url,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--phone-number-id"), "{err}");
}

#[test]
fn a_closed_output_ends_the_command_quietly() {
    // `capi topology | head -0`: the reader is gone before the first line.
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_capi"))
        .args(["topology"])
        .stdout(writer)
        .output()
        .expect("capi runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "nothing to say about a closed pipe: {err}");
    assert_eq!(
        out.status.code(),
        Some(141),
        "as a command killed by SIGPIPE"
    );
}

/// Event names as Meta takes them: a direction starts on names Meta's
/// business-messaging list allows; `direction set` refuses a name off that
/// list for the click-id path (exit 2, naming the allowed ones) and a name
/// repeated across levels, and takes any name without a click id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direction_event_names_follow_metas_business_messaging_list() {
    let env = pipeline_tests::TestEnv::new().await;
    let user = id_of(&capi_ok(
        &env.db_url,
        &["account", "create", "--name", "Clinic"],
    ));
    let dir = id_of(&capi_ok(
        &env.db_url,
        &[
            "direction",
            "create",
            "--user-account",
            &user,
            "--name",
            "Spa",
        ],
    ));
    let names = || {
        let listed = capi_ok(&env.db_url, &["direction", "list"]);
        let row: Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
        [
            "event_name_interest",
            "event_name_qualified",
            "event_name_scheduled",
            "event_name_interest_other",
            "event_name_qualified_other",
            "event_name_scheduled_other",
        ]
        .map(|k| row[k].as_str().unwrap().to_owned())
    };
    assert_eq!(
        names(),
        [
            "LeadSubmitted",
            "QualifiedLead",
            "OrderCreated",
            "Lead",
            "CompleteRegistration",
            "Schedule"
        ]
    );
    let (code, _, err) = capi_on(
        &env.db_url,
        &["direction", "set", &dir, "--event-name-interest", "Lead"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("event name \"Lead\" is not one Meta accepts with a click id")
            && err.contains("allowed: Purchase, LeadSubmitted, InitiateCheckout, AddToCart"),
        "{err}"
    );
    let (code, _, err) = capi_on(
        &env.db_url,
        &[
            "direction",
            "set",
            &dir,
            "--event-name-scheduled",
            "QualifiedLead",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("\"QualifiedLead\" is used for qualified and scheduled"),
        "{err}"
    );
    assert_eq!(names()[0], "LeadSubmitted", "nothing changed");
    // The operator's own list (Meta added a name before we released).
    let (code, _, err) = {
        let out = Command::new(env!("CARGO_BIN_EXE_capi"))
            .args([
                "direction",
                "set",
                &dir,
                "--event-name-scheduled",
                "AppointmentBooked",
                "--database-url",
                &env.db_url,
            ])
            .env("CAPI_SECRETS__KEY", pipeline_tests::TEST_SECRETS_KEY)
            .env(
                "CAPI_META__BUSINESS_MESSAGING_EVENT_NAMES",
                "LeadSubmitted,QualifiedLead,AppointmentBooked",
            )
            .output()
            .unwrap();
        (
            out.status.code(),
            (),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_eq!(code, Some(0), "{err}");
    // `Purchase` belongs to the purchase level: a booking cannot take it.
    let (code, _, err) = capi_on(
        &env.db_url,
        &[
            "direction",
            "set",
            &dir,
            "--event-name-scheduled",
            "Purchase",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("used for scheduled and purchase"), "{err}");
    capi_ok(
        &env.db_url,
        &[
            "direction",
            "set",
            &dir,
            "--event-name-scheduled",
            "InitiateCheckout",
            "--event-name-interest-other",
            "Contact",
        ],
    );
    assert_eq!(
        names(),
        [
            "LeadSubmitted",
            "QualifiedLead",
            "InitiateCheckout",
            "Contact",
            "CompleteRegistration",
            "Schedule"
        ]
    );
}

/// `capi migrate` moves directions on the old default names to names on
/// Meta's list for the click-id path, keeps them without a click id, and
/// says how many it moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_names_migration_moves_the_old_defaults_and_says_so() {
    use diesel_async::SimpleAsyncConnection;
    let env = pipeline_tests::TestEnv::new().await;
    let down = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../migrations/2026-12-05-000019_business_messaging_event_names/down.sql"
    ))
    .unwrap();
    let user = id_of(&capi_ok(
        &env.db_url,
        &["account", "create", "--name", "Clinic"],
    ));
    let create = |name: &str| {
        id_of(&capi_ok(
            &env.db_url,
            &[
                "direction",
                "create",
                "--user-account",
                &user,
                "--name",
                name,
            ],
        ))
    };
    let (old, custom) = (create("Old"), create("Custom"));
    // Back to the schema before migration 19, with one direction on the
    // old defaults and one with names of its own.
    env.conn()
        .await
        .batch_execute(&format!(
            "{down}
             DELETE FROM __diesel_schema_migrations WHERE version = '20261205000019';
             UPDATE account_directions SET event_name_interest = 'Lead', event_name_qualified = 'CompleteRegistration',
               event_name_scheduled = 'Schedule' WHERE id = '{old}';
             UPDATE account_directions SET event_name_interest = 'Contact', event_name_qualified = 'QualifiedLead',
               event_name_scheduled = 'Schedule' WHERE id = '{custom}';"
        ))
        .await
        .unwrap();
    let (code, out, err) = capi_on(&env.db_url, &["migrate"]);
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["applied"], json!(["20261205000019"]));
    let note = answer["notes"][0].as_str().unwrap();
    assert!(
        note.starts_with("2 direction(s) moved from Lead/CompleteRegistration/Schedule"),
        "{note}"
    );
    assert!(err.contains("note: 2 direction(s) moved"), "{err}");
    let listed = capi_ok(&env.db_url, &["direction", "list"]);
    let rows: Vec<Value> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let names = |r: Value| {
        [
            "event_name_interest",
            "event_name_qualified",
            "event_name_scheduled",
            "event_name_interest_other",
            "event_name_qualified_other",
            "event_name_scheduled_other",
        ]
        .map(|k| r[k].as_str().unwrap().to_owned())
    };
    assert_eq!(
        names(row(&old)),
        [
            "LeadSubmitted",
            "QualifiedLead",
            "OrderCreated",
            "Lead",
            "CompleteRegistration",
            "Schedule"
        ]
    );
    // A custom name stays (doctor reports it); the old default beside it moves.
    assert_eq!(
        names(row(&custom)),
        [
            "Contact",
            "QualifiedLead",
            "OrderCreated",
            "Contact",
            "QualifiedLead",
            "Schedule"
        ]
    );
}

/// `capi event preview`: the event as capi-sender builds it, for each level
/// with and without a click id, accepted by Meta's rules (the sandbox's
/// validation); and each thing Meta would refuse, exit 2 with the reason.
#[test]
fn event_preview_prints_what_the_sender_sends_and_refuses_what_meta_would() {
    let preview = |args: &[&str]| {
        let mut all = vec!["event", "preview"];
        all.extend_from_slice(args);
        capi(&all)
    };
    let accepted_by_meta = |event: &Value| {
        let now = event["event_time"].as_i64().unwrap();
        sandbox::validate(&json!({"access_token": "t", "data": [event]}), now)
            .unwrap_or_else(|e| panic!("Meta's rules refuse {event}: {}", e.body));
    };
    let phone_hash = domain::normalize::sha256_hex("5511999999999");
    for (level, number, with_click, without) in [
        ("interest", 1, "LeadSubmitted", "Lead"),
        ("qualified", 2, "QualifiedLead", "CompleteRegistration"),
        ("scheduled", 3, "OrderCreated", "Schedule"),
    ] {
        let (code, out, err) = preview(&[
            "--level",
            level,
            "--ctwa-clid",
            "ARclick",
            "--waba",
            "1029",
            "--phone",
            "+55 11 99999-9999",
        ]);
        assert_eq!(code, 0, "{err}");
        let e: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(e["event_name"], with_click);
        assert_eq!(e["action_source"], "business_messaging");
        assert_eq!(e["messaging_channel"], "whatsapp");
        assert_eq!(
            e["user_data"],
            json!({"ph": [phone_hash], "ctwa_clid": "ARclick", "whatsapp_business_account_id": "1029"})
        );
        assert_eq!(e["custom_data"], json!({"event_level": number}));
        assert!(e["event_id"].as_str().unwrap().len() == 36 && e["event_time"].is_i64());
        accepted_by_meta(&e);
        let (code, out, err) = preview(&["--level", level, "--phone", "5511999999999"]);
        assert_eq!(code, 0, "{err}");
        let e: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            (e["event_name"].as_str(), e["action_source"].as_str()),
            (Some(without), Some("other"))
        );
        assert!(e.get("messaging_channel").is_none() && e["user_data"].get("ctwa_clid").is_none());
        accepted_by_meta(&e);
    }
    let (code, out, err) = preview(&[
        "--level",
        "purchase",
        "--ctwa-clid",
        "c",
        "--waba",
        "1",
        "--value",
        "1500.50",
        "--currency",
        "usd",
        "--order-ref",
        "deal-7",
    ]);
    assert_eq!(code, 0, "{err}");
    let e: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(e["event_name"], "Purchase");
    assert_eq!(
        e["custom_data"],
        json!({"event_level": 4, "value": 1500.5, "currency": "USD"})
    );
    assert!(out.contains(r#""value":1500.5"#), "a JSON number: {out}");
    accepted_by_meta(&e);
    let (code, out, _) = preview(&[
        "--level",
        "purchase",
        "--phone",
        "5511999999999",
        "--value",
        "15000",
        "--currency",
        "RUB",
    ]);
    assert_eq!(code, 0);
    let e: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(
        (e["event_name"].as_str(), e["action_source"].as_str()),
        (Some("Purchase"), Some("other"))
    );
    accepted_by_meta(&e);

    for (args, says) in [
        (
            vec![
                "--level",
                "interest",
                "--ctwa-clid",
                "c",
                "--waba",
                "1",
                "--event-name",
                "Lead",
            ],
            "event name \"Lead\" is not one Meta accepts with a click id",
        ),
        (
            vec![
                "--level",
                "purchase",
                "--ctwa-clid",
                "c",
                "--waba",
                "1",
                "--value",
                "10",
            ],
            "a Purchase needs --value and --currency",
        ),
        (
            vec![
                "--level",
                "purchase",
                "--ctwa-clid",
                "c",
                "--waba",
                "1",
                "--currency",
                "RUB",
            ],
            "a Purchase needs --value and --currency",
        ),
        (
            vec![
                "--level",
                "purchase",
                "--phone",
                "1",
                "--value",
                "10",
                "--currency",
                "RUBLES",
            ],
            "a Purchase needs an ISO 4217 currency code, got \"RUBLES\"",
        ),
        (
            vec!["--level", "scheduled", "--ctwa-clid", "c"],
            "needs the WhatsApp Business Account id",
        ),
        (
            vec!["--level", "interest"],
            "neither a click id nor a phone",
        ),
    ] {
        let (code, out, err) = preview(&args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Without a click id any name goes (action_source other).
    let (code, out, _) = preview(&[
        "--level",
        "interest",
        "--phone",
        "1",
        "--event-name",
        "Contact",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains(r#""event_name":"Contact""#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purchase_entered_by_hand_is_sent_once_per_order_with_the_lower_levels() {
    use diesel_async::RunQueryDsl;
    use pipeline_tests::{Pipeline, PipelineOptions, SeedOptions, count, meta_accepts, seed};
    let env = pipeline_tests::TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
    }
    let lead: Id = diesel::sql_query(
        "INSERT INTO leads (instance_name, contact_key, contact_phone, ctwa_clid) \
         VALUES ($1, '5511999999999', '5511999999999', 'ARclick') RETURNING id",
    )
    .bind::<diesel::sql_types::Text, _>(&s.instance)
    .get_result(&mut env.conn().await)
    .await
    .expect("lead");
    let lead = lead.id.to_string();
    diesel::sql_query(
        "INSERT INTO dialog_analysis (instance_name, contact_key, contact_phone, ctwa_clid, lead_id, direction_id) \
         VALUES ($1, '5511999999999', '5511999999999', 'ARclick', $2, $3)",
    )
    .bind::<diesel::sql_types::Text, _>(&s.instance)
    .bind::<diesel::sql_types::Uuid, _>(lead.parse::<uuid::Uuid>().expect("uuid"))
    .bind::<diesel::sql_types::Uuid, _>(s.direction_id)
    .execute(&mut env.conn().await)
    .await
    .expect("dialog");
    let purchase = |value: &str, currency: &str, order: &str| {
        capi_on(
            &env.db_url,
            &[
                "lead",
                "purchase",
                "--lead",
                &lead,
                "--value",
                value,
                "--currency",
                currency,
                "--order-ref",
                order,
            ],
        )
    };
    let (code, out, err) = purchase("1500.50", "usd", "INV-1");
    assert_eq!(code, 0, "{err}");
    let printed: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        (&printed["queued"], &printed["value"], &printed["currency"]),
        (&json!(true), &json!(1500.5), &json!("USD"))
    );
    assert_eq!(
        printed["lower_levels_queued"],
        json!(["interest", "qualified", "scheduled"])
    );
    // The same order again: nothing more.
    let (code, out, _) = purchase("1500.50", "USD", "INV-1");
    assert_eq!(code, 0);
    assert!(out.contains(r#""queued":false"#), "{out}");
    assert_eq!(count(&env, "SELECT count(*) AS n FROM outbox").await, 4);
    // What Meta would refuse, and a lead that does not exist: exit 2, nothing stored.
    for (value, currency, why) in [
        ("-5", "USD", "--value"),
        ("1,000.00", "USD", "--value"),
        ("10", "DOLLARS", "--currency"),
    ] {
        let (code, _, err) = purchase(value, currency, "INV-2");
        assert_eq!(code, 2, "{value} {currency}: {err}");
        assert!(err.contains(why), "{err}");
    }
    let (code, _, err) = capi_on(
        &env.db_url,
        &[
            "lead",
            "purchase",
            "--lead",
            "00000000-0000-0000-0000-000000000000",
            "--value",
            "1",
            "--currency",
            "USD",
            "--order-ref",
            "X",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("no lead"), "{err}");
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM capi_deliveries").await,
        4
    );
    // The pipeline sends what was queued; Meta's fake holds it to Meta's rules.
    let meta = pipeline_tests::wiremock::MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    pipeline_tests::wait_for_successes(&env, 4, std::time::Duration::from_secs(30)).await;
    let events = pipeline_tests::meta_events(&meta).await;
    let purchase = events
        .iter()
        .find(|e| e["event_name"] == "Purchase")
        .expect("a Purchase");
    assert_eq!(
        purchase["custom_data"],
        json!({"event_level": 4, "value": 1500.5, "currency": "USD"})
    );
    assert_eq!(purchase["user_data"]["ctwa_clid"], "ARclick");
    assert_eq!(events.len(), 4, "{events:?}");
    p.stop().await;
}
