//! The retention sweep inside `reports` (two replicas at once): message
//! texts, bot replies and evaluated CRM bodies past their account's window
//! are blanked — exactly those — and every count, level and event stays.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{
    ReportsService, SeedOptions, TestEnv, count, eventually, query_json, reports_settings, seed,
    text_message,
};
use serde_json::json;
use std::time::Duration;
use storage::{
    conversations::{self, NewMessage},
    retention::{self, Windows},
};

/// Stores a customer's message that reached us `days` ago, named by its id.
async fn message_aged(env: &TestEnv, instance: &str, id: &str, phone: &str, days: i64) {
    message_sent_and_received(env, instance, id, phone, days, days).await
}

/// Stores a message written `sent` days ago that reached us `received` days ago.
async fn message_sent_and_received(
    env: &TestEnv,
    instance: &str,
    id: &str,
    phone: &str,
    sent: i64,
    received: i64,
) {
    let mut conn = env.conn().await;
    conversations::record_message(
        &mut conn,
        &NewMessage {
            sent_at: chrono::Utc::now() - chrono::Duration::days(sent),
            ..text_message(instance, id, Some(phone), None, &format!("text of {id}"))
        },
        |_, _| None,
    )
    .await
    .unwrap();
    conn.batch_execute(&format!(
        "UPDATE dialog_messages SET received_at = now() - interval '{received} days' \
         WHERE message_id = '{id}'"
    ))
    .await
    .unwrap();
}

