//! The daily report against real PostgreSQL: exactly the spec's text (both
//! languages) and `directions_data` for a day with two directions and
//! dialogs without one; generated once whatever the number of replicas;
//! regenerating changes and sends nothing; Telegram's 429 then 200 is one
//! message. Plus the ad-spend sync against the sandbox's insights.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::NaiveDate;
use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{ReportsService, SandboxServer, TestEnv, count, eventually, reports_settings};
use serde_json::{Value, json};
use std::time::Duration;
use storage::reports;
use uuid::Uuid;

pub struct Fixture {
    pub account: Uuid,
    pub cosmetology: Uuid,
    pub dentistry: Uuid,
    pub ad_account: Uuid,
    pub leads: Vec<Uuid>,
}

const TZ: &str = "Asia/Almaty";

/// One account (zone Asia/Almaty, UTC+5) and its local day `day`:
/// Косметология (CAPI on): a1, a2 new, a3 older, a4 only the day before,
/// a5 only just after midnight; three Lead events (one logged twice), one
/// Registration, an error and an event the next day. Стоматология (CAPI
/// off): b1. An instance whose direction is gone: c1 ("No direction").
pub async fn seed_day(env: &TestEnv, day: NaiveDate) -> Fixture {
    let account = Uuid::new_v4();
    let (cosmetology, dentistry, ad_account) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let at = |offset: i32, hm: &str| format!("(('{day}'::date + {offset}) + time '{hm}') AT TIME ZONE '{TZ}'");
    let mut sql = format!(
        "INSERT INTO user_accounts (id, name, timezone, report_language) VALUES ('{account}', 'Clinic', '{TZ}', 'ru');
         INSERT INTO ad_accounts (id, user_account_id, name, meta_ad_account_id) VALUES ('{ad_account}', '{account}', 'Main', 'act_77');
         INSERT INTO account_directions (id, user_account_id, ad_account_id, name, capi_enabled, pixel_id)
           VALUES ('{cosmetology}', '{account}', '{ad_account}', 'Косметология', true, '111'),
                  ('{dentistry}', '{account}', NULL, 'Стоматология', false, NULL);
         INSERT INTO whatsapp_phone_numbers (instance_name, direction_id, webhook_secret, user_account_id)
           VALUES ('inst-a-{account}', '{cosmetology}', 's', '{account}'),
                  ('inst-b-{account}', '{dentistry}', 's', '{account}'),
                  ('inst-c-{account}', NULL, 's', '{account}');"
    );
    // (key, instance, first (offset, time), interest, messages: (offset, time, from_me, response_ms))
    type Msg = (i32, &'static str, bool, Option<i32>);
    let dialogs: Vec<(&str, &str, Option<&str>, Vec<Msg>)> = vec![
        ("a1", "a", Some("hot"), vec![(0, "10:00", false, None), (0, "10:01", true, Some(60_000)), (0, "10:05", false, None)]),
        ("a2", "a", None, vec![(0, "20:00", false, None), (0, "20:02", false, None)]),
        ("a3", "a", Some("warm"), vec![(-2, "09:00", false, None), (0, "11:00", false, None), (0, "11:02", true, Some(120_000))]),
        ("a4", "a", Some("cold"), vec![(-1, "23:59", false, None)]),
        ("a5", "a", None, vec![(1, "00:30", false, None)]),
        ("b1", "b", Some("cold"), vec![(0, "00:00", false, None), (0, "00:01", false, None), (0, "00:02", true, Some(30_000))]),
        ("c1", "c", None, vec![(0, "23:59", false, None)]),
    ];
    let mut leads = Vec::new();
    for (key, inst, interest, messages) in &dialogs {
        let (dialog, lead) = (Uuid::new_v4(), Uuid::new_v4());
        leads.push(lead);
        let instance = format!("inst-{inst}-{account}");
        let first = messages.iter().map(|m| at(m.0, m.1)).next().unwrap();
        let last = messages.iter().map(|m| at(m.0, m.1)).last().unwrap();
        let interest = interest.map_or("NULL".to_owned(), |i| format!("'{i}'"));
        sql.push_str(&format!(
            "INSERT INTO leads (id, instance_name, contact_key, name) VALUES ('{lead}', '{instance}', '{key}', 'Customer {key}');
             INSERT INTO dialog_analysis (id, instance_name, contact_key, contact_name, lead_id, first_message, last_message, interest_level)
               VALUES ('{dialog}', '{instance}', '{key}', 'Customer {key}', '{lead}', {first}, {last}, {interest});"
        ));
        for (i, (offset, hm, from_me, response)) in messages.iter().enumerate() {
            sql.push_str(&format!(
                "INSERT INTO dialog_messages (dialog_id, instance_name, message_id, from_me, author, text, sent_at, response_ms)
                   VALUES ('{dialog}', '{instance}', '{key}-{i}', {from_me}, '{}', 'hi', {}, {});",
                if *from_me { "operator" } else { "customer" },
                at(*offset, hm),
                response.map_or("NULL".to_owned(), |r| r.to_string())
            ));
        }
    }
    // The audit log: level, event id, status, when.
    let events = [
        (1, "e1", "success", at(0, "10:02")),
        (1, "e2", "success", at(0, "20:03")),
        (1, "e3", "success", at(0, "11:03")),
        (1, "e3", "success", at(0, "11:04")),
        (2, "e4", "success", at(0, "12:00")),
        (1, "e5", "error", at(0, "13:00")),
        (1, "e6", "success", at(1, "00:05")),
    ];
    for (level, id, status, when) in events {
        sql.push_str(&format!(
            "INSERT INTO capi_events_log (direction_id, user_account_id, event_level, event_name, event_id, status, created_at)
               VALUES ('{cosmetology}', '{account}', {level}, 'Lead', '{id}', '{status}', {when});"
        ));
    }
    env.conn().await.batch_execute(&sql).await.expect("seed the day");
    Fixture { account, cosmetology, dentistry, ad_account, leads }
}

const RU: &str = "📊 Отчёт по перепискам за 20 ноября 2026
━━━━━━━━━━━━━━━━━━━━━━

📈 ОБЩАЯ СТАТИСТИКА
• Всего диалогов: 5
• Новых: 4
• Сообщений: 📥 8 / 📤 3

━━━━━━━━━━━━━━━━━━━━━━
📁 ПО НАПРАВЛЕНИЯМ (3)

📌 Косметология
• Диалогов: 3 (новых: 2)
• Сообщений: 📥 5 / 📤 2

🎯 Воронка CAPI:
  👋 Интерес: 3
  ✅ Квалиф.: 1
  📅 Записался: 0
  📊 Конверсия: 33%

🌡️ Интерес: 🔥1 ☀️1 ❄️0
⏱️ Среднее время ответа: 2 мин

📌 Стоматология
• Диалогов: 1 (новых: 1)
• Сообщений: 📥 2 / 📤 1

🌡️ Интерес: 🔥0 ☀️0 ❄️1
⏱️ Среднее время ответа: 30 сек

📌 Без направления
• Диалогов: 1 (новых: 1)
• Сообщений: 📥 1 / 📤 0
";

const EN: &str = "📊 Conversation report for 20 November 2026
━━━━━━━━━━━━━━━━━━━━━━

📈 OVERALL
• Dialogs: 5
• New: 4
• Messages: 📥 8 / 📤 3

━━━━━━━━━━━━━━━━━━━━━━
📁 BY DIRECTION (3)

📌 Косметология
• Dialogs: 3 (new: 2)
• Messages: 📥 5 / 📤 2

🎯 CAPI funnel:
  👋 Interest: 3
  ✅ Qualified: 1
  📅 Booked: 0
  📊 Conversion: 33%

🌡️ Interest: 🔥1 ☀️1 ❄️0
⏱️ Average response time: 2 min

📌 Стоматология
• Dialogs: 1 (new: 1)
• Messages: 📥 2 / 📤 1

🌡️ Interest: 🔥0 ☀️0 ❄️1
⏱️ Average response time: 30 sec

📌 No direction
• Dialogs: 1 (new: 1)
• Messages: 📥 1 / 📤 0
";

fn day() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_with_two_directions_and_undirected_dialogs_renders_as_the_spec() {
    let env = TestEnv::new().await;
    let f = seed_day(&env, day()).await;
    let mut conn = env.conn().await;
    let account = reports::account(&mut conn, f.account).await.unwrap().unwrap();
    let (_, stored) = reports::generate(&mut conn, &account, day(), false).await.unwrap();
    assert_eq!(stored, reports::Stored::Created);
    let r = reports::get(&mut conn, f.account, day()).await.unwrap().unwrap();
    assert_eq!(r.report_text, RU);
    assert_eq!(
        r.directions_data,
        json!([
            {"direction_id": f.cosmetology.to_string(), "direction_name": "Косметология", "total_dialogs": 3, "new_dialogs": 2,
             "capi_enabled": true, "capi_has_data": true, "capi_distribution": {"interest": 3, "qualified": 1, "scheduled": 0},
             "interest_distribution": {"hot": 1, "warm": 1, "cold": 0}, "incoming_messages": 5, "outgoing_messages": 2,
             "avg_response_time_minutes": 1.5},
            {"direction_id": f.dentistry.to_string(), "direction_name": "Стоматология", "total_dialogs": 1, "new_dialogs": 1,
             "capi_enabled": false, "capi_has_data": false, "capi_distribution": {"interest": 0, "qualified": 0, "scheduled": 0},
             "interest_distribution": {"hot": 0, "warm": 0, "cold": 1}, "incoming_messages": 2, "outgoing_messages": 1,
             "avg_response_time_minutes": 0.5},
            {"direction_id": null, "direction_name": "Без направления", "total_dialogs": 1, "new_dialogs": 1,
             "capi_enabled": false, "capi_has_data": false, "capi_distribution": {"interest": 0, "qualified": 0, "scheduled": 0},
             "interest_distribution": {"hot": 0, "warm": 0, "cold": 0}, "incoming_messages": 1, "outgoing_messages": 0,
             "avg_response_time_minutes": null}
        ])
    );
    // Legacy fields: the CAPI directions' sum, used, the first CAPI direction.
    assert_eq!(r.capi_distribution, Some(json!({"interest": 3, "qualified": 1, "scheduled": 0})));
    assert_eq!(r.capi_source_used, Some(true));
    assert_eq!(r.capi_direction_id, Some(f.cosmetology));
    assert_eq!(r.stats, json!({"total_dialogs": 5, "new_dialogs": 4, "incoming_messages": 8, "outgoing_messages": 3}));
    // No Telegram chat: nothing to deliver.
    assert_eq!(r.telegram_status, "not_configured");

    // The same day in English, regenerated on demand: the row is updated.
    reports::set_account(
        &mut conn,
        f.account,
        &reports::AccountSettings { language: Some(domain::report::Language::En), ..Default::default() },
    )
    .await
    .unwrap();
    let account = reports::account(&mut conn, f.account).await.unwrap().unwrap();
    let (_, stored) = reports::generate(&mut conn, &account, day(), true).await.unwrap();
    assert_eq!(stored, reports::Stored::Updated);
    let r = reports::get(&mut conn, f.account, day()).await.unwrap().unwrap();
    assert_eq!(r.report_text, EN);
    assert_eq!(r.directions_data[2]["direction_name"], "No direction");
    assert_eq!(count(&env, "SELECT count(*) AS n FROM conversation_reports").await, 1);
}

async fn telegram_sent(sandbox: &SandboxServer, chat: &str) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/sandbox/telegram/sent?chat_id={chat}", sandbox.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v.as_array().cloned().unwrap_or_default()
}

