//! A `crm` direction end to end: a CRM webhook → the entity read again
//! through the (fake) CRM API → the direction's rules → the WhatsApp dialog
//! with the contact's phone → events at (fake) Meta with that dialog's click
//! id. Real PostgreSQL and RabbitMQ; amoCRM and Bitrix24 are the sandbox's
//! fakes (their auth, limits, OAuth and webhooks), Meta a wiremock fake.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::{
    crm::mapping::FieldRule,
    level::{CapiSource, CrmType, Level, NoDialog},
};
use pipeline_tests::{
    Pipeline, PipelineOptions, SandboxServer, Seed, SeedOptions, TestEnv, customer_message,
    eventually, meta_accepts, meta_events, post_ok, recent, seed, wiremock::MockServer,
};
use serde_json::{Value, json};
use std::time::Duration;
use storage::{crm::NewConnection, directions::DirectionCapiUpdate};

const WAIT: Duration = Duration::from_secs(30);
const CLID: &str = "ARclickFromTheAd";

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

/// Customers who clicked the ad write once each (stored by the gateway);
/// the click id is `CLID` then `CLID-1`, `CLID-2`… in `phones` order.
async fn customers_write(env: &TestEnv, p: &Pipeline, s: &Seed, phones: &[&str]) {
    for (i, phone) in phones.iter().enumerate() {
        let clid = click(i);
        post_ok(
            p,
            s,
            &customer_message(
                &s.instance,
                &format!("M{i}"),
                phone,
                "Oi",
                Some(&clid),
                recent(30),
            ),
        )
        .await;
    }
    eventually("the dialogs are stored", WAIT, || async {
        (pipeline_tests::count(env, "SELECT count(*) AS n FROM dialog_analysis").await
            == phones.len() as i64)
            .then_some(())
    })
    .await;
}

fn click(i: usize) -> String {
    if i == 0 {
        CLID.to_owned()
    } else {
        format!("{CLID}-{i}")
    }
}

