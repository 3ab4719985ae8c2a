//! `parse-webhook`, `normalize`, `crm-match`, `event preview`: what the CLI reads and prints without a database.

use super::*;

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
            "from_ad": true, "timestamp": 1750275992, "ad_id": "120226305854810726"}]})
    );
    assert_eq!(
        run("meta-cloudapi_webhook_messages_text_APP-DASHBOARD-TEST-payload.json"),
        json!({"messages": [{"phone_number_id": "123456123", "waba_id": "0", "message_id": "ABGGFlA5Fpa",
            "phone": "16315551181", "user_id": null, "from_me": false, "text": "this is a text message",
            "ctwa_clid": null, "ad_id": null, "from_ad": false, "timestamp": 1504902988}]})
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
                   "ctwa_clid": null, "ad_id": null, "from_ad": false}),
        ),
        (
            "evolution-v1.8.0_webhook_messages-upsert_text-sent-from-phone_fromMe-true_issue631.json",
            json!({"instance": "5535********", "message_id": "4DA1D8D1B5B0139AC8C44B44B8CF5A93", "from_me": true, "phone": null, "lid": null,
                   "text": "Clínica ****** agradece seu contato. Como podemos ajudar?\n*Atendimento de segunda a sexta das 08:00hs as 18:00hs*\nNosso telefone fixo: **********",
                   "timestamp": 1717604327, "ctwa_clid": null, "ad_id": null, "from_ad": false}),
        ),
        (
            "evolution-v2.3.6_webhook_messages-upsert_ctwa_SHAPE-DERIVED-from-code.json",
            json!({"instance": "my-instance", "message_id": "AC1830B11436BAC01F6FA6196C534B8A", "from_me": false,
                   "phone": "5511999999999", "lid": "66417458159826@lid",
                   "text": "Olá! Tenho interesse e queria mais informações, por favor.", "timestamp": 1773449493,
                   "ctwa_clid": "Aff...", "ad_id": "120239177205810192", "from_ad": true}),
        ),
        (
            "v1-media-ad-click.json",
            json!({"instance": "clinic-1", "message_id": "3EB0C4A1F2", "from_me": false, "phone": "79161234567", "lid": null,
                   "text": "Здравствуйте, хочу записаться", "timestamp": 1760000000,
                   "ctwa_clid": "AfhQz0w2_ClickIdFromAd", "ad_id": "120211111111111111", "from_ad": true}),
        ),
        (
            "v2-4-lid-markers-only.json",
            json!({"instance": "clinic-2", "message_id": "AC99", "from_me": false, "phone": "447700900123", "lid": "99887766554433@lid",
                   "text": "Hi, is this still available?", "timestamp": 1773449493, "ctwa_clid": null, "ad_id": null, "from_ad": true}),
        ),
        (
            "lid-only.json",
            json!({"instance": "clinic-3", "message_id": "L1", "from_me": false, "phone": null, "lid": "66417458159826@lid",
                   "text": "oi", "timestamp": 1773449000, "ctwa_clid": null, "ad_id": null, "from_ad": false}),
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
