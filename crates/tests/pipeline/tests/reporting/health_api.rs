//! CAPI health against real PostgreSQL: each status reached from seeded
//! audit rows, Meta's refusal of a token raising the banner, skips by
//! reason, events waiting and ad dialogs without a click id.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use crate::reports_api::{get, key_for};
use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{ReportsService, SandboxServer, TestEnv, reports_settings};
use serde_json::{Value, json};
use uuid::Uuid;

/// One account with a direction per status: "Active" (accepted every ten
/// minutes until 5 min ago, two skips, four ad dialogs of which one without
/// a click id), "Test" (a test code, one test event accepted), "Failing"
/// (accepted 3 h ago, then Meta refused the token twice; one event
/// waiting), "Silent" (last accepted 30 h ago), "Off" (CAPI off).
async fn seed(env: &TestEnv) -> (Uuid, [Uuid; 5]) {
    let account = Uuid::new_v4();
    let ids = [(); 5].map(|_| Uuid::new_v4());
    let [active, test, failing, silent, off] = ids;
    let log = |d: Uuid, status: &str, ago: &str, extra: &str| {
        format!(
            "INSERT INTO capi_events_log (direction_id, user_account_id, event_level, event_name, event_id, status, created_at{})
             VALUES ('{d}', '{account}', 1, 'LeadSubmitted', gen_random_uuid()::text, '{status}', now() - interval '{ago}'{});",
            if extra.is_empty() { "" } else { ", reason, request, response, error_message" },
            extra
        )
    };
    let mut sql = format!(
        "INSERT INTO user_accounts (id, name) VALUES ('{account}', 'Clinic');
         INSERT INTO account_directions (id, user_account_id, name, capi_enabled, pixel_id, test_event_code) VALUES
           ('{active}', '{account}', 'Active', true, '1', NULL), ('{test}', '{account}', 'Test', true, '2', 'TEST42'),
           ('{failing}', '{account}', 'Failing', true, '3', NULL), ('{silent}', '{account}', 'Silent', true, '4', NULL),
           ('{off}', '{account}', 'Off', false, NULL, NULL);
         INSERT INTO whatsapp_phone_numbers (instance_name, direction_id, webhook_secret, user_account_id)
           VALUES ('inst-{active}', '{active}', 's', '{account}'), ('inst-{failing}', '{failing}', 's', '{account}');"
    );
    for minutes in (5..=300).step_by(10) {
        sql.push_str(&log(active, "success", &format!("{minutes} minutes"), ""));
    }
    sql.push_str(&log(
        active,
        "skipped",
        "1 hour",
        ", 'too_old', NULL, NULL, NULL",
    ));
    sql.push_str(&log(
        active,
        "skipped",
        "2 hours",
        ", 'no_dialog', NULL, NULL, NULL",
    ));
    for (i, clid) in ["'c1'", "'c2'", "'c3'", "NULL"].iter().enumerate() {
        sql.push_str(&format!(
            "INSERT INTO dialog_analysis (instance_name, contact_key, direction_id, from_ad, ctwa_clid, first_message)
             VALUES ('inst-{active}', 'k{i}', '{active}', true, {clid}, now() - interval '1 day');"
        ));
    }
    sql.push_str(&log(
        test,
        "success",
        "20 minutes",
        r#", NULL, '{"data": [], "test_event_code": "TEST42"}', NULL, NULL"#,
    ));
    sql.push_str(&log(failing, "success", "3 hours", ""));
    let refused = r#", 'auth', NULL, '{"error": {"message": "Error validating access token: Session has expired on Friday.", "type": "OAuthException", "code": 190, "error_subcode": 463}}', 'Meta answered 400: Error validating access token: Session has expired on Friday.'"#;
    sql.push_str(&log(failing, "error", "30 minutes", refused));
    sql.push_str(&log(failing, "error", "10 minutes", refused));
    sql.push_str(&format!(
        "INSERT INTO dialog_analysis (id, instance_name, contact_key, direction_id, first_message)
           VALUES ('{d}', 'inst-{failing}', 'w', '{failing}', now() - interval '1 hour');
         INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, status)
           VALUES ('{d}', 1, 'waiting-1', now(), 'pending');",
        d = Uuid::new_v4()
    ));
    sql.push_str(&log(silent, "success", "30 hours", ""));
    env.conn().await.batch_execute(&sql).await.unwrap();
    (account, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_status_comes_from_the_audit_log_and_a_refused_token_raises_the_banner() {
    let env = TestEnv::new().await;
    let (account, [active, test, failing, silent, off]) = seed(&env).await;
    let (_, key) = key_for(&env, account).await;
    let sandbox = SandboxServer::start().await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    let (status, body) = get(
        &service,
        &format!("/analytics/capi-health?user_account_id={account}"),
        Some(&key),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let of = |id: Uuid| -> Value {
        body["directions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["direction_id"] == id.to_string())
            .cloned()
            .unwrap_or_else(|| panic!("{id} in {body}"))
    };
    let statuses: Vec<(Value, Value)> = [active, test, failing, silent, off]
        .iter()
        .map(|id| (of(*id)["name"].clone(), of(*id)["status"].clone()))
        .collect();
    assert_eq!(
        statuses,
        [
            (json!("Active"), json!("active")),
            (json!("Test"), json!("test")),
            (json!("Failing"), json!("failing")),
            (json!("Silent"), json!("silent")),
            (json!("Off"), json!("off")),
        ]
    );

    let a = of(active);
    assert_eq!(a["accepted_24h"], 30);
    assert_eq!(a["refused_24h"], 0);
    assert_eq!(a["skipped_24h"], json!({"too_old": 1, "no_dialog": 1}));
    assert_eq!(a["usual_gap_secs"], 600, "a ten-minute rhythm");
    assert_eq!(
        (
            &a["ad_dialogs_7d"],
            &a["without_click_id_7d"],
            &a["without_click_id_pct"]
        ),
        (&json!(4), &json!(1), &json!(25.0))
    );
    assert_eq!(a["banner"], Value::Null);

    assert_eq!(
        (&of(test)["verified"], &of(test)["test_event_code"]),
        (&json!(true), &json!("TEST42"))
    );

    let f = of(failing);
    assert_eq!((&f["refused_24h"], &f["waiting"]), (&json!(2), &json!(1)));
    assert_eq!(f["last_refusal"]["code"], 190);
    assert_eq!(f["banner"]["refusal"], "token");
    assert!(
        f["banner"]["message"]
            .as_str()
            .unwrap()
            .contains("Session has expired"),
        "{f}"
    );
    assert!(
        f["banner"]["what_to_do"]
            .as_str()
            .unwrap()
            .contains("new access token")
    );
    assert!(f["summary"].as_str().unwrap().contains("1 waiting"), "{f}");

    assert!(
        of(silent)["summary"].as_str().unwrap().contains("30 h ago"),
        "{}",
        of(silent)
    );

    // Another account's key sees none of it.
    let other = Uuid::new_v4();
    env.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO user_accounts (id, name) VALUES ('{other}', 'Other')"
        ))
        .await
        .unwrap();
    let (_, other_key) = key_for(&env, other).await;
    let (status, _) = get(
        &service,
        &format!("/analytics/capi-health?user_account_id={account}"),
        Some(&other_key),
    )
    .await;
    assert_eq!(status, 404);
    service.stop().await;
}
