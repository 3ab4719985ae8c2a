//! Credentials at rest (storage::secrets): ciphertext in every credential
//! column, key rotation while the services run, no start without a key, and
//! no `Debug` that prints a secret.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use pipeline_tests::{
    Pipeline, PipelineOptions, SeedOptions, TestEnv, count, customer_message, meta_accepts,
    post_ok, seed, wait_for_successes,
    wiremock::{MockServer, Request},
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;
use storage::secrets::{self, COLUMNS, Key};

const WAIT: Duration = Duration::from_secs(30);
const PHONE: &str = "5511999999999";

/// Every plaintext this test stores, each in its own column.
const PLAIN: [&str; 13] = [
    "EAAB-test-token",
    "EAAB-user-fallback-token",
    "meta-app-secret-ad",
    "meta-app-secret-user",
    "123456:telegram-bot-token",
    "s3cret-webhook-key",
    "evolution-api-key-42",
    "EAAG-cloud-system-user-token",
    "amo-access-token",
    "amo-refresh-token",
    "amo-oauth-client-secret",
    "b24-application-token",
    "b24-webhook-secret",
];

/// A Bitrix24 incoming webhook's URL: its path holds the webhook's secret.
const B24_WEBHOOK_URL: &str = "https://b24.bitrix24.ru/rest/1/b24-webhook-secret/";

/// The token of every event Meta received (a request may carry several).
async fn meta_tokens(server: &MockServer) -> Vec<String> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .flat_map(|r: &Request| {
            let v: Value = serde_json::from_slice(&r.body).expect("Meta got JSON");
            let token = v["access_token"].as_str().unwrap_or_default().to_owned();
            let events = v["data"].as_array().map_or(0, Vec::len);
            std::iter::repeat_n(token, events)
        })
        .collect()
}

/// Rows, over every credential column, where `condition` (with `{c}` for
/// the column) holds.
async fn credential_rows(env: &TestEnv, condition: &str) -> i64 {
    let mut n = 0;
    for c in COLUMNS {
        let condition = condition.replace("{c}", c.column);
        n += count(
            env,
            &format!("SELECT count(*) AS n FROM {} WHERE {condition}", c.table),
        )
        .await;
    }
    n
}

/// Values in credential columns that are not sealed (NULL and "" are none).
async fn unsealed(env: &TestEnv) -> i64 {
    credential_rows(
        env,
        "{c} IS NOT NULL AND {c} <> '' AND {c} NOT LIKE 'enc:v1:%'",
    )
    .await
}

/// Rows of any credential column holding `needle` anywhere.
async fn containing(env: &TestEnv, needle: &str) -> i64 {
    credential_rows(
        env,
        &format!("position('{needle}' in coalesce({{c}}, '')) > 0"),
    )
    .await
}