/// Seeds the account's local yesterday (what the schedule reports on) and
/// points the account at a Telegram chat.
async fn seed_yesterday_with_telegram(env: &TestEnv, chat: &str) -> (Fixture, NaiveDate) {
    let mut conn = env.conn().await;
    let yesterday = reports::local_today(&mut conn, TZ).await.unwrap() - chrono::Duration::days(1);
    let f = seed_day(env, yesterday).await;
    reports::set_account(
        &mut conn,
        f.account,
        &reports::AccountSettings {
            telegram_chat_id: Some(Some(chat)),
            telegram_bot_token: Some(Some("123456:TEST-bot-token-abcdef")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    (f, yesterday)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_make_one_report_and_regenerating_sends_nothing_again() {
    let env = TestEnv::new().await;
    let sandbox = SandboxServer::start().await;
    let (f, yesterday) = seed_yesterday_with_telegram(&env, "-100200300").await;
    let a = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    let b = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    eventually("the report is delivered", Duration::from_secs(20), || async {
        (count(&env, "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'").await == 1).then_some(())
    })
    .await;
    // Several more ticks of both replicas change nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&env, "SELECT count(*) AS n FROM conversation_reports").await, 1);
    let sent = telegram_sent(&sandbox, "-100200300").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["bot_token"], "123456:TEST-bot-token-abcdef");
    let text = sent[0]["text"].as_str().unwrap();
    assert!(text.starts_with("📊 Отчёт по перепискам за"), "{text}");
    assert!(text.contains("• Всего диалогов: 5\n"), "{text}");

    // Regenerated on demand: same content, nothing changes, nothing is sent.
    let mut conn = env.conn().await;
    let before = reports::get(&mut conn, f.account, yesterday).await.unwrap().unwrap();
    let account = reports::account(&mut conn, f.account).await.unwrap().unwrap();
    let (_, stored) = reports::generate(&mut conn, &account, yesterday, true).await.unwrap();
    assert_eq!(stored, reports::Stored::Unchanged);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = reports::get(&mut conn, f.account, yesterday).await.unwrap().unwrap();
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(after.telegram_sent_at, before.telegram_sent_at);
    assert_eq!(telegram_sent(&sandbox, "-100200300").await.len(), 1);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_429_then_200_is_one_message() {
    let env = TestEnv::new().await;
    let sandbox = SandboxServer::start().await;
    sandbox.put("/sandbox/telegram/faults", &json!({"fail_next": [429], "retry_after": 1})).await;
    let (_, _) = seed_yesterday_with_telegram(&env, "42").await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    eventually("the report is delivered", Duration::from_secs(20), || async {
        (count(&env, "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'").await == 1).then_some(())
    })
    .await;
    assert_eq!(telegram_sent(&sandbox, "42").await.len(), 1);
    // One claim: the 429 was waited out inside it, not retried as a new attempt.
    assert_eq!(count(&env, "SELECT telegram_attempts::bigint AS n FROM conversation_reports").await, 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_telegram_is_retried_and_a_rejected_token_gives_up() {
    let env = TestEnv::new().await;
    let sandbox = SandboxServer::start().await;
    sandbox.put("/sandbox/telegram/faults", &json!({"fail_next": [500]})).await;
    let (f, _) = seed_yesterday_with_telegram(&env, "77").await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    eventually("the failure is recorded", Duration::from_secs(20), || async {
        (count(&env, "SELECT count(*) AS n FROM conversation_reports WHERE telegram_error LIKE 'Telegram answered 500%' AND telegram_status = 'pending'").await == 1)
            .then_some(())
    })
    .await;
    // Back-off is 30 s: bring the retry forward instead of waiting.
    env.conn().await.batch_execute("UPDATE conversation_reports SET telegram_next_at = now()").await.unwrap();
    eventually("the retry delivers", Duration::from_secs(20), || async {
        (count(&env, "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'").await == 1).then_some(())
    })
    .await;
    assert_eq!(telegram_sent(&sandbox, "77").await.len(), 1);
    service.stop().await;

    // A token Telegram refuses (401): failed for good, with the reason.
    let env = TestEnv::new().await;
    let (g, _) = seed_yesterday_with_telegram(&env, "78").await;
    let _ = f;
    reports::set_account(
        &mut env.conn().await,
        g.account,
        &reports::AccountSettings { telegram_bot_token: Some(Some("not-a-token")), ..Default::default() },
    )
    .await
    .unwrap();
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    eventually("delivery gives up", Duration::from_secs(20), || async {
        (count(&env, "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'failed' AND telegram_error = 'Telegram answered 401: Unauthorized'").await == 1)
            .then_some(())
    })
    .await;
    assert!(telegram_sent(&sandbox, "78").await.is_empty());
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spend_syncs_every_page_and_backs_off_when_throttled() {
    let env = TestEnv::new().await;
    let sandbox = SandboxServer::start().await;
    let f = seed_day(&env, day()).await;
    env.conn()
        .await
        .batch_execute(&format!("UPDATE ad_accounts SET access_token = 'EAAB-spend-token' WHERE id = '{}'", f.ad_account))
        .await
        .unwrap();
    // 7 days × 80 campaigns = 560 rows: two pages of 500.
    let today = reports::local_today(&mut env.conn().await, "UTC").await.unwrap();
    let mut rows = Vec::new();
    for d in 1..=7 {
        for c in 0..80 {
            rows.push(json!({"campaign_id": format!("c{c}"), "campaign_name": format!("Campaign {c}"),
                             "date": (today - chrono::Duration::days(d)).to_string(), "spend": "1.25", "currency": "EUR"}));
        }
    }
    sandbox.put("/sandbox/insights/act_77", &json!({"rows": rows})).await;
    sandbox.put("/sandbox/insights/faults", &json!({"fail_next": [{"status": 400, "code": 17}]})).await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    eventually("the throttle is recorded", Duration::from_secs(20), || async {
        (count(&env, "SELECT count(*) AS n FROM ad_spend_syncs WHERE status = 'pending' AND next_at > now() + interval '10 minutes' AND error LIKE 'Meta answered 400: (#17)%'").await == 1)
            .then_some(())
    })
    .await;
    assert_eq!(count(&env, "SELECT count(*) AS n FROM ad_spend").await, 0);
    env.conn().await.batch_execute("UPDATE ad_spend_syncs SET next_at = now()").await.unwrap();
    eventually("the sync completes", Duration::from_secs(20), || async {
        (count(&env, "SELECT count(*) AS n FROM ad_spend_syncs WHERE status = 'done' AND rows_synced = 560").await == 1).then_some(())
    })
    .await;
    assert_eq!(count(&env, "SELECT count(*) AS n FROM ad_spend WHERE currency = 'EUR' AND source = 'api'").await, 560);
    assert_eq!(count(&env, "SELECT (sum(spend) * 100)::bigint AS n FROM ad_spend").await, 70_000);
    let requests: Value = reqwest::get(format!("{}/sandbox/insights/requests", sandbox.url)).await.unwrap().json().await.unwrap();
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 3, "throttled, page 1, page 2: {requests:?}");
    for r in requests {
        assert_eq!(r["token"], "EAAB-spend-token");
        assert_eq!(r["level"], "campaign");
        assert_eq!(r["time_increment"], "1");
        assert_eq!(r["since"], (today - chrono::Duration::days(7)).to_string());
        assert_eq!(r["until"], (today - chrono::Duration::days(1)).to_string());
    }
    assert_eq!(requests[2]["after"], "500");
    // Synced once today: more ticks fetch nothing more.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again: Value = reqwest::get(format!("{}/sandbox/insights/requests", sandbox.url)).await.unwrap().json().await.unwrap();
    assert_eq!(again.as_array().unwrap().len(), 3);
    service.stop().await;
}
