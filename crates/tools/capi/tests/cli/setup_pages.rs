//! The set-up operations from the CLI and from the dashboard's pages: one
//! table of bad inputs drives both, each refused with the same message and
//! nothing changed; then good changes from both, audited with who made
//! them, before → after, and no secret in the trail.

use super::*;
use domain::api_key::Role;
use pipeline_tests::dashboard_session::{DashboardSession, error_text};
use pipeline_tests::{ReportsService, SandboxServer, TestEnv, reports_settings};

/// `capi ARGS --database-url DB` with Evolution API, Meta's Graph API and
/// the model at `evolution` (the sandbox serves all three), as the
/// operating-system user "operator", `input` on standard input.
fn capi_as_operator(
    db: &str,
    evolution: &str,
    args: &[&str],
    input: &str,
) -> (i32, String, String) {
    let llm = format!("{evolution}/v1");
    let all = [args, &["--database-url", db]].concat();
    let env = [
        ("CAPI_BOT__EVOLUTION_BASE_URL", evolution),
        ("CAPI_META__GRAPH_BASE_URL", evolution),
        ("CAPI_LLM__BASE_URL", llm.as_str()),
        ("USER", "operator"),
    ];
    capi_env(&all, input, &env)
}

/// One bad input, as the CLI and as a page form take it.
struct Case {
    what: &'static str,
    cli: Vec<String>,
    stdin: &'static str,
    path: String,
    form: Vec<(&'static str, String)>,
    /// The CLI's exit code and the page's status.
    code: i32,
    status: u16,
    /// A part of the message, so the case is refused for its own reason.
    says: &'static str,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_set_up_rule_refuses_the_same_from_the_cli_and_the_pages_and_changes_are_audited() {
    let env = TestEnv::new().await;
    let sb = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sb.url)).await;
    let run = |args: &[&str], input: &str| capi_as_operator(&env.db_url, &sb.url, args, input);
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args, "");
        assert_eq!(code, 0, "capi {args:?}: {err}");
        out
    };
    let user = id_of(&ok(&["account", "create", "--name", "Clinic"]));
    let dir = id_of(&ok(&[
        "direction",
        "create",
        "--user-account",
        &user,
        "--name",
        "Dentistry",
    ]));
    let editor = DashboardSession::sign_in(&service, user.parse().unwrap(), Role::Editor).await;
    let dir_path = format!("/dashboard/setup/directions/{dir}");
    let nobody = uuid::Uuid::new_v4().to_string();
    let many_rules: &'static str = Box::leak(
        serde_json::to_string(
            &(0..51)
                .map(|i| json!({"field_id": "status_id", "enum_id": i.to_string()}))
                .collect::<Vec<_>>(),
        )
        .unwrap()
        .into_boxed_str(),
    );

    let set = |extra: &[&str]| strings(&[&["direction", "set", dir.as_str()][..], extra].concat());
    let purchase = strings(&[
        "direction",
        "crm-fields",
        "set",
        &dir,
        "--level",
        "purchase",
        "--rules",
        "-",
    ]);
    let number = |extra: &[&str]| {
        strings(&[&["number", "map", "--direction", dir.as_str()][..], extra].concat())
    };
    let connect = |extra: &[&str]| {
        strings(
            &[
                &["instance", "connect", "--direction", dir.as_str()][..],
                extra,
            ]
            .concat(),
        )
    };
    let cases = vec![
        Case {
            what: "a blank direction name",
            cli: strings(&[
                "direction",
                "create",
                "--user-account",
                &user,
                "--name",
                "  ",
            ]),
            stdin: "",
            path: "/dashboard/setup/directions".into(),
            form: vec![("name", "  ".into()), ("source", "whatsapp".into())],
            code: 2,
            status: 422,
            says: "needs a name",
        },
        Case {
            what: "a pixel that is not Meta's id",
            cli: set(&["--pixel", "12ab"]),
            stdin: "",
            path: dir_path.clone(),
            form: vec![("pixel", "12ab".into())],
            code: 2,
            status: 422,
            says: "digits only",
        },
        Case {
            what: "an event name Meta refuses on business messaging",
            cli: set(&["--event-name-qualified", "Lead"]),
            stdin: "",
            path: dir_path.clone(),
            form: vec![("event_name_qualified", "Lead".into())],
            code: 2,
            status: 422,
            says: "Lead",
        },
        Case {
            what: "two levels with one name",
            cli: set(&["--event-name-scheduled", "QualifiedLead"]),
            stdin: "",
            path: dir_path.clone(),
            form: vec![("event_name_scheduled", "QualifiedLead".into())],
            code: 2,
            status: 422,
            says: "QualifiedLead",
        },
        Case {
            what: "an empty event name",
            cli: set(&["--event-name-interest-other", " "]),
            stdin: "",
            path: dir_path.clone(),
            form: vec![("event_name_interest_other", " ".into())],
            code: 2,
            status: 422,
            says: "cannot be empty",
        },
        Case {
            what: "a test event code with spaces",
            cli: set(&["--test-event-code", "TEST 1!"]),
            stdin: "",
            path: dir_path.clone(),
            form: vec![("test_event_code", "TEST 1!".into())],
            code: 2,
            status: 422,
            says: "test event code",
        },
        Case {
            what: "an LDU country Meta does not know",
            cli: set(&["--ldu-country", "5"]),
            stdin: "",
            path: dir_path.clone(),
            form: vec![("ldu_country", "5".into())],
            code: 2,
            status: 422,
            says: "LDU country",
        },
        Case {
            what: "an LDU state Meta does not know",
            cli: set(&["--ldu-state", "7"]),
            stdin: "",
            path: dir_path.clone(),
            form: vec![("ldu_state", "7".into())],
            code: 2,
            status: 422,
            says: "LDU state",
        },
        Case {
            what: "a direction that does not exist",
            cli: strings(&["direction", "set", &nobody, "--pixel", "1"]),
            stdin: "",
            path: format!("/dashboard/setup/directions/{nobody}"),
            form: vec![("pixel", "1".into())],
            code: 2,
            status: 404,
            says: "no direction",
        },
        Case {
            what: "a CRM rule that names no field",
            cli: strings(&[
                "direction",
                "crm-fields",
                "set",
                &dir,
                "--level",
                "qualified",
                "--rules",
                "-",
            ]),
            stdin: r#"[{"field_id": " ", "enum_id": "142"}]"#,
            path: format!("{dir_path}/crm-rules"),
            form: vec![("level", "qualified".into()), ("pick", " |142".into())],
            code: 2,
            status: 422,
            says: "field_id",
        },
        Case {
            what: "more rules than a level takes",
            cli: strings(&[
                "direction",
                "crm-fields",
                "set",
                &dir,
                "--level",
                "interest",
                "--rules",
                "-",
            ]),
            stdin: many_rules,
            path: format!("{dir_path}/crm-rules"),
            form: std::iter::once(("level", "interest".to_owned()))
                .chain((0..51).map(|i| ("pick", format!("status_id|{i}"))))
                .collect(),
            code: 2,
            status: 422,
            says: "at most 50 rules",
        },
        Case {
            what: "an instance without its Evolution API key",
            cli: connect(&["--instance", "clinic"]),
            stdin: "",
            path: "/dashboard/setup/instances".into(),
            form: vec![
                ("instance", "clinic".into()),
                ("direction", dir.clone()),
                ("evolution_api_key", String::new()),
            ],
            code: 2,
            status: 422,
            says: "Evolution API key is needed",
        },
        Case {
            what: "an instance name that is not a path segment",
            cli: connect(&["--instance", "bad name!", "--evolution-api-key", "-"]),
            stdin: "evo-key\n",
            path: "/dashboard/setup/instances".into(),
            form: vec![
                ("instance", "bad name!".into()),
                ("direction", dir.clone()),
                ("evolution_api_key", "evo-key".into()),
            ],
            code: 2,
            status: 422,
            says: "instance name",
        },
        Case {
            what: "a key Evolution API refuses",
            cli: connect(&["--instance", "clinic", "--evolution-api-key", "-"]),
            stdin: "wrong-key\n",
            path: "/dashboard/setup/instances".into(),
            form: vec![
                ("instance", "clinic".into()),
                ("direction", dir.clone()),
                ("evolution_api_key", "wrong-key".into()),
            ],
            code: 1,
            status: 502,
            says: "401",
        },
        Case {
            what: "a purchase in a currency Meta does not take",
            cli: purchase.clone(),
            stdin: r#"{"when": {"field_id": "status_id", "enum_id": "142"}, "value_field": "price", "currency": "XXZ"}"#,
            path: format!("{dir_path}/crm-purchase"),
            form: vec![
                ("mode", "rule".into()),
                ("when", "status_id|142".into()),
                ("value_field", "price".into()),
                ("currency", "XXZ".into()),
            ],
            code: 2,
            status: 422,
            says: "XXZ",
        },
        Case {
            what: "a purchase without the amount's field",
            cli: purchase.clone(),
            stdin: r#"{"when": {"field_id": "status_id", "enum_id": "142"}, "value_field": ""}"#,
            path: format!("{dir_path}/crm-purchase"),
            form: vec![
                ("mode", "rule".into()),
                ("when", "status_id|142".into()),
                ("value_field", String::new()),
            ],
            code: 2,
            status: 422,
            says: "value_field",
        },
        Case {
            what: "a business description with a blank part",
            cli: strings(&[
                "direction",
                "qualification-prompt",
                "generate",
                &dir,
                "--sells",
                "aligners",
                "--good-customer",
                " ",
                "--booking",
                "a free consultation",
            ]),
            stdin: "",
            path: format!("{dir_path}/qualification-prompt"),
            form: vec![
                ("sells", "aligners".into()),
                ("good_customer", " ".into()),
                ("booking", "a free consultation".into()),
            ],
            code: 2,
            status: 422,
            says: "are all needed",
        },
        Case {
            what: "a phone number id that is not Meta's",
            cli: number(&["--phone-number-id", "12a"]),
            stdin: "",
            path: "/dashboard/setup/numbers".into(),
            form: vec![
                ("phone_number_id", "12a".into()),
                ("direction", dir.clone()),
            ],
            code: 2,
            status: 422,
            says: "digits only",
        },
        Case {
            what: "a subscription without the number's token",
            cli: number(&[
                "--phone-number-id",
                "1099",
                "--waba-id",
                "4455",
                "--subscribe-app",
            ]),
            stdin: "",
            path: "/dashboard/setup/numbers".into(),
            form: vec![
                ("phone_number_id", "1099".into()),
                ("direction", dir.clone()),
                ("waba_id", "4455".into()),
                ("subscribe_app", "true".into()),
            ],
            code: 2,
            status: 422,
            says: "needs the WABA id and the number's access token",
        },
        Case {
            what: "a token Meta refuses",
            cli: number(&[
                "--phone-number-id",
                "1099",
                "--waba-id",
                "4455",
                "--subscribe-app",
                "--access-token",
                "-",
            ]),
            stdin: "EAAB-expired-token\n",
            path: "/dashboard/setup/numbers".into(),
            form: vec![
                ("phone_number_id", "1099".into()),
                ("direction", dir.clone()),
                ("waba_id", "4455".into()),
                ("access_token", "EAAB-expired-token".into()),
                ("subscribe_app", "true".into()),
            ],
            code: 1,
            status: 502,
            says: "Meta refused the subscription",
        },
    ];
    for c in &cases {
        let args: Vec<&str> = c.cli.iter().map(String::as_str).collect();
        let (code, _, err) = run(&args, c.stdin);
        let cli_message = err
            .trim()
            .strip_prefix("capi: ")
            .unwrap_or(err.trim())
            .to_owned();
        assert_eq!(code, c.code, "{}: CLI exit: {err}", c.what);
        let form: Vec<(&str, &str)> = c.form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = editor.post_form(&c.path, &form).await;
        assert_eq!(page.status, c.status, "{}: page: {}", c.what, page.body);
        let page_message = error_text(&page.body).unwrap_or_default();
        assert_eq!(page_message, cli_message, "{}: the same message", c.what);
        assert!(cli_message.contains(c.says), "{}: {cli_message}", c.what);
        assert!(
            !cli_message.contains("wrong-key") && !cli_message.contains("evo-key"),
            "{cli_message}"
        );
    }
    // Refused, so nothing changed: no webhook set, no audit entry but the
    // direction's creation.
    let audit = |user: &str| -> Vec<Value> {
        ok(&["audit", "list", "--user-account", user])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let trail = audit(&user);
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!(trail[0]["action"], "direction.create");
    assert_eq!(trail[0]["actor"], "cli:operator");
    assert_eq!(trail[0]["after"]["name"], "Dentistry");
    assert_eq!(sb.get("/sandbox/evolution/webhooks").await, json!({}));

    // Good changes from both, in the trail with who made them.
    ok(&["direction", "set", &dir, "--pixel", "4242"]);
    let saved = editor
        .post_form(
            &dir_path,
            &[("pixel", "4343"), ("event_name_qualified", "QualifiedLead")],
        )
        .await;
    assert_eq!(
        (saved.status, saved.location.as_deref()),
        (303, Some(dir_path.as_str())),
        "{}",
        saved.body
    );
    let connected = editor
        .post_form(
            "/dashboard/setup/instances",
            &[
                ("instance", "clinic"),
                ("direction", &dir),
                ("phone", "5511999990000"),
                ("evolution_api_key", "evo-key-abcdef"),
                ("evolution_api_version", "v2"),
            ],
        )
        .await;
    assert_eq!(connected.status, 303, "{}", connected.body);
    let hooks = sb.get("/sandbox/evolution/webhooks").await;
    let hook = &hooks["clinic"];
    assert_eq!(
        hook["url"],
        "http://127.0.0.1:8080/webhooks/evolution/clinic"
    );
    assert_eq!(hook["events"], json!(["MESSAGES_UPSERT"]));
    assert_eq!(hook["enabled"], true);
    let secret = hook["headers"]["X-Webhook-Secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.len() >= 16, "{hook}");
    let trail = audit(&user);
    let actions: Vec<(&str, &str)> = trail
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["actor"].as_str().unwrap()))
        .collect();
    let link_actor = actions[0].1;
    assert!(
        link_actor.starts_with("link:") && link_actor.len() == 13,
        "{actions:?}"
    );
    assert_eq!(
        actions,
        [
            ("instance.connect", link_actor),
            ("direction.update", link_actor),
            ("direction.update", "cli:operator"),
            ("direction.create", "cli:operator"),
        ]
    );
    assert_eq!(
        (
            trail[1]["before"]["pixel_id"].as_str(),
            trail[1]["after"]["pixel_id"].as_str()
        ),
        (Some("4242"), Some("4343"))
    );
    assert_eq!(trail[2]["before"]["pixel_id"], Value::Null);
    assert_eq!(trail[2]["after"]["pixel_id"], "4242");
    assert_eq!(trail[0]["after"]["evolution_api_key"], "set");
    assert_eq!(trail[0]["after"]["webhook_secret"], "set");
    let all = ok(&["audit", "list"]);
    assert!(
        !all.contains("evo-key-abcdef") && !all.contains(&secret),
        "no secret in the trail: {all}"
    );
    // The audit page shows the same, newest first.
    let page = editor.get("/dashboard/setup/audit").await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("instance.connect") && page.body.contains("cli:operator"),
        "{}",
        page.body
    );
    assert!(page.body.contains("4242") && page.body.contains("4343"));
    assert!(!page.body.contains("evo-key-abcdef") && !page.body.contains(&secret));
    // A Cloud API number, the app subscribed to its WABA with its token.
    let mapped = editor
        .post_form(
            "/dashboard/setup/numbers",
            &[
                ("phone_number_id", "1099"),
                ("direction", &dir),
                ("waba_id", "4455"),
                ("access_token", "EAAB-number-token"),
                ("subscribe_app", "true"),
            ],
        )
        .await;
    assert_eq!(mapped.status, 303, "{}", mapped.body);
    let apps: Value = reqwest::Client::new()
        .get(format!("{}/v23.0/4455/subscribed_apps", sb.url))
        .bearer_auth("EAAB-number-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        apps["data"][0]["whatsapp_business_api_data"]["id"],
        sandbox::subscribed_apps::SANDBOX_APP
    );
    let trail = audit(&user);
    assert_eq!(trail[0]["action"], "number.map");
    assert_eq!(trail[0]["after"]["access_token"], "set");
    assert_eq!(trail[0]["after"]["app_subscribed"], true);
    assert!(!ok(&["audit", "list"]).contains("EAAB-number-token"));
    // A purchase rule from the page, read back by the CLI.
    let bought = editor
        .post_form(
            &format!("{dir_path}/crm-purchase"),
            &[
                ("mode", "rule"),
                ("when", "status_id|142"),
                ("value_field", "price"),
                ("currency", "RUB"),
            ],
        )
        .await;
    assert_eq!(bought.status, 303, "{}", bought.body);
    let listed = ok(&["direction", "crm-fields", "list", &dir]);
    let purchase_line: Value = serde_json::from_str(listed.lines().last().unwrap()).unwrap();
    assert_eq!(
        purchase_line,
        json!({"level": "purchase", "rule": {"when": {"field_id": "status_id", "enum_id": "142"},
               "value_field": "price", "currency": "RUB"}})
    );
    assert_eq!(audit(&user)[0]["action"], "direction.purchase_rule");
    // The qualification prompt written by the model from the page.
    let written = editor
        .post_form(
            &format!("{dir_path}/qualification-prompt"),
            &[
                ("sells", "aligners and whitening"),
                ("good_customer", "adults who can pay within a month"),
                ("booking", "a free consultation"),
            ],
        )
        .await;
    assert_eq!(written.status, 303, "{}", written.body);
    let trail = audit(&user);
    assert_eq!(trail[0]["action"], "direction.qualification_prompt");
    let prompt = trail[0]["after"]["qualification_prompt"].as_str().unwrap();
    assert!(prompt.len() > 100, "the model's prompt: {prompt}");
    let shown = editor.get(&dir_path).await.body;
    assert!(
        shown.contains(r#"<pre class="prompt">"#),
        "the page shows it"
    );
    // The CLI's other set-up commands are in the trail too.
    ok(&[
        "instance",
        "map",
        "--instance",
        "walk-in",
        "--direction",
        &dir,
    ]);
    let (code, _, err) = run(
        &[
            "crm",
            "connect",
            "amocrm",
            "--user-account",
            &user,
            "--base-url",
            "https://clinic.amocrm.ru",
            "--subdomain",
            "clinic",
        ],
        "amo-long-lived-token\n",
    );
    assert_eq!(code, 0, "{err}");
    let trail = audit(&user);
    assert_eq!(
        (
            trail[1]["action"].as_str(),
            trail[1]["after"]["webhook_secret"].as_str()
        ),
        (Some("instance.map"), Some("set"))
    );
    assert_eq!(trail[0]["action"], "crm.connect");
    assert_eq!(trail[0]["after"]["host"], "clinic.amocrm.ru");
    assert_eq!(trail[0]["after"]["access_token"], "set");
    assert!(!ok(&["audit", "list"]).contains("amo-long-lived-token"));
    // The CLI connects the same way (the stored key and secret kept).
    let again: Value = serde_json::from_str(
        ok(&[
            "instance",
            "connect",
            "--instance",
            "clinic",
            "--direction",
            &dir,
        ])
        .trim(),
    )
    .unwrap();
    assert_eq!(
        again["webhook_url"],
        "http://127.0.0.1:8080/webhooks/evolution/clinic"
    );
    let hooks = sb.get("/sandbox/evolution/webhooks").await;
    assert_eq!(
        hooks["clinic"]["headers"]["X-Webhook-Secret"],
        secret.as_str(),
        "the secret kept"
    );
    service.stop().await;
}
