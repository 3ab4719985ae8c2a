//! amoCRM connected by OAuth from the set-up pages: the state is single-use
//! and bound to the session that started it; a wrong, spent or foreign
//! state, or a code coming back for another host, is refused and connects
//! nothing; the right one stores the exchanged tokens sealed, and the
//! connection reads the CRM.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use domain::api_key::Role;
use pipeline_tests::dashboard_session::{DashboardSession, error_text, link_href};
use pipeline_tests::{
    ReportsService, SandboxServer, SeedOptions, TestEnv, count, opened_credentials, query_json,
    reports_settings, seed,
};
use serde_json::json;

const CALLBACK: &str = "/dashboard/setup/crm/oauth/amocrm";

/// Starts an authorisation of the sandbox's amoCRM: the consent page's address.
async fn start(who: &DashboardSession, amocrm: &str) -> String {
    let a = who
        .post_form(
            "/dashboard/setup/crm/oauth/amocrm/start",
            &[
                ("base_url", amocrm),
                ("client_id", "integration-9"),
                ("client_secret", "amo-client-secret"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    link_href(&a.body, "consent-link").expect("a link to the consent page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amocrm_connects_by_oauth_only_for_the_session_that_started_it() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let sb = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sb.url)).await;
    sb.put(
        "/sandbox/amocrm/account",
        &json!({"subdomain": "127", "id": "29", "access_token": "old-token", "currency": "RUB",
                "client_id": "integration-9", "client_secret": "amo-client-secret",
                "redirect_uri": format!("http://127.0.0.1{CALLBACK}")}),
    )
    .await;
    sb.put(
        "/sandbox/amocrm/pipelines",
        &json!([{"id": 1, "name": "Sales", "_embedded": {"statuses": [{"id": 142, "name": "Qualified"}]}}]),
    )
    .await;
    let account = s.user_account_id.uuid();
    let editor = DashboardSession::sign_in(&service, account, Role::Editor).await;
    let other = DashboardSession::sign_in(&service, account, Role::Editor).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let consent = start(&editor, &sb.url).await;
    assert!(
        consent.starts_with(&format!("{}/oauth?client_id=integration-9&state=", sb.url)),
        "{consent}"
    );
    let back = no_redirects.get(&consent).send().await.unwrap();
    assert_eq!(back.status().as_u16(), 302);
    let back = back.headers()["location"].to_str().unwrap().to_owned();
    let query = back
        .strip_prefix(&format!("http://127.0.0.1{CALLBACK}?"))
        .expect("to our callback")
        .to_owned();
    let connections = || count(&env, "SELECT count(*) AS n FROM crm_connections");

    // A wrong state: refused, nothing connected.
    let wrong = query.replace("state=", "state=x");
    let a = editor.get(&format!("{CALLBACK}?{wrong}")).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        error_text(&a.body)
            .unwrap()
            .contains("unknown, already used, expired or another session's")
    );
    // The right state in another session: refused too (and not spent).
    let a = other.get(&format!("{CALLBACK}?{query}")).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(connections().await, 0);
    // A viewer cannot finish one either.
    let viewer = DashboardSession::sign_in(&service, account, Role::Viewer).await;
    assert_eq!(viewer.get(&format!("{CALLBACK}?{query}")).await.status, 403);

    // The session that started it: connected, tokens sealed.
    let a = editor.get(&format!("{CALLBACK}?{query}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("/webhooks/amocrm/"),
        "the webhook address: {}",
        a.body
    );
    assert_eq!(connections().await, 1);
    let tokens = opened_credentials(
        &env,
        storage::secrets::CRM_ACCESS_TOKEN,
        "access_token IS NOT NULL",
    )
    .await;
    assert_eq!(tokens.len(), 1);
    assert!(
        tokens[0].starts_with("amo-access-"),
        "the exchanged token: {tokens:?}"
    );
    let raw = count(&env, "SELECT count(*) AS n FROM crm_connections WHERE access_token LIKE 'amo-%' OR refresh_token LIKE 'amo-%'").await;
    assert_eq!(raw, 0, "stored sealed");
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM crm_oauth_states").await,
        0,
        "the state is spent"
    );
    // Spent: the same callback again connects nothing.
    let a = editor.get(&format!("{CALLBACK}?{query}")).await;
    assert_eq!(a.status, 422);
    assert_eq!(connections().await, 1);
    // The connection reads amoCRM: its statuses on the mapping page.
    let id = query_json(&env, "SELECT to_jsonb(id) AS v FROM crm_connections").await;
    let id = id.as_str().unwrap().to_owned();
    let page = editor
        .get(&format!(
            "/dashboard/setup/directions/{}/crm?connection={id}",
            s.direction_id
        ))
        .await;
    assert!(page.body.contains("Sales / Qualified"), "{}", page.body);

    // A code coming back for another host: refused.
    let consent = start(&editor, &sb.url).await;
    let back = no_redirects.get(&consent).send().await.unwrap();
    let query = back.headers()["location"]
        .to_str()
        .unwrap()
        .split_once('?')
        .unwrap()
        .1
        .to_owned();
    let host = sb.url.strip_prefix("http://").unwrap();
    let evil = query.replace(
        &form_urlencoded::byte_serialize(host.as_bytes()).collect::<String>(),
        "evil.example",
    );
    let a = editor.get(&format!("{CALLBACK}?{evil}")).await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(
        error_text(&a.body)
            .unwrap()
            .contains("came back for evil.example")
    );
    assert_eq!(connections().await, 1);
    // Audited once, without a token.
    let trail = count(
        &env,
        "SELECT count(*) AS n FROM setup_changes WHERE action = 'crm.connect'",
    )
    .await;
    assert_eq!(trail, 1);
    let leaked = count(
        &env,
        "SELECT count(*) AS n FROM setup_changes WHERE after::text LIKE '%amo-%'",
    )
    .await;
    assert_eq!(leaked, 0);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_connects_by_oauth_with_its_application_token_sealed() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let sb = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sb.url)).await;
    let portal = sb.url.strip_prefix("http://").unwrap().to_owned();
    sb.put(
        "/sandbox/bitrix24/portal",
        &json!({"domain": portal, "member_id": "member-77", "application_token": "b24-app-token",
                "client_id": "local.app.1", "client_secret": "b24-client-secret",
                "redirect_uri": "http://127.0.0.1/dashboard/setup/crm/oauth/bitrix24"}),
    )
    .await;
    sb.put(
        "/sandbox/bitrix24/fields/deal",
        &json!({"UF_CRM_SOURCE": {"type": "enumeration", "isMultiple": false, "title": "UF_CRM_SOURCE",
                "listLabel": "Source", "items": [{"ID": "81", "VALUE": "Instagram"}]}}),
    )
    .await;
    let editor = DashboardSession::sign_in(&service, s.user_account_id.uuid(), Role::Editor).await;
    let start = |token: &'static str| {
        let base = sb.url.clone();
        let editor = &editor;
        async move {
            editor
                .post_form(
                    "/dashboard/setup/crm/oauth/bitrix24/start",
                    &[
                        ("base_url", base.as_str()),
                        ("client_id", "local.app.1"),
                        ("client_secret", "b24-client-secret"),
                        ("application_token", token),
                    ],
                )
                .await
        }
    };
    // Without the application token its events could not be checked.
    let a = start("").await;
    assert_eq!(a.status, 422);
    assert!(
        error_text(&a.body)
            .unwrap()
            .contains("application token is needed")
    );
    let a = start("b24-app-token").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let consent = link_href(&a.body, "consent-link").expect("a link to the consent page");
    assert!(
        consent.starts_with(&format!(
            "{}/oauth/authorize/?client_id=local.app.1&state=",
            sb.url
        )),
        "{consent}"
    );
    let back = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&consent)
        .send()
        .await
        .unwrap();
    let back = back.headers()["location"].to_str().unwrap().to_owned();
    let query = back.split_once('?').unwrap().1.to_owned();
    let callback = "/dashboard/setup/crm/oauth/bitrix24";
    let a = editor
        .get(&format!(
            "{callback}?{}",
            query.replace("state=", "state=0")
        ))
        .await;
    assert_eq!(a.status, 422, "a wrong state: {}", a.body);
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM crm_connections").await,
        0
    );
    let a = editor.get(&format!("{callback}?{query}")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("/webhooks/bitrix24/"), "{}", a.body);
    let app_tokens = opened_credentials(
        &env,
        storage::secrets::CRM_APPLICATION_TOKEN,
        "application_token IS NOT NULL",
    )
    .await;
    assert_eq!(app_tokens, ["b24-app-token"]);
    let access = opened_credentials(
        &env,
        storage::secrets::CRM_ACCESS_TOKEN,
        "access_token IS NOT NULL",
    )
    .await;
    assert!(access[0].starts_with("b24-access-"), "{access:?}");
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM crm_connections WHERE crm_type = 'bitrix24' AND member_id = 'member-77'").await,
        1
    );
    // The connection reads the portal through OAuth: its list field offered.
    let id = query_json(&env, "SELECT to_jsonb(id) AS v FROM crm_connections").await;
    let page = editor
        .get(&format!(
            "/dashboard/setup/directions/{}/crm?connection={}&entity=deal",
            s.direction_id,
            id.as_str().unwrap()
        ))
        .await;
    assert!(page.body.contains("Source: Instagram"), "{}", page.body);
    service.stop().await;
}
