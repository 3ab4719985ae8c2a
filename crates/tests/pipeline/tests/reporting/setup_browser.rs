//! The first set-up in a real browser (Debian's headless Chromium over
//! WebDriver): an editor creates a direction with defaults, sets its CRM,
//! connects an Evolution instance (the sandbox's Evolution API receives the
//! webhook settings), picks the fake amoCRM's "Qualified" status for the
//! qualified level — and a webhook for such a deal yields Lead and
//! CompleteRegistration (the level's configured name) at the sandbox's
//! Meta. The audit page lists the changes; a viewer is refused every form;
//! a form stripped of its CSRF token is refused. Screenshots:
//! `target/setup-*.png`.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use super::dashboard_browser::target_dir;
use domain::api_key::Role;
use domain::level::CrmType;
use pipeline_tests::{
    Pipeline, PipelineOptions, ReportsService, SandboxServer, SeedOptions, TestEnv, count,
    eventually, reports_settings, seed, webdriver::Browser,
};
use serde_json::{Value, json};
use std::time::Duration;
use storage::crm::NewConnection;

fn link(service: &ReportsService, account: uuid::Uuid, role: Role) -> String {
    let (url, _) = reports_settings("http://unused")
        .dashboard_link(account.into(), 0, role)
        .unwrap();
    url.replace("http://127.0.0.1", &service.url(""))
}

