//! `GET` and `DELETE /api/customers/{phone}`: the export and erasure of
//! `capi customer export|forget` for the key's own account only, as the API
//! answers everything else.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::reports_api::key_for;
use pipeline_tests::{
    ReportsService, SandboxServer, SeedOptions, TestEnv, count, reports_settings, seed,
    text_message,
};
use serde_json::{Value, json};
use storage::conversations::{self, NewMessage};

const PHONE: &str = "5511987654321";

async fn write(env: &TestEnv, instance: &str, id: &str) {
    conversations::record_message(
        &mut env.conn().await,
        &NewMessage {
            contact_name: Some("Maria"),
            ..text_message(instance, id, Some(PHONE), None, "Quero agendar")
        },
        |_, _| None,
    )
    .await
    .unwrap();
}

async fn delete(service: &ReportsService, path: &str, key: Option<&str>) -> (u16, Value) {
    call(reqwest::Client::new().delete(service.url(path)), key).await
}

async fn get(service: &ReportsService, path: &str, key: Option<&str>) -> (u16, Value) {
    call(reqwest::Client::new().get(service.url(path)), key).await
}

async fn call(mut req: reqwest::RequestBuilder, key: Option<&str>) -> (u16, Value) {
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    (
        resp.status().as_u16(),
        resp.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_request_erases_the_keys_account_only() {
    let env = TestEnv::new().await;
    let a = seed(&env, &SeedOptions::default()).await;
    let b = seed(&env, &SeedOptions::default()).await;
    // The same person wrote to both businesses.
    write(&env, &a.instance, "A1").await;
    write(&env, &b.instance, "B1").await;
    let (_, key) = key_for(&env, a.user_account_id.into()).await;
    let sandbox = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    let path = |account: &dyn std::fmt::Display| {
        format!("/api/customers/%2B55%20(11)%2098765-4321?user_account_id={account}")
    };

    assert_eq!(
        delete(&service, &path(&a.user_account_id), None).await.0,
        401
    );
    let (status, body) = delete(&service, &path(&b.user_account_id), Some(&key)).await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("not_found")),
        "another account's"
    );
    let (status, body) = delete(
        &service,
        &format!(
            "/api/customers/maria@example.com?user_account_id={}",
            a.user_account_id
        ),
        Some(&key),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().starts_with("phone:"),
        "{body}"
    );

    // The access request first: the person's dialog with A only.
    assert_eq!(get(&service, &path(&a.user_account_id), None).await.0, 401);
    assert_eq!(
        get(&service, &path(&b.user_account_id), Some(&key)).await.0,
        404
    );
    let (status, held) = get(&service, &path(&a.user_account_id), Some(&key)).await;
    assert_eq!(status, 200, "{held}");
    assert_eq!(held["phone"], PHONE);
    let dialogs = held["dialogs"].as_array().unwrap();
    assert_eq!(dialogs.len(), 1, "{held}");
    assert_eq!(dialogs[0]["instance"], a.instance.as_str());
    assert_eq!(dialogs[0]["name"], "Maria");
    let texts: Vec<&Value> = dialogs[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["text"])
        .collect();
    assert_eq!(texts, [&json!("Quero agendar")]);

    let (status, body) = delete(&service, &path(&a.user_account_id), Some(&key)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["erased"]["dialogs"], 1);
    assert_eq!(body["erased"]["messages"], 1);
    let (_, again) = delete(&service, &path(&a.user_account_id), Some(&key)).await;
    assert_eq!(again["erased"]["dialogs"], 0, "idempotent");
    let (_, held) = get(&service, &path(&a.user_account_id), Some(&key)).await;
    assert_eq!(held["dialogs"], json!([]), "nothing held after the erasure");
    // Only A's: the same person's dialog with B keeps its phone and text.
    assert_eq!(
        count(&env, &format!("SELECT count(*) AS n FROM dialog_analysis WHERE contact_phone = '{PHONE}' AND instance_name = '{}'", b.instance)).await,
        1
    );
    assert_eq!(
        count(&env, &format!("SELECT count(*) AS n FROM dialog_analysis WHERE contact_phone = '{PHONE}' AND instance_name = '{}'", a.instance)).await,
        0
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM dialog_messages WHERE text = 'Quero agendar'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM erasures WHERE requested_by LIKE 'API key capi_%'"
        )
        .await,
        1
    );
    service.stop().await;
}
