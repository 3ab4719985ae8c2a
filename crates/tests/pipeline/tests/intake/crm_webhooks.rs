//! The CRM webhook endpoints against real PostgreSQL: what a good hook
//! stores (once, however often it is delivered), and what a forged or
//! malformed one gets (with nothing stored).

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::ids::ConnectionId;
use domain::level::CrmType;
use pipeline_tests::{Pipeline, PipelineOptions, SeedOptions, TestEnv, count, seed};
use serde_json::Value;
use storage::crm::NewConnection;
use uuid::Uuid;

const AMO_SECRET: &str = "amo-url-secret-0123456789";
const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
const B24_TOKEN: &str = "jvh9y1ulvt2m6k5or90v9mg8nn32ozas";

async fn post(port: u16, path: &str, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned())
        .send()
        .await
        .expect("gateway answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn changes(env: &TestEnv) -> i64 {
    count(env, "SELECT count(*) AS n FROM crm_changes").await
}

async fn connections(env: &TestEnv) -> (ConnectionId, ConnectionId) {
    let s = seed(env, &SeedOptions::default()).await;
    let mut conn = env.conn().await;
    let base = NewConnection {
        access_token: Some("amo-api-token"),
        webhook_secret: Some(AMO_SECRET),
        account_subdomain: Some("unirock"),
        account_id: Some("16700680"),
        ..NewConnection::new(
            s.user_account_id,
            CrmType::AmoCrm,
            "https://unirock.amocrm.ru",
        )
    };
    let amo = storage::crm::create_connection(&mut conn, &env.keys(), &base)
        .await
        .expect("amo");
    let b24 = storage::crm::create_connection(
        &mut conn,
        &env.keys(),
        &NewConnection {
            crm_type: CrmType::Bitrix24,
            base_url: "https://b24-3tmral.bitrix24.ru/rest/1/incoming-secret/",
            access_token: None,
            webhook_secret: None,
            account_subdomain: None,
            account_id: None,
            member_id: Some("d897063e1ce7c5eb9f04b9751eef5915"),
            application_token: Some(B24_TOKEN),
            ..base
        },
    )
    .await
    .expect("b24");
    (amo, b24)
}

