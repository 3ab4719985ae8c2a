//! A `crm` direction end to end: a CRM webhook → the entity read again
//! through the (fake) CRM API → the direction's rules → the WhatsApp dialog
//! with the contact's phone → events at (fake) Meta with that dialog's click
//! id. Real PostgreSQL and RabbitMQ; fakes only for amoCRM, Bitrix24 and Meta.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::{
    crm::mapping::FieldRule,
    level::{CapiSource, CrmType, Level},
};
use pipeline_tests::{
    Pipeline, PipelineOptions, Seed, SeedOptions, TestEnv, customer_message, eventually,
    meta_accepts, post_ok, recent, seed,
    wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{header, method, path, query_param},
    },
};
use serde_json::{Value, json};
use std::time::Duration;
use storage::{crm::NewConnection, directions::DirectionCapiUpdate};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const CLID: &str = "ARclickFromTheAd";

/// Every event fake Meta received.
async fn meta_events(meta: &MockServer) -> Vec<Value> {
    meta.received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .flat_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("Meta got JSON");
            body["data"].as_array().cloned().unwrap_or_default()
        })
        .collect()
}

/// The seeded direction switched to a CRM source with `rules` for `level`.
async fn crm_direction(env: &TestEnv, s: &Seed, crm: CrmType, level: Level, rules: Value) {
    let mut conn = env.conn().await;
    let update = DirectionCapiUpdate {
        capi_source: Some(CapiSource::Crm),
        capi_crm_type: Some(crm),
        ..Default::default()
    };
    assert!(
        storage::directions::update_direction_capi(&mut conn, s.direction_id, &update)
            .await
            .expect("update")
    );
    let rules: Vec<FieldRule> = serde_json::from_value(rules).expect("rules");
    storage::directions::set_crm_fields(&mut conn, s.direction_id, level, &rules)
        .await
        .expect("rules");
}

/// The customer who clicked the ad writes once (stored by the gateway).
async fn customer_writes(env: &TestEnv, p: &Pipeline, s: &Seed, phone: &str) {
    post_ok(
        p,
        s,
        &customer_message(&s.instance, "M1", phone, "Oi", Some(CLID), recent(30)),
    )
    .await;
    eventually("the dialog is stored", WAIT, || async {
        (pipeline_tests::count(env, "SELECT count(*) AS n FROM dialog_analysis").await == 1)
            .then_some(())
    })
    .await;
}

