//! The daily report against real PostgreSQL: exactly the spec's text (both
//! languages) and `directions_data` for a day with two directions and
//! dialogs without one; generated once whatever the number of replicas;
//! regenerating changes and sends nothing; Telegram's 429 then 200 is one
//! message. Plus the ad-spend sync against the sandbox's insights.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use chrono::NaiveDate;
use diesel_async::SimpleAsyncConnection;
use pipeline_tests::{
    ReportsService, SandboxServer, TestEnv, count, eventually,
    report_day::{Fixture, TZ, seed_day},
    reports_settings,
};
use serde_json::{Value, json};
use std::time::Duration;
use storage::reports;

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
⏱️ Среднее время ответа: 2 мин

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
⏱️ Average response time: 2 min

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
    let account = reports::account(&mut conn, f.account.into())
        .await
        .unwrap()
        .unwrap();
    let (_, stored) = reports::generate(&mut conn, &account, day(), false)
        .await
        .unwrap();
    assert_eq!(stored, reports::Stored::Created);
    let r = reports::get(&mut conn, f.account.into(), day())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.report_text, RU);
    assert_eq!(
        r.directions_data,
        json!([
            {"direction_id": f.cosmetology.to_string(), "direction_name": "Косметология", "total_dialogs": 3, "new_dialogs": 2,
             "capi_enabled": true, "capi_has_data": true, "capi_distribution": {"interest": 3, "qualified": 1, "scheduled": 0, "purchase": 0},
             "interest_distribution": {"hot": 1, "warm": 1, "cold": 0}, "incoming_messages": 5, "outgoing_messages": 2,
             "avg_response_time_minutes": 1.5},
            {"direction_id": f.dentistry.to_string(), "direction_name": "Стоматология", "total_dialogs": 1, "new_dialogs": 1,
             "capi_enabled": false, "capi_has_data": false, "capi_distribution": {"interest": 0, "qualified": 0, "scheduled": 0, "purchase": 0},
             "interest_distribution": {"hot": 0, "warm": 0, "cold": 1}, "incoming_messages": 2, "outgoing_messages": 1,
             "avg_response_time_minutes": 2.0},
            {"direction_id": null, "direction_name": "Без направления", "total_dialogs": 1, "new_dialogs": 1,
             "capi_enabled": false, "capi_has_data": false, "capi_distribution": {"interest": 0, "qualified": 0, "scheduled": 0, "purchase": 0},
             "interest_distribution": {"hot": 0, "warm": 0, "cold": 0}, "incoming_messages": 1, "outgoing_messages": 0,
             "avg_response_time_minutes": null}
        ])
    );
    // Legacy fields: the CAPI directions' sum, used, the first CAPI direction.
    assert_eq!(
        r.capi_distribution,
        Some(json!({"interest": 3, "qualified": 1, "scheduled": 0, "purchase": 0}))
    );
    assert_eq!(r.capi_source_used, Some(true));
    assert_eq!(r.capi_direction_id, Some(f.cosmetology.into()));
    assert_eq!(
        r.stats,
        json!({"total_dialogs": 5, "new_dialogs": 4, "incoming_messages": 8, "outgoing_messages": 3})
    );
    // No Telegram chat: nothing to deliver.
    assert_eq!(
        r.telegram_status,
        domain::report::TelegramStatus::NotConfigured
    );

    // The same day in English, regenerated on demand: the row is updated.
    reports::set_account(
        &mut conn,
        &env.keys(),
        f.account.into(),
        &reports::AccountSettings {
            language: Some(domain::account::ReportLanguage::En),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let account = reports::account(&mut conn, f.account.into())
        .await
        .unwrap()
        .unwrap();
    let (_, stored) = reports::generate(&mut conn, &account, day(), true)
        .await
        .unwrap();
    assert_eq!(stored, reports::Stored::Updated);
    let r = reports::get(&mut conn, f.account.into(), day())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.report_text, EN);
    assert_eq!(r.directions_data[2]["direction_name"], "No direction");
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM conversation_reports").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_names_the_days_top_ads_by_cost_per_qualified_lead_when_spend_is_known() {
    let env = TestEnv::new().await;
    let f = seed_day(&env, day()).await;
    let mut conn = env.conn().await;
    // e4 (the day's CompleteRegistration) came from a1's ad 901; ad 902 spent
    // without a qualified lead; another day's spend and e6 (the next day)
    // do not count.
    conn.batch_execute(&format!(
        "UPDATE dialog_analysis SET ad_id = '901' WHERE lead_id = '{l}';
         UPDATE capi_events_log SET dialog_id = (SELECT id FROM dialog_analysis WHERE lead_id = '{l}')
           WHERE event_id IN ('e4', 'e6');
         UPDATE capi_events_log SET event_level = 2 WHERE event_id = 'e6';
         INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, campaign_name, ad_id, ad_name, spend, currency) VALUES
           ('{a}', '{d}', 'c1', 'Весна', '901', 'Видео 1', 12.50, 'USD'),
           ('{a}', '{d}', 'c1', 'Весна', '902', 'Видео 2', 8.00, 'USD'),
           ('{a}', '{d}'::date + 1, 'c1', 'Весна', '901', 'Видео 1', 99.00, 'USD');",
        l = f.leads[0],
        a = f.ad_account,
        d = day()
    ))
    .await
    .unwrap();
    let account = reports::account(&mut conn, f.account.into())
        .await
        .unwrap()
        .unwrap();
    let (report, _) = reports::generate(&mut conn, &account, day(), false)
        .await
        .unwrap();
    assert_eq!(report.top_ads.len(), 1, "{:?}", report.top_ads);
    let r = reports::get(&mut conn, f.account.into(), day())
        .await
        .unwrap()
        .unwrap();
    assert!(
        r.report_text.contains(
            "🏆 ЛУЧШИЕ ОБЪЯВЛЕНИЯ (цена квалифицированного лида)\n\
             1. Видео 1 (Весна): 12.50 USD · 1 квалиф. · расход 12.50 USD\n"
        ),
        "{}",
        r.report_text
    );
    assert_eq!(r.stats["top_ads"][0]["ad_id"], "901");
    // Without spend per ad the section is left out (the spec's report as before).
    assert!(!RU.contains("🏆"));
}

