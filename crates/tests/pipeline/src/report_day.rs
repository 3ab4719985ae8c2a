//! A day of one account for the report and API tests, written straight
//! into the database with known timestamps in the account's zone.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use crate::TestEnv;
use chrono::NaiveDate;
use diesel_async::SimpleAsyncConnection;
use uuid::Uuid;

pub struct Fixture {
    pub account: Uuid,
    pub cosmetology: Uuid,
    pub dentistry: Uuid,
    pub ad_account: Uuid,
    pub leads: Vec<Uuid>,
}

pub const TZ: &str = "Asia/Almaty";

/// One account (zone Asia/Almaty, UTC+5) and its local day `day`.
/// Косметология (CAPI on): a1, a2 new that day, a3 begun two days before,
/// a4 only the day before, a5 only just after midnight; replies 1 (a1) and
/// 2 (a3) minutes after the customer; three Lead events (one logged twice),
/// one Registration, a failed event and an event the next day.
/// Стоматология (CAPI off): b1, two customer messages and a reply 2 minutes
/// after the first. An instance whose direction is gone: c1 ("No direction").
pub async fn seed_day(env: &TestEnv, day: NaiveDate) -> Fixture {
    let account = Uuid::new_v4();
    let (cosmetology, dentistry, ad_account) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let at = |offset: i32, hm: &str| {
        format!("(('{day}'::date + {offset}) + time '{hm}') AT TIME ZONE '{TZ}'")
    };
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
    // (key, instance, interest, messages: (day offset, local time, from_me))
    type Msg = (i32, &'static str, bool);
    let dialogs: Vec<(&str, &str, Option<&str>, Vec<Msg>)> = vec![
        (
            "a1",
            "a",
            Some("hot"),
            vec![(0, "10:00", false), (0, "10:01", true), (0, "10:05", false)],
        ),
        (
            "a2",
            "a",
            None,
            vec![(0, "20:00", false), (0, "20:02", false)],
        ),
        (
            "a3",
            "a",
            Some("warm"),
            vec![
                (-2, "09:00", false),
                (0, "11:00", false),
                (0, "11:02", true),
            ],
        ),
        ("a4", "a", Some("cold"), vec![(-1, "23:59", false)]),
        ("a5", "a", None, vec![(1, "00:30", false)]),
        (
            "b1",
            "b",
            Some("cold"),
            vec![(0, "00:00", false), (0, "00:01", false), (0, "00:02", true)],
        ),
        ("c1", "c", None, vec![(0, "23:59", false)]),
    ];
    let mut leads = Vec::new();
    for (key, inst, interest, messages) in &dialogs {
        let (dialog, lead) = (Uuid::new_v4(), Uuid::new_v4());
        leads.push(lead);
        let instance = format!("inst-{inst}-{account}");
        let first = messages.iter().map(|m| at(m.0, m.1)).next().unwrap();
        let last = messages.iter().map(|m| at(m.0, m.1)).next_back().unwrap();
        let interest = interest.map_or("NULL".to_owned(), |i| format!("'{i}'"));
        sql.push_str(&format!(
            "INSERT INTO leads (id, instance_name, contact_key, name) VALUES ('{lead}', '{instance}', '{key}', 'Customer {key}');
             INSERT INTO dialog_analysis (id, instance_name, contact_key, contact_name, lead_id, first_message, last_message, interest_level)
               VALUES ('{dialog}', '{instance}', '{key}', 'Customer {key}', '{lead}', {first}, {last}, {interest});"
        ));
        for (i, (offset, hm, from_me)) in messages.iter().enumerate() {
            sql.push_str(&format!(
                "INSERT INTO dialog_messages (dialog_id, instance_name, message_id, from_me, author, text, sent_at)
                   VALUES ('{dialog}', '{instance}', '{key}-{i}', {from_me}, '{}', 'hi', {});",
                if *from_me { "operator" } else { "customer" },
                at(*offset, hm),
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
    env.conn()
        .await
        .batch_execute(&sql)
        .await
        .expect("seed the day");
    Fixture {
        account,
        cosmetology,
        dentistry,
        ad_account,
        leads,
    }
}