async fn store_every_kind_of_credential(env: &TestEnv) -> pipeline_tests::Seed {
    let s = seed(
        env,
        &SeedOptions {
            user_token: Some("EAAB-user-fallback-token"),
            ..Default::default()
        },
    )
    .await;
    let mut conn = env.conn().await;
    let keys = &env.keys();
    let ad = ids(env, "SELECT id FROM ad_accounts LIMIT 1").await[0];
    storage::directions::set_ad_account_app_secret(&mut conn, keys, ad, Some("meta-app-secret-ad"))
        .await
        .unwrap();
    storage::reports::set_account(
        &mut conn,
        keys,
        s.user_account_id,
        &storage::reports::AccountSettings {
            telegram_chat_id: Some(Some("-1001")),
            telegram_bot_token: Some(Some("123456:telegram-bot-token")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    storage::directions::set_instance_bot(
        &mut conn,
        keys,
        &s.instance,
        Some("evolution-api-key-42"),
        None,
        None,
    )
    .await
    .unwrap();
    storage::cloud_numbers::map(
        &mut conn,
        keys,
        &storage::cloud_numbers::CloudMapping {
            phone_number_id: "106540352242922",
            direction_id: s.direction_id,
            waba_id: Some("102290129340398"),
            phone_number: None,
            access_token: Some("EAAG-cloud-system-user-token"),
            meta_app_id: None,
        },
    )
    .await
    .unwrap();
    storage::crm::create_connection(
        &mut conn,
        keys,
        &storage::crm::NewConnection {
            access_token: Some("amo-access-token"),
            refresh_token: Some("amo-refresh-token"),
            oauth_client_id: Some("client-1"),
            oauth_client_secret: Some("amo-oauth-client-secret"),
            webhook_secret: Some("amo-webhook-secret"),
            ..storage::crm::NewConnection::new(
                s.user_account_id,
                domain::level::CrmType::AmoCrm,
                "https://clinic.amocrm.ru",
            )
        },
    )
    .await
    .unwrap();
    storage::crm::create_connection(
        &mut conn,
        keys,
        &storage::crm::NewConnection {
            application_token: Some("b24-application-token"),
            ..storage::crm::NewConnection::new(
                s.user_account_id,
                domain::level::CrmType::Bitrix24,
                B24_WEBHOOK_URL,
            )
        },
    )
    .await
    .unwrap();
    s
}

/// The `id` column of every row `sql` returns.
async fn ids(env: &TestEnv, sql: &str) -> Vec<uuid::Uuid> {
    #[derive(diesel::QueryableByName)]
    struct Id {
        #[diesel(sql_type = diesel::sql_types::Uuid)]
        id: uuid::Uuid,
    }
    use diesel_async::RunQueryDsl;
    diesel::sql_query(sql)
        .load::<Id>(&mut env.conn().await)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_credential_is_ciphertext_and_still_works() {
    let env = TestEnv::new().await;
    let s = store_every_kind_of_credential(&env).await;
    // A value from before encryption (no code path writes this column): the
    // migration step seals it.
    count(
        &env,
        &format!(
            "WITH u AS (UPDATE user_accounts SET app_secret = 'meta-app-secret-user' WHERE id = '{}' RETURNING 1) \
             SELECT count(*) AS n FROM u",
            s.user_account_id
        ),
    )
    .await;
    assert_eq!(unsealed(&env).await, 1, "the hand-written plaintext");
    let keys = env.keys();
    let done = secrets::rotate::reseal(&mut env.conn().await, keys.ring().unwrap(), false)
        .await
        .unwrap();
    assert_eq!(done.iter().map(|d| d.encrypted).sum::<u64>(), 1);

    assert_eq!(unsealed(&env).await, 0, "every credential column is sealed");
    for p in PLAIN {
        assert_eq!(containing(&env, p).await, 0, "{p} is stored in plaintext");
    }
    let sealed_values: i64 = count(
        &env,
        "SELECT (SELECT count(*) FROM crm_connections WHERE access_token LIKE 'enc:v1:%') \
              + (SELECT count(*) FROM ad_accounts WHERE app_secret LIKE 'enc:v1:%') \
              + (SELECT count(*) FROM user_accounts WHERE telegram_bot_token LIKE 'enc:v1:%') AS n",
    )
    .await;
    assert_eq!(sealed_values, 3);

    // What is read back opens to what was stored.
    let mut conn = env.conn().await;
    let instance = storage::directions::instance(&mut conn, &keys, &s.instance)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        instance.webhook_secret.expose_secret(),
        "s3cret-webhook-key"
    );
    let mut urls = Vec::new();
    for id in ids(&env, "SELECT id FROM crm_connections ORDER BY crm_type").await {
        let access = storage::crm::access(&mut conn, &keys, id.into())
            .await
            .unwrap()
            .unwrap();
        urls.push(access.base_url.expose_secret().to_owned());
    }
    assert_eq!(urls, ["https://clinic.amocrm.ru", B24_WEBHOOK_URL]);
    drop(conn);

    // And the pipeline sends with the opened token: Meta gets the plaintext.
    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    let t = pipeline_tests::recent(600);
    post_ok(
        &p,
        &s,
        &customer_message(
            &s.instance,
            "M1",
            PHONE,
            "oi",
            Some("ARAkLkA8rmlFeiCktEJQ"),
            t,
        ),
    )
    .await;
    post_ok(
        &p,
        &s,
        &customer_message(&s.instance, "M2", PHONE, "preço?", None, t + 60),
    )
    .await;
    wait_for_successes(&env, 1, WAIT).await;
    assert_eq!(meta_tokens(&meta).await, ["EAAB-test-token"]);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_while_the_services_run() {
    let mut env = TestEnv::new().await;
    // Everything is first sealed with an old key.
    let old = Key::generate();
    env.secrets_key = Some(old.expose_secret().to_owned());
    let old_keys = env.keys();
    let old_id = old_keys.ring().unwrap().primary_id().to_owned();
    let s = store_every_kind_of_credential(&env).await;
    // The services now run with the new key and the old one as previous:
    // a second handle, beside the first.
    env.secrets_key = None;
    env.secrets_previous_keys = old.expose_secret().to_owned();
    let both = env.keys();
    let new_id = both.ring().unwrap().primary_id().to_owned();
    assert_ne!(new_id, old_id);

    let meta = MockServer::start().await;
    meta_accepts(&meta).await;
    let p = Pipeline::start(&env, &PipelineOptions::new(&meta.uri())).await;
    let dialog = |n: u64| {
        let phone = format!("55119999900{n:02}");
        let t = pipeline_tests::recent(600);
        (
            customer_message(
                &s.instance,
                &format!("A{n}"),
                &phone,
                "oi",
                Some(&format!("CLID{n}")),
                t,
            ),
            customer_message(
                &s.instance,
                &format!("B{n}"),
                &phone,
                "preço?",
                None,
                t + 60,
            ),
        )
    };
    // Before, during and after the rotation, webhooks are accepted (the
    // instance's secret opens) and Leads go out with the right token.
    let (a, b) = dialog(1);
    post_ok(&p, &s, &a).await;
    post_ok(&p, &s, &b).await;
    let rotation = {
        let keys = both.clone();
        let pool = env.pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.get().await.unwrap();
            secrets::rotate::reseal(&mut conn, keys.ring().unwrap(), true)
                .await
                .unwrap()
        })
    };
    let (a, b) = dialog(2);
    post_ok(&p, &s, &a).await;
    post_ok(&p, &s, &b).await;
    let rotated = rotation.await.unwrap();
    let total: u64 = rotated.iter().map(|r| r.rotated).sum();
    assert_eq!(total, 14, "{rotated:?}");
    let (a, b) = dialog(3);
    post_ok(&p, &s, &a).await;
    post_ok(&p, &s, &b).await;
    wait_for_successes(&env, 3, WAIT).await;
    assert_eq!(
        meta_tokens(&meta)
            .await
            .iter()
            .filter(|t| *t == "EAAB-test-token")
            .count(),
        3
    );
    p.stop().await;

    // Nothing is left under the old key.
    let status = secrets::rotate::status(&mut env.conn().await)
        .await
        .unwrap();
    for c in &status {
        for (key, n) in &c.by_key {
            assert_eq!(
                key, &new_id,
                "{} still has {n} value(s) under {key}",
                c.column
            );
        }
    }
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM ad_accounts WHERE access_token LIKE 'enc:v1:{old_id}:%'"
            )
        )
        .await,
        0
    );
    // With the old key gone, everything still opens; the old key alone
    // opens nothing any more.
    env.secrets_previous_keys = String::new();
    let new_only = env.keys();
    assert!(
        storage::directions::instance(&mut env.conn().await, &old_keys, &s.instance)
            .await
            .is_err(),
        "the old key's handle still opened a resealed secret"
    );
    let instance = storage::directions::instance(&mut env.conn().await, &new_only, &s.instance)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        instance.webhook_secret.expose_secret(),
        "s3cret-webhook-key"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_without_the_key_refuses_to_start_saying_why() {
    let env = TestEnv::new().await;
    let mut common = env.common();
    common.secrets.key = SecretString::from("");
    let err = runtime::Runtime::new("webhook-gateway", &common, Default::default())
        .err()
        .expect("no start without a key");
    assert!(
        err.to_string()
            .contains("secrets.key (CAPI_SECRETS__KEY) is not set"),
        "{err}"
    );
    let short = "c2hvcnQta2V5";
    common.secrets.key = SecretString::from(short);
    let err = runtime::Runtime::new("capi-sender", &common, Default::default())
        .err()
        .expect("no start with a bad key");
    assert!(
        err.to_string().contains("32 bytes") && !err.to_string().contains(short),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_debug_of_a_credential_carrying_type_prints_a_secret() {
    let env = TestEnv::new().await;
    let s = store_every_kind_of_credential(&env).await;
    let mut conn = env.conn().await;
    let keys = env.keys();
    let mut shown = Vec::new();
    shown.push(format!(
        "{:?}",
        storage::directions::instance(&mut conn, &keys, &s.instance)
            .await
            .unwrap()
    ));
    let connections = ids(&env, "SELECT id FROM crm_connections").await;
    assert_eq!(connections.len(), 2);
    for id in connections {
        let c = storage::crm::connection(&mut conn, &keys, id.into())
            .await
            .unwrap()
            .unwrap();
        assert!(c.webhook_secret.is_some() || c.application_token.is_some());
        shown.push(format!("{c:?}"));
        let a = storage::crm::access(&mut conn, &keys, id.into())
            .await
            .unwrap()
            .unwrap();
        shown.push(format!("{a:?}"));
    }
    shown.push(format!(
        "{:?}",
        storage::crm::NewConnection {
            access_token: Some("amo-access-token"),
            refresh_token: Some("amo-refresh-token"),
            oauth_client_secret: Some("amo-oauth-client-secret"),
            application_token: Some("b24-application-token"),
            ..storage::crm::NewConnection::new(
                s.user_account_id,
                domain::level::CrmType::AmoCrm,
                "https://x"
            )
        }
    ));
    shown.push(format!(
        "{:?}",
        storage::cloud_numbers::CloudMapping {
            phone_number_id: "1",
            direction_id: s.direction_id,
            waba_id: None,
            phone_number: None,
            access_token: Some("EAAG-cloud-system-user-token"),
            meta_app_id: None,
        }
    ));
    shown.push(format!(
        "{:?}",
        storage::reports::AccountSettings {
            telegram_bot_token: Some(Some("123456:telegram-bot-token")),
            ..Default::default()
        }
    ));
    shown.push(format!(
        "{:?}",
        secrets::Sealed::from(Some("EAAB-test-token".to_owned()))
    ));
    shown.push(format!("{:?}", keys.ring().unwrap()));
    shown.push(format!("{keys:?}"));
    let mut common = env.common();
    common.secrets.previous_keys = SecretString::from("meta-app-secret-user");
    shown.push(format!("{common:?}"));
    shown.push(format!(
        "{:?}",
        webhook_gateway::CloudSettings {
            verify_token: SecretString::from("s3cret-webhook-key"),
            app_secrets: SecretString::from("meta-app-secret-ad"),
        }
    ));
    let all = shown.join("\n");
    for p in PLAIN
        .iter()
        .chain(&[pipeline_tests::TEST_SECRETS_KEY, "amo-webhook-secret"])
    {
        assert!(!all.contains(p), "{p} printed in:\n{all}");
    }
}