async fn shot(b: &Browser, name: &str) {
    let path = target_dir().join(format!("setup-{name}.png"));
    std::fs::write(&path, b.screenshot().await).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_editor_sets_up_a_crm_direction_in_the_browser_and_a_qualified_deal_reaches_meta() {
    let env = TestEnv::new().await;
    let s = seed(
        &env,
        &SeedOptions {
            user_token: Some("EAAB-user-token"),
            ..SeedOptions::default()
        },
    )
    .await;
    let sb = SandboxServer::start().await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&sb.url)).await;
    let gateway = format!("http://127.0.0.1:{}", p.gateway_port);
    let mut settings = reports_settings(&sb.url);
    settings.gateway_url = gateway.clone();
    let service = ReportsService::start(&env, settings).await;
    // The business's amoCRM (connected from the CLI: OAuth in the browser
    // is not built yet), its pipeline's statuses and its webhooks.
    let connection = {
        let mut conn = env.conn().await;
        storage::crm::create_connection(
            &mut conn,
            &env.keys(),
            &NewConnection {
                access_token: Some("amo-token"),
                webhook_secret: Some("amo-secret"),
                account_subdomain: Some("clinic"),
                account_id: Some("29"),
                ..NewConnection::new(s.user_account_id, CrmType::AmoCrm, &sb.url)
            },
        )
        .await
        .unwrap()
    };
    sb.put(
        "/sandbox/amocrm/account",
        &json!({"subdomain": "clinic", "id": "29", "access_token": "amo-token", "currency": "RUB",
                "webhook_url": format!("{gateway}/webhooks/amocrm/{connection}?secret=amo-secret")}),
    )
    .await;
    sb.put(
        "/sandbox/amocrm/pipelines",
        &json!([{"id": 936736, "name": "Sales", "_embedded": {"statuses": [
            {"id": 141, "name": "New"}, {"id": 142, "name": "Qualified"}, {"id": 143, "name": "Booked"}]}}]),
    )
    .await;
    let account = s.user_account_id.uuid();
    let b = Browser::start().await;

    // Sign in as an editor; the dashboard links to the set-up.
    b.goto(&link(&service, account, Role::Editor)).await;
    b.submit("header a.setup").await;
    assert!(b.url().await.ends_with("/dashboard/setup"));
    // A direction with defaults: a name, CAPI on, its levels from the CRM.
    b.fill("#new-direction input[name=name]", "Browser clinic")
        .await;
    b.click_on("#new-direction select[name=source] option[value=crm]")
        .await;
    b.submit("#new-direction button[type=submit]").await;
    let direction_url = b.url().await;
    let direction = direction_url.rsplit('/').next().unwrap().to_owned();
    assert!(direction.parse::<uuid::Uuid>().is_ok(), "{direction_url}");
    assert_eq!(b.text_of("header h1").await, "Direction: Browser clinic");
    // Its dataset, CRM, and a deal without a WhatsApp dialog sent with the
    // hashed phone only; the event names stay the defaults.
    b.fill("#direction-capi input[name=pixel]", "5550001").await;
    b.click_on("#direction-capi select[name=crm] option[value=amocrm]")
        .await;
    b.click_on("#direction-capi select[name=crm_no_dialog] option[value=phone_only]")
        .await;
    b.submit("#direction-capi button[type=submit]").await;
    assert_eq!(
        b.attr(
            &b.find("#direction-capi input[name=pixel]").await.unwrap(),
            "value"
        )
        .await
        .as_deref(),
        Some("5550001")
    );
    shot(&b, "direction").await;

    // A WhatsApp number: the Evolution instance, its webhook set at Evolution.
    b.goto(&service.url("/dashboard/setup")).await;
    b.fill("#connect-instance input[name=instance]", "browser-wa")
        .await;
    b.click_on(&format!(
        "#connect-instance select[name=direction] option[value='{direction}']"
    ))
    .await;
    b.fill("#connect-instance input[name=phone]", "5511988887777")
        .await;
    b.fill(
        "#connect-instance input[name=evolution_api_key]",
        "evo-key-browser",
    )
    .await;
    b.submit("#connect-instance button[type=submit]").await;
    let rows = b.text_of("#numbers table").await;
    assert!(
        rows.contains("browser-wa") && rows.contains("Browser clinic"),
        "{rows}"
    );
    let hooks = sb.get("/sandbox/evolution/webhooks").await;
    let hook = &hooks["browser-wa"];
    assert_eq!(
        hook["url"],
        format!("{gateway}/webhooks/evolution/browser-wa")
    );
    assert_eq!(hook["events"], json!(["MESSAGES_UPSERT"]));
    let secret = hook["headers"]["X-Webhook-Secret"]
        .as_str()
        .unwrap()
        .to_owned();
    shot(&b, "numbers").await;
    // The gateway takes the instance's webhooks with that secret.
    let accepted = reqwest::Client::new()
        .post(format!("{gateway}/webhooks/evolution/browser-wa"))
        .header("X-Webhook-Secret", &secret)
        .json(&pipeline_tests::customer_message(
            "browser-wa",
            "BW1",
            "5511977776666",
            "Oi",
            None,
            pipeline_tests::recent(5),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        accepted.status().as_u16(),
        200,
        "{}",
        accepted.text().await.unwrap()
    );

    // The CRM mapping: "qualified" is the pipeline's Qualified status.
    b.goto(&format!("{direction_url}/crm")).await;
    let options = b.text_of("#level-qualified select[name=pick]").await;
    assert!(options.contains("Sales / Qualified"), "{options}");
    b.click_on("#level-qualified select[name=pick] option[value='status_id|142']")
        .await;
    b.submit("#level-qualified button[type=submit]").await;
    assert!(
        b.text_of("#level-qualified")
            .await
            .contains("status_id = 142")
    );
    // The form shows the current choice (saving it unchanged keeps it).
    let chosen = b
        .find("#level-qualified option[value='status_id|142']")
        .await
        .unwrap();
    assert_eq!(b.attr(&chosen, "selected").await.as_deref(), Some("true"));
    let other = b
        .find("#level-interest option[value='status_id|142']")
        .await
        .unwrap();
    assert_eq!(b.attr(&other, "selected").await, None);
    // "Test with a real deal": the CRM's lead 501 in that status.
    sb.put(
        "/sandbox/amocrm/contacts/601",
        &json!({"name": "Customer", "custom_fields_values": [{"field_id": 1, "field_code": "PHONE",
                "field_type": "multitext", "values": [{"value": "+55 11 96666-5555", "enum_code": "WORK"}]}]}),
    )
    .await;
    let fired = sb
        .put(
            "/sandbox/amocrm/leads/501",
            &json!({"status_id": 142, "pipeline_id": 936736, "custom_fields_values": null,
                    "contacts": [{"id": 601, "is_main": true}]}),
        )
        .await;
    assert_eq!(fired["webhook_status"], 200, "{fired}");
    b.fill("#try-deal input[name=deal]", "501").await;
    b.submit("#try-deal button[type=submit]").await;
    assert_eq!(
        b.text_of("#try-deal p.tried").await,
        "Deal 501: interest qualified"
    );
    shot(&b, "crm").await;

    // The deal's webhook (fired above) reaches Meta as the level's names.
    let events = eventually(
        "the deal's events at the sandbox",
        Duration::from_secs(30),
        || async {
            let got = sb.get("/sandbox/events?pixel_id=5550001").await;
            (got["total"].as_u64() == Some(2)).then_some(got)
        },
    )
    .await;
    let mut names: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["event_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["CompleteRegistration", "Lead"]);
    for e in events["events"].as_array().unwrap() {
        assert_eq!(e["event"]["action_source"], "other", "{e}");
        assert!(
            e["event"]["user_data"]["ph"].is_array(),
            "hashed phone: {e}"
        );
    }

    // The audit trail lists every change, by this link.
    b.goto(&service.url("/dashboard/setup/audit")).await;
    let trail = b.text_of("#audit table").await;
    for action in [
        "direction.create",
        "direction.update",
        "instance.connect",
        "direction.crm_rules",
    ] {
        assert!(trail.contains(action), "{action}: {trail}");
    }
    assert!(
        !trail.contains("evo-key-browser") && !trail.contains(&secret),
        "{trail}"
    );
    shot(&b, "audit").await;
    let audited = count(
        &env,
        "SELECT count(*) AS n FROM setup_changes WHERE actor LIKE 'link:%'",
    )
    .await;
    assert_eq!(audited, 4);

    // A form whose CSRF token an attacker's page could not know: refused.
    b.goto(&direction_url).await;
    b.fill("#direction-capi input[name=pixel]", "6660001").await;
    b.execute(
        "document.querySelectorAll('#direction-capi input[name=csrf]').forEach(e => e.remove())",
    )
    .await;
    b.submit("#direction-capi button[type=submit]").await;
    assert_eq!(b.text_of("header h1").await, "Not allowed");
    assert!(b.text_of("main").await.contains("security token"));
    shot(&b, "csrf-refused").await;
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM account_directions WHERE pixel_id = '6660001'"
        )
        .await,
        0
    );

    // A viewer: every set-up page and form answers "Not allowed".
    b.goto(&link(&service, account, Role::Viewer)).await;
    assert!(
        b.find("header a.setup").await.is_err(),
        "no set-up link for a viewer"
    );
    for page in [
        "/dashboard/setup".to_owned(),
        format!("/dashboard/setup/directions/{direction}"),
        format!("/dashboard/setup/directions/{direction}/crm"),
        "/dashboard/setup/audit".to_owned(),
    ] {
        b.goto(&service.url(&page)).await;
        assert_eq!(b.text_of("header h1").await, "Not allowed", "{page}");
    }
    shot(&b, "viewer").await;
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM setup_changes").await,
        4
    );
    let _: Value = Value::Null;
    service.stop().await;
    p.stop().await;
}
