//! CRM connections, field mappings and the CRM's own field lists.

use super::*;

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