async fn post_form(port: u16, path: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("gateway answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amocrm_lead_in_the_qualified_stage_sends_lead_and_registration_once_with_the_click() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    crm_direction(
        &env,
        &s,
        CrmType::AmoCrm,
        Level::Qualified,
        json!([{"field_id": "status_id", "enum_id": "142"}]),
    )
    .await;
    let amo = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/v4/leads/23435433"))
        .and(query_param("with", "contacts"))
        .and(header("authorization", "Bearer amo-token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 23435433, "status_id": 142, "pipeline_id": 936736, "custom_fields_values": null,
            "_embedded": {"contacts": [{"id": 7140816, "is_main": true}]}})))
        .mount(&amo)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v4/contacts/7140816"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": 7140816, "custom_fields_values": [{"field_id": 1, "field_code": "PHONE",
              "values": [{"value": "8 (916) 123-45-67", "enum_code": "WORK"}]}]})))
        .mount(&amo)
        .await;
    let connection = {
        let mut conn = env.conn().await;
        storage::crm::create_connection(
            &mut conn,
            &NewConnection {
                user_account_id: s.user_account_id,
                crm_type: CrmType::AmoCrm,
                base_url: &amo.uri(),
                access_token: Some("amo-token"),
                webhook_secret: Some("amo-secret"),
                default_region: "RU",
                account_subdomain: Some("clinic"),
                account_id: None,
                member_id: None,
                application_token: None,
            },
        )
        .await
        .expect("connection")
    };
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    customer_writes(&env, &p, &s, "79161234567").await;

    let hook = format!("/webhooks/amocrm/{connection}?secret=amo-secret");
    let body = "leads%5Bstatus%5D%5B0%5D%5Bid%5D=23435433&leads%5Bstatus%5D%5B0%5D%5Bstatus_id%5D=142\
        &leads%5Bstatus%5D%5B0%5D%5Bpipeline_id%5D=936736&leads%5Bstatus%5D%5B0%5D%5Blast_modified%5D=1627306719\
        &account%5Bsubdomain%5D=clinic";
    for _ in 0..3 {
        assert_eq!(post_form(p.gateway_port, &hook, body).await, 200);
    }
    let events = eventually("Lead and CompleteRegistration at Meta", WAIT, || async {
        let events = meta_events(&meta).await;
        (events.len() >= 2).then_some(events)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = if meta_events(&meta).await.len() > events.len() {
        meta_events(&meta).await
    } else {
        events
    };
    let mut names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["CompleteRegistration", "Lead"],
        "each once: {events:?}"
    );
    for e in &events {
        assert_eq!(e["user_data"]["ctwa_clid"], CLID, "{e}");
        assert_eq!(e["action_source"], "business_messaging");
    }
    assert_eq!(
        pipeline_tests::count(
            &env,
            "SELECT count(*) AS n FROM crm_changes WHERE evaluated_at IS NOT NULL"
        )
        .await,
        1,
        "three deliveries, one change, evaluated"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitrix24_deal_with_a_list_field_set_sends_its_level_and_a_limited_crm_delays_it() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    crm_direction(
        &env,
        &s,
        CrmType::Bitrix24,
        Level::Interest,
        json!([{"field_id": "UF_CRM_SOURCE", "enum_id": 81, "entity_type": "deal"}]),
    )
    .await;
    let b24 = MockServer::start().await;
    // The portal is over its limit for the first two reads.
    Mock::given(method("POST"))
        .and(path("/rest/1/hook-secret/crm.deal.get.json"))
        .respond_with(ResponseTemplate::new(503).set_body_json(json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}))
            .insert_header("Retry-After", "1"))
        .up_to_n_times(2)
        .mount(&b24)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/1/hook-secret/crm.deal.get.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"result": {"ID": "7405", "STAGE_ID": "NEW", "UF_CRM_SOURCE": ["79", "81"]}}),
        ))
        .mount(&b24)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/1/hook-secret/crm.deal.contact.items.get.json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": [{"CONTACT_ID": 84, "IS_PRIMARY": "Y"}]})),
        )
        .mount(&b24)
        .await;
    Mock::given(method("POST"))
        .and(path("/rest/1/hook-secret/crm.contact.get.json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": {"ID": "84", "PHONE": [{"VALUE": "+55 31 98742-4967", "VALUE_TYPE": "WORK"}]}})))
        .mount(&b24)
        .await;
    let connection: Uuid = {
        let mut conn = env.conn().await;
        storage::crm::create_connection(
            &mut conn,
            &NewConnection {
                user_account_id: s.user_account_id,
                crm_type: CrmType::Bitrix24,
                base_url: &format!("{}/rest/1/hook-secret/", b24.uri()),
                access_token: None,
                webhook_secret: None,
                default_region: "BR",
                account_subdomain: None,
                account_id: None,
                member_id: Some("member-1"),
                application_token: Some("app-token"),
            },
        )
        .await
        .expect("connection")
    };
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    // WhatsApp knows this customer without the extra 9.
    customer_writes(&env, &p, &s, "553187424967").await;
    let body = "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=7405&ts=1766047124\
        &auth%5Bdomain%5D=x.bitrix24.com.br&auth%5Bmember_id%5D=member-1&auth%5Bapplication_token%5D=app-token";
    assert_eq!(
        post_form(
            p.gateway_port,
            &format!("/webhooks/bitrix24/{connection}"),
            body
        )
        .await,
        200
    );
    let events = eventually("the Lead at Meta", WAIT, || async {
        let events = meta_events(&meta).await;
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["event_name"], "Lead");
    assert_eq!(events[0]["user_data"]["ctwa_clid"], CLID);
    let deal_reads = b24
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path().ends_with("crm.deal.get.json"))
        .count();
    assert_eq!(deal_reads, 3, "two refused while limited, then read");
    p.stop().await;
}