const AMO_BODY: &str = "leads%5Bupdate%5D%5B0%5D%5Bid%5D=23435433&leads%5Bupdate%5D%5B0%5D%5Bstatus_id%5D=17965459\
    &leads%5Bupdate%5D%5B0%5D%5Bpipeline_id%5D=936736&leads%5Bupdate%5D%5B0%5D%5Blast_modified%5D=1627306719\
    &leads%5Bupdate%5D%5B1%5D%5Bid%5D=23435434&leads%5Bupdate%5D%5B1%5D%5Blast_modified%5D=1627306719\
    &account%5Bsubdomain%5D=unirock&account%5Bid%5D=16700680";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amocrm_changes_are_stored_once_and_forged_or_bad_hooks_store_nothing() {
    let env = TestEnv::new().await;
    let (amo, b24) = connections(&env).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let path = format!("/webhooks/amocrm/{amo}?secret={AMO_SECRET}");

    // Wrong or missing secret, another account, a Bitrix24 connection, a bad body: nothing stored.
    for (url, body, status, code) in [
        (
            format!("/webhooks/amocrm/{amo}?secret=wrong"),
            AMO_BODY.to_owned(),
            401,
            "unauthorized",
        ),
        (
            format!("/webhooks/amocrm/{amo}"),
            AMO_BODY.to_owned(),
            401,
            "unauthorized",
        ),
        (
            path.clone(),
            AMO_BODY.replace("=unirock", "=someone-else"),
            401,
            "unauthorized",
        ),
        (
            path.clone(),
            AMO_BODY.replace("=23435434", "=23435434%00"),
            400,
            "invalid_body",
        ),
        (
            format!("/webhooks/amocrm/{b24}?secret={AMO_SECRET}"),
            AMO_BODY.to_owned(),
            401,
            "unauthorized",
        ),
        (
            format!("/webhooks/amocrm/not-a-uuid?secret={AMO_SECRET}"),
            AMO_BODY.to_owned(),
            401,
            "unauthorized",
        ),
        (
            path.clone(),
            "leads[add]x[0][id]=1".to_owned(),
            400,
            "invalid_body",
        ),
        (
            path.clone(),
            "account[subdomain]=unirock".to_owned(),
            400,
            "invalid_body",
        ),
        (
            path.clone(),
            "leads[add][0][name]=no-id&account[subdomain]=unirock".to_owned(),
            400,
            "invalid_body",
        ),
    ] {
        let (got, answer) = post(p.gateway_port, &url, &body).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{url}: {answer}"
        );
        assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(
            !answer.to_string().contains(AMO_SECRET),
            "the secret is not echoed"
        );
    }
    assert_eq!(changes(&env).await, 0);

    // Delivered three times (amoCRM retries): two changes, stored once.
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, answer) = post(p.gateway_port, &path, AMO_BODY).await;
        assert_eq!(status, 200, "{answer}");
        answers.push(answer["new"].as_i64());
    }
    assert_eq!(answers, [Some(2), Some(0), Some(0)]);
    assert_eq!(changes(&env).await, 2);
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM crm_changes WHERE entity = 'lead' AND action = 'update' \
                     AND entity_id IN ('23435433', '23435434') AND change->>'status_id' IS NOT DISTINCT FROM NULL").await,
        1,
        "the second lead carries no status"
    );
    // A later change of the same lead is a new change.
    let later = AMO_BODY.replace("1627306719", "1627306800");
    let (_, answer) = post(p.gateway_port, &path, &later).await;
    assert_eq!(answer["new"].as_i64(), Some(2));
    // (qualification-agent may already have evaluated them: the account has
    // no crm direction, so nothing is sent.)
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) AS n FROM crm_changes WHERE connection_id = '{amo}'")
        )
        .await,
        4
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM crm_changes WHERE id = (SELECT min(id) FROM crm_changes) \
                     AND entity = 'lead' AND action = 'update' AND entity_id = '23435433'"
        )
        .await,
        1
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_connections_and_wrong_secrets_get_the_same_answer() {
    let env = TestEnv::new().await;
    let (amo, b24) = connections(&env).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let b24_event = |token: &str| {
        format!(
            "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=7405\
             &auth%5Bmember_id%5D=d897063e1ce7c5eb9f04b9751eef5915&auth%5Bapplication_token%5D={token}"
        )
    };
    let unknown = Uuid::new_v4();
    let answers = [
        // amoCRM: wrong secret, no secret, unknown connection, not a UUID,
        // a Bitrix24 connection's id.
        post(
            p.gateway_port,
            &format!("/webhooks/amocrm/{amo}?secret=wrong"),
            AMO_BODY,
        )
        .await,
        post(p.gateway_port, &format!("/webhooks/amocrm/{amo}"), AMO_BODY).await,
        post(
            p.gateway_port,
            &format!("/webhooks/amocrm/{unknown}?secret={AMO_SECRET}"),
            AMO_BODY,
        )
        .await,
        post(
            p.gateway_port,
            &format!("/webhooks/amocrm/x?secret={AMO_SECRET}"),
            AMO_BODY,
        )
        .await,
        post(
            p.gateway_port,
            &format!("/webhooks/amocrm/{b24}?secret={AMO_SECRET}"),
            AMO_BODY,
        )
        .await,
        // Bitrix24: wrong token, unknown connection, an amoCRM connection's id.
        post(
            p.gateway_port,
            &format!("/webhooks/bitrix24/{b24}"),
            &b24_event("wrong"),
        )
        .await,
        post(
            p.gateway_port,
            &format!("/webhooks/bitrix24/{unknown}"),
            &b24_event(B24_TOKEN),
        )
        .await,
        post(
            p.gateway_port,
            &format!("/webhooks/bitrix24/{amo}"),
            &b24_event(B24_TOKEN),
        )
        .await,
    ];
    let first = answers[0].clone();
    assert_eq!(first.0, 401, "{}", first.1);
    assert_eq!(first.1["code"], "unauthorized");
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a, &first, "answer {i} differs from a wrong secret's");
    }
    assert_eq!(changes(&env).await, 0);

    // A form hook sent as JSON (or with no type) is refused before anything else.
    let resp = reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/webhooks/amocrm/{amo}?secret={AMO_SECRET}",
            p.gateway_port
        ))
        .header("content-type", "application/json")
        .body(AMO_BODY)
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(resp.status().as_u16(), 415);
    let body: Value = resp.json().await.expect("json error");
    assert_eq!(body["code"], "unsupported_media_type", "{body}");
    assert_eq!(changes(&env).await, 0);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitrix24_events_need_the_application_token_and_the_portal() {
    let env = TestEnv::new().await;
    let (amo, b24) = connections(&env).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let path = format!("/webhooks/bitrix24/{b24}");
    let event = |token: &str, member: &str| {
        format!(
            "event=ONCRMDEALUPDATE&event_handler_id=975&data%5BFIELDS%5D%5BID%5D=7405&ts=1766047124\
             &auth%5Bdomain%5D=some-domain.bitrix24.com&auth%5Bmember_id%5D={member}&auth%5Bapplication_token%5D={token}"
        )
    };
    let good = event(B24_TOKEN, "d897063e1ce7c5eb9f04b9751eef5915");
    for (url, body, status, code) in [
        (
            path.clone(),
            event("spoofed-token", "d897063e1ce7c5eb9f04b9751eef5915"),
            401,
            "unauthorized",
        ),
        (
            path.clone(),
            event("", "d897063e1ce7c5eb9f04b9751eef5915"),
            401,
            "unauthorized",
        ),
        (
            path.clone(),
            event(B24_TOKEN, "another-portal"),
            401,
            "unauthorized",
        ),
        (
            format!("/webhooks/bitrix24/{amo}"),
            good.clone(),
            401,
            "unauthorized",
        ),
        (
            path.clone(),
            "data[FIELDS][ID]=1".to_owned(),
            400,
            "invalid_body",
        ),
    ] {
        let (got, answer) = post(p.gateway_port, &url, &body).await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
        assert!(
            !answer.to_string().contains(B24_TOKEN),
            "the token is not echoed"
        );
    }
    assert_eq!(changes(&env).await, 0);
    // Bitrix24 never retries, but a duplicate delivery still stores one change.
    for expected_new in [1, 0] {
        let (status, answer) = post(p.gateway_port, &path, &good).await;
        assert_eq!(
            (status, answer["new"].as_i64()),
            (200, Some(expected_new)),
            "{answer}"
        );
    }
    let (status, answer) = post(p.gateway_port, &path, &format!("event=ONAPPINSTALL&auth%5Bapplication_token%5D={B24_TOKEN}&auth%5Bmember_id%5D=d897063e1ce7c5eb9f04b9751eef5915")).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM crm_changes WHERE connection_id = '{b24}' \
                              AND entity = 'deal' AND action = 'update' AND entity_id = '7405'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM crm_changes").await,
        1
    );
    assert_eq!(
        count(
            &env,
            &format!(
                "SELECT count(*) AS n FROM crm_changes WHERE change::text LIKE '%{B24_TOKEN}%'"
            )
        )
        .await,
        0,
        "the application token is not stored with the change"
    );
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_down_a_hook_gets_503_and_its_retry_is_stored_once() {
    let env = TestEnv::new().await;
    let (amo, _) = connections(&env).await;
    let db = pipeline_tests::FlakyProxy::to_postgres().await;
    let mut opts = PipelineOptions::new("http://127.0.0.1:9");
    opts.database_url = Some(db.database_url(&env));
    let p = Pipeline::start(&env, &opts).await;
    let path = format!("/webhooks/amocrm/{amo}?secret={AMO_SECRET}");
    let first = AMO_BODY.replace("1627306719", "1627306700");
    let (status, body) = post(p.gateway_port, &path, &first).await;
    assert_eq!((status, body["new"].as_u64()), (200, Some(2)), "{body}");

    // The database goes away: the CRM is told to come back (503 with a
    // reason), and nothing is half-stored.
    db.set_up(false);
    let (status, body) = post(p.gateway_port, &path, AMO_BODY).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "unavailable", "{body}");
    assert!(body["message"].is_string(), "{body}");
    assert!(!body.to_string().contains(AMO_SECRET));
    assert_eq!(changes(&env).await, 2);

    // Back: the CRM's retry is stored, once however often it comes.
    db.set_up(true);
    let stored = pipeline_tests::eventually("the retry is stored", WAIT, || async {
        let (status, body) = post(p.gateway_port, &path, AMO_BODY).await;
        (status == 200).then_some(body)
    })
    .await;
    assert_eq!(stored["new"], 2, "{stored}");
    let (status, again) = post(p.gateway_port, &path, AMO_BODY).await;
    assert_eq!((status, again["new"].as_u64()), (200, Some(0)), "{again}");
    assert_eq!(changes(&env).await, 4);
    p.stop().await;
}

