//! `capi doctor`: quiet when healthy, each problem named when not.

use super::*;

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
    let dataset = |env: &pipeline_tests::TestEnv, dir: domain::ids::DirectionId| {
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
    let active = findings(&report, "capi_health");
    assert_eq!(active.len(), 1, "{out}");
    assert_eq!(active[0]["severity"], "ok");
    assert_eq!(active[0]["details"]["health"]["status"], "active");

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
    // The health verdicts the dashboard shows (domain::health): Meta refused
    // the seeded direction's events and accepted none; the new directions
    // have sent nothing yet.
    let health = |id: String| {
        findings(&report, "capi_health")
            .into_iter()
            .find(|f| f["details"]["direction_id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id}: {out}"))
    };
    let failing = health(d.to_string());
    assert_eq!(
        (
            &failing["severity"],
            &failing["details"]["health"]["status"]
        ),
        (&json!("error"), &json!("failing"))
    );
    assert!(
        failing["message"]
            .as_str()
            .unwrap()
            .contains("failing: Meta refuses its events (2 refused in 24 h"),
        "{failing}"
    );
    let silent = health(nopixel.to_string());
    assert_eq!(
        (&silent["severity"], &silent["details"]["health"]["status"]),
        (&json!("warning"), &json!("silent"))
    );
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