/// Waits (up to 20 s) until `sql` (a `count(*) AS n`) is 1.
async fn one_row(env: &TestEnv, what: &str, sql: &str) {
    eventually(what, Duration::from_secs(20), || async {
        (count(env, sql).await == 1).then_some(())
    })
    .await;
}

async fn telegram_sent(sandbox: &SandboxServer, chat: &str) -> Vec<Value> {
    let v: Value = reqwest::get(format!(
        "{}/sandbox/telegram/sent?chat_id={chat}",
        sandbox.url
    ))
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
        &env.keys(),
        f.account.into(),
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
    one_row(
        &env,
        "the report is delivered",
        "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'",
    )
    .await;
    // Several more ticks of both replicas change nothing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM conversation_reports").await,
        1
    );
    let sent = telegram_sent(&sandbox, "-100200300").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["bot_token"], "123456:TEST-bot-token-abcdef");
    let text = sent[0]["text"].as_str().unwrap();
    assert!(text.starts_with("📊 Отчёт по перепискам за"), "{text}");
    assert!(text.contains("• Всего диалогов: 5\n"), "{text}");

    // Regenerated on demand: same content, nothing changes, nothing is sent.
    let mut conn = env.conn().await;
    let before = reports::get(&mut conn, f.account.into(), yesterday)
        .await
        .unwrap()
        .unwrap();
    let account = reports::account(&mut conn, f.account.into())
        .await
        .unwrap()
        .unwrap();
    let (_, stored) = reports::generate(&mut conn, &account, yesterday, true)
        .await
        .unwrap();
    assert_eq!(stored, reports::Stored::Unchanged);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = reports::get(&mut conn, f.account.into(), yesterday)
        .await
        .unwrap()
        .unwrap();
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
    sandbox
        .put(
            "/sandbox/telegram/faults",
            &json!({"fail_next": [429], "retry_after": 1}),
        )
        .await;
    let (_, _) = seed_yesterday_with_telegram(&env, "42").await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    one_row(
        &env,
        "the report is delivered",
        "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'",
    )
    .await;
    assert_eq!(telegram_sent(&sandbox, "42").await.len(), 1);
    let metrics = reqwest::get(service.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"capi_telegram_messages_total{outcome="waited"} 1"#,
        r#"capi_telegram_messages_total{outcome="sent"} 1"#,
        "capi_reports_generated_total 1",
        "capi_direction_last_event_age_seconds{direction_id=",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    assert!(
        !metrics.contains("Косметология") && !metrics.contains("direction=\""),
        "no tenant's direction name on /metrics: {metrics}"
    );
    // One claim: the 429 was waited out inside it, not retried as a new attempt.
    assert_eq!(
        count(
            &env,
            "SELECT telegram_attempts::bigint AS n FROM conversation_reports"
        )
        .await,
        1
    );
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_telegram_is_retried_and_a_rejected_token_gives_up() {
    let env = TestEnv::new().await;
    let sandbox = SandboxServer::start().await;
    sandbox
        .put("/sandbox/telegram/faults", &json!({"fail_next": [500]}))
        .await;
    let (f, _) = seed_yesterday_with_telegram(&env, "77").await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    one_row(&env, "the failure is recorded", "SELECT count(*) AS n FROM conversation_reports WHERE telegram_error LIKE 'Telegram answered 500%' AND telegram_status = 'pending'").await;
    // Back-off is 30 s: bring the retry forward instead of waiting.
    env.conn()
        .await
        .batch_execute("UPDATE conversation_reports SET telegram_next_at = now()")
        .await
        .unwrap();
    one_row(
        &env,
        "the retry delivers",
        "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'",
    )
    .await;
    assert_eq!(telegram_sent(&sandbox, "77").await.len(), 1);
    service.stop().await;

    // A token Telegram refuses (401): failed for good, with the reason.
    let env = TestEnv::new().await;
    let (g, _) = seed_yesterday_with_telegram(&env, "78").await;
    let _ = f;
    reports::set_account(
        &mut env.conn().await,
        &env.keys(),
        g.account.into(),
        &reports::AccountSettings {
            telegram_bot_token: Some(Some("not-a-token")),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    one_row(&env, "delivery gives up", "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'failed' AND telegram_error = 'Telegram answered 401: Unauthorized'").await;
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
        .batch_execute(&format!(
            "UPDATE ad_accounts SET access_token = '{}' WHERE id = '{}'",
            env.keys()
                .seal(storage::secrets::AD_ACCESS_TOKEN, "EAAB-spend-token")
                .unwrap(),
            f.ad_account
        ))
        .await
        .unwrap();
    // 7 days × 80 ads (in 8 campaigns) = 560 rows: two pages of 500.
    let today = reports::local_today(&mut env.conn().await, "UTC")
        .await
        .unwrap();
    let mut rows = Vec::new();
    for d in 1..=7 {
        for a in 0..80 {
            let c = a % 8;
            rows.push(json!({"campaign_id": format!("c{c}"), "campaign_name": format!("Campaign {c}"),
                             "adset_id": format!("s{c}"), "adset_name": format!("Set {c}"),
                             "ad_id": format!("{}", 9000 + a), "ad_name": format!("Ad {a}"),
                             "date": (today - chrono::Duration::days(d)).to_string(), "spend": "1.25", "currency": "EUR"}));
        }
    }
    // What a campaign-level sync of an earlier release wrote for yesterday:
    // replaced by yesterday's ad rows, not added to them.
    env.conn()
        .await
        .batch_execute(&format!(
            "INSERT INTO ad_spend (ad_account_id, spend_date, campaign_id, spend, currency, source)
             VALUES ('{}', '{}', 'c0', 99, 'EUR', 'api')",
            f.ad_account,
            today - chrono::Duration::days(1)
        ))
        .await
        .unwrap();
    sandbox
        .put("/sandbox/insights/act_77", &json!({"rows": rows}))
        .await;
    sandbox
        .put(
            "/sandbox/insights/faults",
            &json!({"fail_next": [{"status": 400, "code": 17}]}),
        )
        .await;
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    one_row(&env, "the throttle is recorded", "SELECT count(*) AS n FROM ad_spend_syncs WHERE status = 'pending' AND next_at > now() + interval '10 minutes' AND error LIKE 'Meta answered 400: (#17)%'").await;
    assert_eq!(count(&env, "SELECT count(*) AS n FROM ad_spend").await, 1);
    env.conn()
        .await
        .batch_execute("UPDATE ad_spend_syncs SET next_at = now()")
        .await
        .unwrap();
    one_row(
        &env,
        "the sync completes",
        "SELECT count(*) AS n FROM ad_spend_syncs WHERE status = 'done' AND rows_synced = 560",
    )
    .await;
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM ad_spend WHERE currency = 'EUR' AND source = 'api'"
        )
        .await,
        560
    );
    assert_eq!(
        count(&env, "SELECT (sum(spend) * 100)::bigint AS n FROM ad_spend").await,
        70_000
    );
    assert_eq!(
        count(
            &env,
            "SELECT count(*) AS n FROM ad_spend WHERE ad_id = '9013' AND ad_name = 'Ad 13' \
             AND adset_id = 's5' AND adset_name = 'Set 5' AND campaign_id = 'c5' AND campaign_name = 'Campaign 5'"
        )
        .await,
        7
    );
    let requests: Value = reqwest::get(format!("{}/sandbox/insights/requests", sandbox.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 3, "throttled, page 1, page 2: {requests:?}");
    for r in requests {
        assert_eq!(r["token"], "EAAB-spend-token");
        assert_eq!(r["level"], "ad");
        assert_eq!(
            r["fields"],
            "campaign_id,campaign_name,adset_id,adset_name,ad_id,ad_name,spend,account_currency,date_start"
        );
        assert_eq!(r["time_increment"], "1");
        assert_eq!(r["since"], (today - chrono::Duration::days(7)).to_string());
        assert_eq!(r["until"], (today - chrono::Duration::days(1)).to_string());
    }
    assert_eq!(requests[2]["after"], "500");
    // Synced once today: more ticks fetch nothing more.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let again: Value = reqwest::get(format!("{}/sandbox/insights/requests", sandbox.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again.as_array().unwrap().len(), 3);
    service.stop().await;
}

/// Adds `n` more directions to the account, each with an instance and one
/// dialog that wrote at noon (local) on `day`: a report of n+3 sections.
async fn add_directions(env: &TestEnv, account: uuid::Uuid, day: NaiveDate, n: usize) {
    let mut sql = String::new();
    for i in 0..n {
        let (dir, dialog) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let inst = format!("extra-{i}-{account}");
        let at = format!("(('{day}'::date) + time '12:00') AT TIME ZONE '{TZ}'");
        sql.push_str(&format!(
            "INSERT INTO account_directions (id, user_account_id, name) VALUES ('{dir}', '{account}', 'Направление номер {i:03}');
             INSERT INTO whatsapp_phone_numbers (instance_name, direction_id, webhook_secret, user_account_id)
               VALUES ('{inst}', '{dir}', 's', '{account}');
             INSERT INTO dialog_analysis (id, instance_name, contact_key, first_message, last_message)
               VALUES ('{dialog}', '{inst}', 'x', {at}, {at});
             INSERT INTO dialog_messages (dialog_id, instance_name, message_id, from_me, author, sent_at)
               VALUES ('{dialog}', '{inst}', 'm', false, 'customer', {at});"
        ));
    }
    env.conn()
        .await
        .batch_execute(&sql)
        .await
        .expect("more directions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_report_goes_in_parts_and_a_retry_resumes_after_the_last_part_sent() {
    let env = TestEnv::new().await;
    let sandbox = SandboxServer::start().await;
    // A: 60 more directions, sent whole: in order, each part within the limit.
    let (a, yesterday) = seed_yesterday_with_telegram(&env, "1001").await;
    add_directions(&env, a.account, yesterday, 60).await;
    // B: the same, but a crash had happened after its first part went out.
    let (b, _) = seed_yesterday_with_telegram(&env, "1002").await;
    add_directions(&env, b.account, yesterday, 60).await;
    let mut conn = env.conn().await;
    let account = reports::account(&mut conn, b.account.into())
        .await
        .unwrap()
        .unwrap();
    reports::generate(&mut conn, &account, yesterday, false)
        .await
        .unwrap();
    conn.batch_execute(&format!(
        "UPDATE conversation_reports SET telegram_parts_sent = 1 WHERE user_account_id = '{}'",
        b.account
    ))
    .await
    .unwrap();
    let service = ReportsService::start(&env, reports_settings(&sandbox.url)).await;
    eventually("both delivered", Duration::from_secs(20), || async {
        (count(
            &env,
            "SELECT count(*) AS n FROM conversation_reports WHERE telegram_status = 'sent'",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    let text_of = |r: reports::StoredReport| r.report_text;
    let whole_a = text_of(
        reports::get(&mut conn, a.account.into(), yesterday)
            .await
            .unwrap()
            .unwrap(),
    );
    let parts_a: Vec<String> = telegram_sent(&sandbox, "1001")
        .await
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        whole_a.encode_utf16().count() > 4096,
        "the report is long: {}",
        whole_a.len()
    );
    assert_eq!(parts_a.len(), 2);
    assert!(parts_a.iter().all(|p| p.encode_utf16().count() <= 4096));
    assert!(
        parts_a[1].starts_with("📌 ")
            || parts_a[1].starts_with('\n')
            || parts_a[1].starts_with("• "),
        "split at a line: {:?}",
        &parts_a[1][..40]
    );
    assert_eq!(parts_a.concat(), whole_a);
    // B: only the second part was sent again, never the first.
    let whole_b = text_of(
        reports::get(&mut conn, b.account.into(), yesterday)
            .await
            .unwrap()
            .unwrap(),
    );
    let sent_b = telegram_sent(&sandbox, "1002").await;
    assert_eq!(sent_b.len(), 1, "{sent_b:?}");
    let expected = domain::report::split_message(&whole_b, domain::report::TELEGRAM_LIMIT);
    assert_eq!(sent_b[0]["text"].as_str().unwrap(), expected[1]);
    assert_eq!(count(&env, &format!("SELECT telegram_parts_sent::bigint AS n FROM conversation_reports WHERE user_account_id = '{}'", b.account)).await, 2);
    service.stop().await;
}