/// Bodies an attacker sends, at the sizes an attacker sends them: each is
/// refused with the limit it broke, nothing of it is stored, and the
/// gateway goes on answering and storing real webhooks posted meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bodies_are_refused_at_their_limit_while_real_hooks_are_stored() {
    let env = TestEnv::new().await;
    let (amo, b24) = connections(&env).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let amo_path = format!("/webhooks/amocrm/{amo}?secret={AMO_SECRET}");
    let b24_path = format!("/webhooks/bitrix24/{b24}");
    // 400 KB: `a` then 200,000 `[]`, as in the report that stopped the gateway.
    let deep = format!("a{}=1", "[]".repeat(200_000));
    // Just under the 1 MiB body limit, every key distinct.
    let mut wide = String::new();
    let mut i = 0;
    while wide.len() < 1_040_000 {
        wide.push_str(&format!("k{i}=1&"));
        i += 1;
    }
    let hostile = [
        (&amo_path, &deep, "levels of brackets"),
        (&b24_path, &deep, "levels of brackets"),
        (&amo_path, &wide, "name=value pairs"),
        (&b24_path, &wide, "name=value pairs"),
    ];
    let real = |n: usize| {
        AMO_BODY
            .replace("=23435433", &format!("={}", 100 + n))
            .replace("=23435434", &format!("={}", 200 + n))
    };
    let attacks = futures_util::future::join_all(
        hostile
            .iter()
            .map(|(path, body, _)| post(p.gateway_port, path, body)),
    );
    let valid = futures_util::future::join_all((0..4).map(|n| {
        let (path, body) = (&amo_path, real(n));
        async move { post(p.gateway_port, path, &body).await }
    }));
    let (attacks, valid) = tokio::join!(attacks, valid);
    for ((_, _, limit), (status, answer)) in hostile.iter().zip(&attacks) {
        assert_eq!(status, &400, "{answer}");
        assert_eq!(answer["code"], "limit_exceeded", "{answer}");
        let message = answer["message"].as_str().unwrap_or_default();
        assert!(message.contains(limit), "{message}");
        assert!(message.len() < 200, "the answer does not echo the body");
    }
    for (status, answer) in &valid {
        assert_eq!(
            (status, answer["new"].as_u64()),
            (&200, Some(2)),
            "{answer}"
        );
    }
    assert_eq!(
        changes(&env).await,
        8,
        "the real hooks' changes, none of the hostile"
    );
    let health = reqwest::get(format!("http://127.0.0.1:{}/health", p.gateway_port))
        .await
        .expect("the gateway is still up");
    assert_eq!(health.status().as_u16(), 200);

    // A Bitrix24 body naming no connection is not read at all: the 401 of
    // an unknown hook, not the 400 of its body.
    let (status, answer) = post(
        p.gateway_port,
        &format!("/webhooks/bitrix24/{}", Uuid::new_v4()),
        &deep,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (401, Some("unauthorized")),
        "{answer}"
    );

    // A flood of made-up connection ids (each once, so no cache helps)
    // beside real webhooks: every made-up one 401, every real one stored.
    let flood = futures_util::future::join_all((0..400).map(|_| {
        let id = Uuid::new_v4();
        async move {
            post(
                p.gateway_port,
                &format!("/webhooks/amocrm/{id}?secret={AMO_SECRET}"),
                AMO_BODY,
            )
            .await
            .0
        }
    }));
    let valid = futures_util::future::join_all((10..30).map(|n| {
        let (path, body) = (&amo_path, real(n));
        async move { post(p.gateway_port, path, &body).await }
    }));
    let (flood, valid) = tokio::join!(flood, valid);
    assert!(flood.iter().all(|s| *s == 401), "{flood:?}");
    assert!(
        valid.iter().all(|(s, a)| *s == 200 && a["new"] == 2),
        "{valid:?}"
    );
    assert_eq!(changes(&env).await, 8 + 40);
    p.stop().await;
}
