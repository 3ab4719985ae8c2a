//! Accounts, directions, instances and numbers, event names, and a purchase entered by hand.

use super::*;

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
               "direction_id": dir, "webhook_path": "/webhooks/whatsapp-cloud", "access_token_set": true,
               "app_subscribed": false})
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
    assert!(
        err.contains("phone number id") && err.contains("digits only"),
        "{err}"
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