/// A snapshot of everything the sweep must leave as it was.
async fn counts(env: &TestEnv) -> serde_json::Value {
    query_json(
        env,
        "SELECT jsonb_build_object( \
           'messages', (SELECT count(*) FROM dialog_messages), \
           'dialogs', (SELECT jsonb_agg(jsonb_build_array(contact_key, incoming_count, funnel_stage, capi_interest_sent) \
                         ORDER BY contact_key) FROM dialog_analysis), \
           'replies', (SELECT count(*) FROM bot_replies), \
           'changes', (SELECT jsonb_agg(jsonb_build_array(entity_id, outcome) ORDER BY entity_id) FROM crm_changes), \
           'deliveries', (SELECT jsonb_agg(jsonb_build_array(event_id, status) ORDER BY event_id) FROM capi_deliveries)) AS v",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_blanks_exactly_what_is_past_each_accounts_window() {
    let env = TestEnv::new().await;
    // A: 30 days of texts, 10 of CRM bodies; B: the defaults (90 / 30).
    let a = seed(&env, &SeedOptions::default()).await;
    let b = seed(&env, &SeedOptions::default()).await;
    let mut conn = env.conn().await;
    assert!(
        retention::set_windows(
            &mut conn,
            a.user_account_id,
            Windows {
                messages_days: Some(30),
                crm_bodies_days: Some(10),
            },
        )
        .await
        .unwrap()
    );
    for (id, days) in [("A-29", 29), ("A-31", 31), ("A-100", 100)] {
        message_aged(&env, &a.instance, id, "5511900000001", days).await;
    }
    // Written 100 days ago, reached us today (a history sync): kept its
    // window from today.
    message_sent_and_received(&env, &a.instance, "A-sync", "5511900000001", 100, 0).await;
    for (id, days) in [("B-31", 31), ("B-89", 89), ("B-91", 91)] {
        message_aged(&env, &b.instance, id, "5511900000002", days).await;
    }
    // A number no account maps any more: the default window.
    for (id, days) in [("O-89", 89), ("O-91", 91)] {
        message_aged(&env, "unmapped-number", id, "5511900000003", days).await;
    }
    conn.batch_execute(&format!(
        "INSERT INTO bot_replies (dialog_id, seq, status, reply_text, created_at)
           SELECT id, 1, 'sent', 'reply of 29 days', now() - interval '29 days' FROM dialog_analysis WHERE instance_name = '{ai}';
         INSERT INTO bot_replies (dialog_id, seq, status, reply_text, created_at)
           SELECT id, 2, 'sent', 'reply of 31 days', now() - interval '31 days' FROM dialog_analysis WHERE instance_name = '{ai}';
         INSERT INTO crm_connections (id, user_account_id, crm_type, base_url)
           VALUES ('00000000-0000-4000-8000-00000000c0a1', '{au}', 'amocrm', 'https://a.amocrm.ru');
         INSERT INTO crm_changes (connection_id, entity, action, entity_id, change_key, change, received_at, evaluated_at, outcome)
           VALUES ('00000000-0000-4000-8000-00000000c0a1', 'leads', 'status', 'evaluated-11', 'k1', '{{\"phone\": \"5511900000001\"}}',
                   now() - interval '11 days', now() - interval '11 days', '{{\"levels\": [2]}}'),
                  ('00000000-0000-4000-8000-00000000c0a1', 'leads', 'status', 'evaluated-9', 'k2', '{{\"phone\": \"5511900000001\"}}',
                   now() - interval '9 days', now() - interval '9 days', '{{\"levels\": [1]}}'),
                  ('00000000-0000-4000-8000-00000000c0a1', 'leads', 'status', 'waiting-40', 'k3', '{{\"phone\": \"5511900000001\"}}',
                   now() - interval '40 days', NULL, NULL);
         INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, status)
           SELECT id, 1, 'ev-a', now() - interval '31 days', 'success' FROM dialog_analysis WHERE instance_name = '{ai}';
         UPDATE dialog_analysis SET funnel_stage = 'qualified', capi_interest_sent = true WHERE instance_name = '{ai}';",
        ai = a.instance,
        au = a.user_account_id,
    ))
    .await
    .unwrap();
    let before = counts(&env).await;

    let settings = reports::ReportSettings {
        retention_every: Duration::from_millis(200),
        retention_batch: 1,
        ..reports_settings("http://127.0.0.1:9")
    };
    let replicas = [
        ReportsService::start(&env, settings.clone()).await,
        ReportsService::start(&env, settings).await,
    ];
    eventually("the sweep", Duration::from_secs(30), || async {
        (count(
            &env,
            "SELECT count(*) AS n FROM dialog_messages WHERE text IS NULL",
        )
        .await
            == 4
            && count(
                &env,
                "SELECT count(*) AS n FROM crm_changes WHERE change = '{}'",
            )
            .await
                == 1
            && count(
                &env,
                "SELECT count(*) AS n FROM bot_replies WHERE reply_text IS NULL",
            )
            .await
                == 1)
            .then_some(())
    })
    .await;
    // One more period: nothing else goes.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for r in replicas {
        r.stop().await;
    }
    assert_eq!(
        query_json(
            &env,
            "SELECT jsonb_object_agg(message_id, text IS NOT NULL) AS v FROM dialog_messages"
        )
        .await,
        json!({"A-29": true, "A-31": false, "A-100": false, "A-sync": true, "B-31": true, "B-89": true,
               "B-91": false, "O-89": true, "O-91": false})
    );
    // Each number's next pass starts where its window began.
    assert_eq!(
        query_json(
            &env,
            "SELECT jsonb_object_agg(scope, round(extract(epoch FROM now() - blank_before) / 86400)) AS v \
             FROM retention_marks WHERE kind = 'messages'"
        )
        .await,
        json!({a.instance.as_str(): 30, b.instance.as_str(): 90, "unmapped-number": 90})
    );
    assert_eq!(
        query_json(
            &env,
            "SELECT jsonb_object_agg(seq, reply_text) AS v FROM bot_replies"
        )
        .await,
        json!({"1": "reply of 29 days", "2": null})
    );
    assert_eq!(
        query_json(
            &env,
            "SELECT jsonb_object_agg(entity_id, change) AS v FROM crm_changes"
        )
        .await,
        json!({"evaluated-11": {}, "evaluated-9": {"phone": "5511900000001"},
               "waiting-40": {"phone": "5511900000001"}})
    );
    assert_eq!(counts(&env).await, before);
}