/// Meta's events once `n` have come and nothing more came for a while.
async fn settled_events(meta: &MockServer, n: usize, wait: Duration) -> Vec<Value> {
    eventually("the events at Meta", wait, || async {
        (meta_events(meta).await.len() >= n).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    meta_events(meta).await
}

/// Event names per click id, sorted.
fn by_click(events: &[Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["user_data"]["ctwa_clid"]
                    .as_str()
                    .unwrap_or("-")
                    .to_owned(),
                e["event_name"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

/// An amoCRM connection to the sandbox's account (long-lived token, or
/// OAuth when `oauth` names the stale access token and the refresh token).
async fn amo_connection(
    env: &TestEnv,
    s: &Seed,
    sb: &SandboxServer,
    oauth: Option<(&str, &str)>,
) -> domain::ids::ConnectionId {
    let mut conn = env.conn().await;
    storage::crm::create_connection(
        &mut conn,
        &env.keys(),
        &NewConnection {
            access_token: Some(oauth.map_or("amo-token", |o| o.0)),
            webhook_secret: Some("amo-secret"),
            account_subdomain: Some("clinic"),
            account_id: Some("29"),
            refresh_token: oauth.map(|o| o.1),
            oauth_client_id: oauth.map(|_| "integration-1"),
            oauth_client_secret: oauth.map(|_| "amo-client-secret"),
            oauth_redirect_uri: oauth.map(|_| "https://example.com/oauth"),
            ..NewConnection::new(s.user_account_id, CrmType::AmoCrm, &sb.url)
        },
    )
    .await
    .expect("connection")
}

/// The sandbox's amoCRM account, posting its webhooks to the gateway.
async fn amo_account(
    sb: &SandboxServer,
    p: &Pipeline,
    connection: domain::ids::ConnectionId,
    access: &str,
    refresh: &str,
) {
    sb.put(
        "/sandbox/amocrm/account",
        &json!({"subdomain": "clinic", "id": "29", "access_token": access,
                "refresh_token": refresh, "client_id": "integration-1",
                "client_secret": "amo-client-secret", "currency": "RUB",
                "webhook_url": format!("http://127.0.0.1:{}/webhooks/amocrm/{connection}?secret=amo-secret", p.gateway_port)}),
    )
    .await;
}

/// A contact with a phone, and a lead in `status` whose main contact it is;
/// putting the lead fires the status webhook. Returns the gateway's answer.
async fn amo_lead(sb: &SandboxServer, lead: u64, contact: u64, phone: &str, status: u64) -> Value {
    sb.put(
        &format!("/sandbox/amocrm/contacts/{contact}"),
        &json!({"name": "Customer", "custom_fields_values": [{"field_id": 1, "field_code": "PHONE",
                "field_type": "multitext", "values": [{"value": phone, "enum_code": "WORK"}]}]}),
    )
    .await;
    sb.put(
        &format!("/sandbox/amocrm/leads/{lead}"),
        &json!({"status_id": status, "pipeline_id": 936736, "custom_fields_values": null,
                "contacts": [{"id": contact, "is_main": true}]}),
    )
    .await
}

/// A running pipeline whose seeded direction takes its levels from the
/// sandbox's amoCRM (qualified = status 142), connected by a long-lived
/// token or, with `oauth` (stale access token, refresh token), by OAuth.
struct AmoWorld {
    env: TestEnv,
    s: Seed,
    sb: SandboxServer,
    meta: MockServer,
    p: Pipeline,
}

async fn amo_world(replicas: usize, oauth: Option<(&str, &str)>) -> AmoWorld {
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
    let sb = SandboxServer::start().await;
    let connection = amo_connection(&env, &s, &sb, oauth).await;
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let mut opts = PipelineOptions::new(&meta.uri());
    opts.replicas = replicas;
    let p = Pipeline::start(&env, &opts).await;
    // The CRM takes another access token than the one we hold when `oauth`.
    let (access, refresh) = oauth.map_or(("amo-token", ""), |o| ("current-token", o.1));
    amo_account(&sb, &p, connection, access, refresh).await;
    AmoWorld {
        env,
        s,
        sb,
        meta,
        p,
    }
}

async fn evaluated(env: &TestEnv) -> i64 {
    pipeline_tests::count(
        env,
        "SELECT count(*) AS n FROM crm_changes WHERE outcome->>'result' = 'evaluated'",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amocrm_lead_in_the_qualified_stage_sends_lead_and_registration_once_with_the_click() {
    let AmoWorld {
        env,
        s,
        sb,
        meta,
        p,
    } = amo_world(1, None).await;
    customers_write(&env, &p, &s, &["79161234567"]).await;
    // The CRM knows the customer by a Russian 8-prefixed number.
    let fired = amo_lead(&sb, 23435433, 7140816, "8 (916) 123-45-67", 142).await;
    assert_eq!(fired["webhook_status"], 200, "{fired}");
    for _ in 0..2 {
        let again = sb.post("/sandbox/amocrm/leads/23435433/redeliver").await;
        assert_eq!(again["webhook_status"], 200, "{again}");
    }
    let events = settled_events(&meta, 2, WAIT).await;
    assert_eq!(
        by_click(&events),
        [
            (CLID.to_owned(), "LeadSubmitted".to_owned()),
            (CLID.to_owned(), "QualifiedLead".to_owned())
        ],
        "each once: {events:?}"
    );
    for e in &events {
        assert_eq!(e["action_source"], "business_messaging");
    }
    assert_eq!(evaluated(&env).await, 1, "three deliveries, one change");
    let amo = sb.crm_stats("amocrm").await;
    assert_eq!(amo["requests"], 2, "the lead, then its main contact: {amo}");
    assert_eq!(amo["throttled"], 0, "{amo}");
    p.stop().await;
}

/// A running pipeline whose seeded direction takes its levels from the
/// sandbox's Bitrix24 portal (interest = the list field `UF_CRM_SOURCE` 81 on
/// a deal), connected by an incoming webhook, the portal posting its events
/// to the gateway; customer "553187424967" has written (click `CLID`) and is
/// the portal's contact 84.
struct Bitrix24World {
    env: TestEnv,
    sb: SandboxServer,
    meta: MockServer,
    p: Pipeline,
}

async fn bitrix24_world() -> Bitrix24World {
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
    let sb = SandboxServer::start().await;
    let connection: domain::ids::ConnectionId = {
        let mut conn = env.conn().await;
        storage::crm::create_connection(
            &mut conn,
            &env.keys(),
            &NewConnection {
                default_region: "BR",
                member_id: Some("member-1"),
                application_token: Some("app-token"),
                ..NewConnection::new(
                    s.user_account_id,
                    CrmType::Bitrix24,
                    &format!("{}/rest/1/hook-secret/", sb.url),
                )
            },
        )
        .await
        .expect("connection")
    };
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    sb.put(
        "/sandbox/bitrix24/portal",
        &json!({"domain": "x.bitrix24.com.br", "member_id": "member-1",
                "application_token": "app-token", "user_id": "1", "webhook_secret": "hook-secret",
                "handler_url": format!("http://127.0.0.1:{}/webhooks/bitrix24/{connection}", p.gateway_port)}),
    )
    .await;
    // A customer who clicked the ad writes; the portal's contact 84 has her
    // phone (WhatsApp knows it without Brazil's extra 9).
    customers_write(&env, &p, &s, &["553187424967"]).await;
    sb.put(
        "/sandbox/bitrix24/contact/84",
        &json!({"fields": {"NAME": "Ana", "PHONE": [{"VALUE": "+55 31 98742-4967", "VALUE_TYPE": "WORK"}]}}),
    )
    .await;
    Bitrix24World { env, sb, meta, p }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bitrix24_deal_with_a_list_field_set_sends_its_level_and_a_limited_crm_delays_it() {
    let Bitrix24World { env, sb, meta, p } = bitrix24_world().await;
    // The portal is over its limit for a while: reads are refused, then go through.
    sb.put(
        "/sandbox/crm/faults/bitrix24",
        &json!({"throttle_for_ms": 1500}),
    )
    .await;
    let fired = sb
        .put(
            "/sandbox/bitrix24/deal/7405",
            &json!({"fields": {"STAGE_ID": "NEW", "UF_CRM_SOURCE": ["79", "81"]},
                    "contacts": [{"CONTACT_ID": 84, "SORT": 10, "IS_PRIMARY": "Y"}]}),
        )
        .await;
    assert_eq!(fired["webhook_status"], 200, "{fired}");
    let events = settled_events(&meta, 1, WAIT).await;
    assert_eq!(
        by_click(&events),
        [(CLID.to_owned(), "LeadSubmitted".to_owned())],
        "{events:?}"
    );
    let b24 = sb.crm_stats("bitrix24").await;
    assert!(
        b24["throttled"].as_u64() >= Some(1),
        "refused while limited: {b24}"
    );
    // The contact's update event and the deal's (only the deal has levels).
    assert_eq!(evaluated(&env).await, 2);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_oauth_token_is_refreshed_once_by_two_replicas() {
    // Two replicas; we hold an access token the CRM no longer takes, and the refresh token.
    let AmoWorld {
        env,
        s,
        sb,
        meta,
        p,
    } = amo_world(2, Some(("expired-token", "refresh-1"))).await;
    // A slow refresh: the other replica is refused the old token meanwhile.
    // A second long (half the client's 2 s timeout): at 500 ms a busy CI
    // machine once let the other replica read only after the refresh.
    sb.put(
        "/sandbox/crm/faults/amocrm",
        &json!({"refresh_latency_ms": 1000}),
    )
    .await;
    let phones = ["79161230001", "79161230002", "79161230003", "79161230004"];
    customers_write(&env, &p, &s, &phones).await;
    for (i, phone) in phones.iter().enumerate() {
        let n = i as u64;
        let fired = amo_lead(&sb, 500 + n, 700 + n, phone, 142).await;
        assert_eq!(fired["webhook_status"], 200, "{fired}");
    }
    let events = settled_events(&meta, 8, Duration::from_secs(60)).await;
    let expected: Vec<(String, String)> = (0..phones.len())
        .flat_map(|i| {
            [
                (click(i), "LeadSubmitted".to_owned()),
                (click(i), "QualifiedLead".to_owned()),
            ]
        })
        .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(by_click(&events), expected);
    let amo = sb.crm_stats("amocrm").await;
    assert_eq!(amo["refreshes"], 1, "one refresh for everyone: {amo}");
    assert_eq!(
        amo["refused_refreshes"], 0,
        "no spent refresh token was used: {amo}"
    );
    assert!(
        amo["unauthorized"].as_u64() >= Some(2),
        "more than one read met the expired token: {amo}"
    );
    assert_eq!(evaluated(&env).await, 4);
    let filter = "token_refreshed_at IS NOT NULL";
    let access =
        pipeline_tests::opened_credentials(&env, storage::secrets::CRM_ACCESS_TOKEN, filter).await;
    let refresh =
        pipeline_tests::opened_credentials(&env, storage::secrets::CRM_REFRESH_TOKEN, filter).await;
    assert!(
        access.len() == 1
            && access[0].starts_with("amo-access-")
            && refresh.len() == 1
            && refresh[0].starts_with("amo-refresh-"),
        "the new pair is stored"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amocrm_answering_429_for_a_minute_delays_the_events_and_loses_none() {
    let AmoWorld {
        env,
        s,
        sb,
        meta,
        p,
    } = amo_world(1, None).await;
    let phones = ["79161240001", "79161240002", "79161240003"];
    customers_write(&env, &p, &s, &phones).await;
    let started = std::time::Instant::now();
    sb.put(
        "/sandbox/crm/faults/amocrm",
        &json!({"throttle_for_ms": 60_000, "retry_after_s": 5}),
    )
    .await;
    for (i, phone) in phones.iter().enumerate() {
        let n = i as u64;
        let fired = amo_lead(&sb, 600 + n, 800 + n, phone, 142).await;
        assert_eq!(fired["webhook_status"], 200, "{fired}");
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        meta_events(&meta).await.is_empty(),
        "nothing while the CRM refuses"
    );
    let events = settled_events(&meta, 6, Duration::from_secs(90)).await;
    assert!(started.elapsed() >= Duration::from_secs(60));
    let mut expected: Vec<(String, String)> = (0..phones.len())
        .flat_map(|i| {
            [
                (click(i), "LeadSubmitted".to_owned()),
                (click(i), "QualifiedLead".to_owned()),
            ]
        })
        .collect();
    expected.sort();
    assert_eq!(by_click(&events), expected, "every event once");
    assert_eq!(evaluated(&env).await, 3);
    let amo = sb.crm_stats("amocrm").await;
    let throttled = amo["throttled"].as_u64().unwrap_or(0);
    // Every replica holds back for retry_after: a few refusals, not a storm.
    assert!((1..=40).contains(&throttled), "{amo}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_who_never_wrote_is_skipped_or_sent_with_the_hashed_phone_only() {
    let AmoWorld {
        env,
        s,
        sb,
        meta,
        p,
    } = amo_world(1, None).await;

    // The default: nothing sent; the audit log says why, per level.
    amo_lead(&sb, 901, 9001, "+7 916 555-00-01", 142).await;
    eventually("the change is evaluated", WAIT, || async {
        (evaluated(&env).await == 1).then_some(())
    })
    .await;
    let skipped = pipeline_tests::count(
        &env,
        &format!(
            "SELECT count(*) AS n FROM capi_events_log WHERE status = 'skipped' AND reason = 'no_dialog' \
             AND dialog_id IS NULL AND direction_id = '{}' AND event_name IN ('Lead', 'CompleteRegistration')",
            s.direction_id
        ),
    )
    .await;
    assert_eq!(skipped, 2, "one skipped row per level reached");

    // phone_only: the events go with the hashed phone and no click id.
    {
        let mut conn = env.conn().await;
        let update = DirectionCapiUpdate {
            capi_crm_no_dialog: Some(NoDialog::PhoneOnly),
            ..Default::default()
        };
        assert!(
            storage::directions::update_direction_capi(&mut conn, s.direction_id, &update)
                .await
                .expect("update")
        );
    }
    amo_lead(&sb, 902, 9002, "8 916 555-00-02", 142).await;
    let events = settled_events(&meta, 2, WAIT).await;
    let mut names: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event_name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["CompleteRegistration", "Lead"], "{events:?}");
    let hashed = domain::normalize::sha256_hex("79165550002");
    for e in &events {
        assert_eq!(e["action_source"], "other", "{e}");
        assert!(e["user_data"].get("ctwa_clid").is_none(), "{e}");
        assert_eq!(e["user_data"]["ph"], json!([hashed]), "{e}");
    }
    // When that customer writes on WhatsApp later, it is the same dialog:
    // nothing is sent again.
    post_ok(
        &p,
        &s,
        &customer_message(
            &s.instance,
            "LATE",
            "79165550002",
            "Oi",
            Some(CLID),
            recent(5),
        ),
    )
    .await;
    eventually("the message is stored", WAIT, || async {
        (pipeline_tests::count(&env, "SELECT count(*) AS n FROM dialog_messages").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        pipeline_tests::count(
            &env,
            "SELECT count(*) AS n FROM dialog_analysis WHERE contact_phone = '79165550002'"
        )
        .await,
        1
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(meta_events(&meta).await.len(), 2, "no second Lead");
    p.stop().await;
}

/// The one Purchase among `events`.
fn purchases(events: &[Value]) -> Vec<&Value> {
    events
        .iter()
        .filter(|e| e["event_name"] == "Purchase")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amocrm_lead_won_with_a_price_sends_purchase_in_the_accounts_currency_once() {
    let AmoWorld {
        env,
        s,
        sb,
        meta,
        p,
    } = amo_world(1, None).await;
    customers_write(&env, &p, &s, &["79161234567"]).await;
    sb.put(
        "/sandbox/amocrm/contacts/7140816",
        &json!({"name": "Customer", "custom_fields_values": [{"field_id": 1, "field_code": "PHONE",
                "field_type": "multitext", "values": [{"value": "+7 916 123-45-67", "enum_code": "WORK"}]}]}),
    )
    .await;
    let won = |price: u64| {
        json!({"status_id": 142, "pipeline_id": 936736, "price": price, "custom_fields_values": null,
               "contacts": [{"id": 7140816, "is_main": true}]})
    };
    let fired = sb.put("/sandbox/amocrm/leads/23435433", &won(15000)).await;
    assert_eq!(fired["webhook_status"], 200, "{fired}");
    let again = sb.post("/sandbox/amocrm/leads/23435433/redeliver").await;
    assert_eq!(again["webhook_status"], 200, "{again}");
    // The deal is edited after it was won: a new change, the same order.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let edited = sb.put("/sandbox/amocrm/leads/23435433", &won(16000)).await;
    assert_eq!(edited["webhook_status"], 200, "{edited}");
    eventually("both changes are evaluated", WAIT, || async {
        (evaluated(&env).await == 2).then_some(())
    })
    .await;
    let events = settled_events(&meta, 4, WAIT).await;
    assert_eq!(
        by_click(&events),
        [
            (CLID.to_owned(), "LeadSubmitted".to_owned()),
            (CLID.to_owned(), "OrderCreated".to_owned()),
            (CLID.to_owned(), "Purchase".to_owned()),
            (CLID.to_owned(), "QualifiedLead".to_owned()),
        ],
        "a purchase implies the lower levels; each once: {events:?}"
    );
    let purchase = purchases(&events)[0];
    assert_eq!(
        purchase["custom_data"],
        json!({"event_level": 4, "value": 15000.0, "currency": "RUB"}),
        "the price when it was won, in the account's currency: {purchase}"
    );
    assert_eq!(purchase["action_source"], "business_messaging");
    let dialog = pipeline_tests::dialog_ids(&env).await[0];
    assert_eq!(
        purchase["event_id"],
        domain::capi_event::purchase_event_id(dialog, "amocrm:lead:23435433").as_str()
    );
    let edit_outcome = pipeline_tests::count(
        &env,
        "SELECT count(*) AS n FROM crm_changes WHERE outcome @> \
         '{\"directions\": [{\"purchase\": {\"order_ref\": \"amocrm:lead:23435433\", \"claimed\": false, \"value\": 16000.0}}]}'",
    )
    .await;
    assert_eq!(edit_outcome, 1, "the edit saw the purchase already claimed");
    pipeline_tests::wait_for_successes(&env, 4, WAIT).await;
    let amo = sb.crm_stats("amocrm").await;
    // Lead and contact twice, the account's currency once (cached).
    assert_eq!(amo["requests"], 5, "{amo}");
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_won_deals_send_a_purchase_each_with_opportunity_and_currency() {
    let Bitrix24World { env, sb, meta, p } = bitrix24_world().await;
    let deal = |id: &str, amount: &str| {
        let sb = &sb;
        let path = format!("/sandbox/bitrix24/deal/{id}");
        let body = json!({"fields": {"STAGE_ID": "C1:WON", "STAGE_SEMANTIC_ID": "S",
                                     "OPPORTUNITY": amount, "CURRENCY_ID": "USD"},
                          "contacts": [{"CONTACT_ID": 84, "SORT": 10, "IS_PRIMARY": "Y"}]});
        async move { sb.put(&path, &body).await }
    };
    let fired = deal("7405", "1500.50").await;
    assert_eq!(fired["webhook_status"], 200, "{fired}");
    let events = settled_events(&meta, 4, WAIT).await;
    assert_eq!(purchases(&events).len(), 1, "{events:?}");
    assert_eq!(
        purchases(&events)[0]["custom_data"],
        json!({"event_level": 4, "value": 1500.5, "currency": "USD"})
    );
    // The same customer wins a second deal: a second Purchase, nothing else.
    let fired = deal("7406", "200").await;
    assert_eq!(fired["webhook_status"], 200, "{fired}");
    let events = settled_events(&meta, 5, WAIT).await;
    assert_eq!(
        by_click(&events),
        [
            (CLID.to_owned(), "LeadSubmitted".to_owned()),
            (CLID.to_owned(), "OrderCreated".to_owned()),
            (CLID.to_owned(), "Purchase".to_owned()),
            (CLID.to_owned(), "Purchase".to_owned()),
            (CLID.to_owned(), "QualifiedLead".to_owned()),
        ],
        "{events:?}"
    );
    let mut values: Vec<f64> = purchases(&events)
        .iter()
        .filter_map(|e| e["custom_data"]["value"].as_f64())
        .collect();
    values.sort_by(f64::total_cmp);
    assert_eq!(values, [200.0, 1500.5]);
    eventually("both purchases are recorded as accepted", WAIT, || async {
        (pipeline_tests::count(
            &env,
            "SELECT count(*) AS n FROM capi_deliveries WHERE event_level = 4 AND status = 'success' \
             AND purchase_currency = 'USD' AND order_ref IN ('bitrix24:deal:7405', 'bitrix24:deal:7406')",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    p.stop().await;
}
