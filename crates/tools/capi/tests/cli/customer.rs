//! `capi customer forget` against real PostgreSQL: afterwards no text or
//! JSON column of any table holds the person's phone (in any formatting),
//! its SHA-256, their LID or a message text of theirs; the day's report is
//! byte-identical; their queued event is cancelled and audited `erased`;
//! another customer is untouched; a second run changes nothing.

use super::*;
use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
use storage::conversations::{self, NewMessage};

const PHONE: &str = "5511987654321";
const LID: &str = "66417458159826@lid";
const OTHER: &str = "5521912345678";

#[derive(diesel::QueryableByName)]
struct Column {
    #[diesel(sql_type = diesel::sql_types::Text)]
    table_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    column_name: String,
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Every `table.column` (text, varchar or jsonb) holding `needle`; digits
/// are also looked for with every non-digit removed (a phone written with
/// spaces, dashes and brackets).
async fn holders(conn: &mut diesel_async::AsyncPgConnection, needle: &str) -> Vec<String> {
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb') \
           AND table_name <> '__diesel_schema_migrations'",
    )
    .load(conn)
    .await
    .unwrap();
    assert!(columns.len() > 40, "every text column: {}", columns.len());
    let digits_only = needle.chars().all(|c| c.is_ascii_digit());
    let mut found = Vec::new();
    for c in columns {
        let value = if digits_only {
            format!(
                "regexp_replace(\"{}\"::text, '[^0-9]', '', 'g')",
                c.column_name
            )
        } else {
            format!("\"{}\"::text", c.column_name)
        };
        let n: N = diesel::sql_query(format!(
            "SELECT count(*) AS n FROM \"{}\" WHERE strpos({value}, $1) > 0",
            c.table_name
        ))
        .bind::<diesel::sql_types::Text, _>(needle)
        .get_result(conn)
        .await
        .unwrap();
        if n.n > 0 {
            found.push(format!("{}.{}", c.table_name, c.column_name));
        }
    }
    found
}

async fn message(
    conn: &mut diesel_async::AsyncPgConnection,
    instance: &str,
    id: &str,
    key: &str,
    phone: Option<&str>,
    lid: Option<&str>,
    text: &str,
) -> domain::ids::DialogId {
    let clid = if key == OTHER {
        "ARclick-ana"
    } else {
        "ARclick-maria"
    };
    let ad_context = json!({"externalAdReply": {"ctwaClid": clid}});
    match conversations::record_message(
        conn,
        &NewMessage {
            contact_name: Some(if key == OTHER {
                "Ana Lima"
            } else {
                "Maria Souza"
            }),
            sent_at: chrono::Utc::now() - chrono::Duration::hours(2),
            ctwa_clid: Some(clid),
            ad_id: Some("120239177205810192"),
            from_ad: true,
            ad_context: Some(&ad_context),
            ..pipeline_tests::text_message(instance, id, phone, lid, text)
        },
        |_, _| None,
    )
    .await
    .unwrap()
    {
        conversations::Recorded::Stored { dialog_id, .. } => dialog_id,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forget_leaves_nothing_of_the_person_and_the_report_unchanged() {
    let env = pipeline_tests::TestEnv::new().await;
    let s = pipeline_tests::seed(&env, &pipeline_tests::SeedOptions::default()).await;
    let mut conn = env.conn().await;
    // Maria: first under her LID only, then under her phone (the LID known);
    // Ana: another customer of the same number.
    let by_lid = message(
        &mut conn,
        &s.instance,
        "L1",
        LID,
        None,
        Some(LID),
        "Oi, vi o anúncio da clínica",
    )
    .await;
    let maria = message(
        &mut conn,
        &s.instance,
        "M1",
        PHONE,
        Some(PHONE),
        Some(LID),
        "Quero agendar uma limpeza amanhã",
    )
    .await;
    // Maria again, LID only, on the account's second number: a dialog of its own.
    let second = format!("second-{}", s.instance);
    conn.batch_execute(&format!(
        "INSERT INTO whatsapp_phone_numbers (instance_name, direction_id, webhook_secret, user_account_id)
         VALUES ('{second}', '{}', 'x', '{}')",
        s.direction_id, s.user_account_id
    ))
    .await
    .unwrap();
    let lid_only = message(
        &mut conn,
        &second,
        "L2",
        LID,
        None,
        Some(LID),
        "Vocês atendem sábado?",
    )
    .await;
    assert_ne!(lid_only, maria);
    let ana = message(
        &mut conn,
        &s.instance,
        "A1",
        OTHER,
        Some(OTHER),
        None,
        "Qual o preço do clareamento?",
    )
    .await;
    let hashed = domain::normalize::sha256_hex(PHONE);
    let (u, d) = (s.user_account_id, s.direction_id);
    conn.batch_execute(&format!(
        "INSERT INTO bot_replies (dialog_id, seq, status, reply_text) VALUES ('{maria}', 1, 'sent', 'Olá Maria Souza, temos horário'),
                                                                        ('{ana}', 1, 'sent', 'Olá Ana, o clareamento custa');
         INSERT INTO qualification_runs (dialog_id, direction_id, through_message_id, model, status, result, llm_calls, prompt_tokens, completion_tokens)
           VALUES ('{maria}', '{d}', 1, 'm', 'ok', '{{\"reason\": \"Quero agendar uma limpeza amanhã\"}}', 1, 0, 0);
         UPDATE dialog_analysis SET qualification_reason = 'asked: Quero agendar uma limpeza amanhã', interest_level = 'hot' WHERE id = '{maria}';
         INSERT INTO capi_events_log (dialog_id, direction_id, user_account_id, event_level, event_name, event_id, status, request, response, created_at)
           VALUES ('{maria}', '{d}', '{u}', 1, 'LeadSubmitted', 'ev-maria-1', 'success',
                   '{{\"data\": [{{\"user_data\": {{\"ph\": [\"{hashed}\"], \"ctwa_clid\": \"ARclick-maria\"}}}}]}}', '{{\"events_received\": 1}}', now() - interval '1 hour'),
                  ('{ana}', '{d}', '{u}', 1, 'LeadSubmitted', 'ev-ana-1', 'success',
                   '{{\"data\": [{{\"user_data\": {{\"ph\": [\"{other_hash}\"]}}}}]}}', NULL, now() - interval '1 hour');
         INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, status)
           VALUES ('{maria}', 2, 'ev-maria-2', now(), 'pending'), ('{ana}', 2, 'ev-ana-2', now(), 'pending');
         INSERT INTO crm_connections (id, user_account_id, crm_type, base_url, access_token)
           VALUES ('{conn_id}', '{u}', 'amocrm', 'sealed', 'sealed');
         INSERT INTO crm_changes (connection_id, entity, action, entity_id, change_key, change)
           VALUES ('{conn_id}', 'contact', 'update', '7', 'c7', '{{\"contacts\": {{\"update\": [{{\"name\": \"Maria Souza\", \"phone\": \"+55 (11) 98765-4321\"}}]}}}}'),
                  ('{conn_id}', 'contact', 'update', '8', 'c8', '{{\"contacts\": {{\"update\": [{{\"name\": \"Ana\", \"phone\": \"+55 21 91234-5678\"}}]}}}}');",
        other_hash = domain::normalize::sha256_hex(OTHER),
        conn_id = uuid::Uuid::new_v4(),
    ))
    .await
    .unwrap();
    let account = storage::reports::account(&mut conn, u)
        .await
        .unwrap()
        .unwrap();
    // The report of the messages' local day (they were written 2 hours ago:
    // just after midnight that is yesterday).
    #[derive(diesel::QueryableByName)]
    struct Day {
        #[diesel(sql_type = diesel::sql_types::Date)]
        day: chrono::NaiveDate,
    }
    let today =
        diesel::sql_query("SELECT ((now() - interval '2 hours') AT TIME ZONE $1)::date AS day")
            .bind::<diesel::sql_types::Text, _>(&account.timezone)
            .get_result::<Day>(&mut conn)
            .await
            .unwrap()
            .day;
    let report_before = domain::report::render(
        &storage::reports::compute(&mut conn, &account, today)
            .await
            .unwrap(),
    );
    // Maria's LID dialog took her phone when it came: with the second
    // number's and Ana's, three dialogs.
    assert_eq!(by_lid, maria);
    assert!(
        report_before.contains("Всего диалогов: 3"),
        "{report_before}"
    );

    // Maria's data is everywhere before.
    for needle in [
        PHONE,
        hashed.as_str(),
        LID,
        "Quero agendar uma limpeza",
        "Oi, vi o anúncio",
    ] {
        assert!(
            !holders(&mut conn, needle).await.is_empty(),
            "{needle} seeded"
        );
    }
    // The access request first: exactly what is held about her.
    let doc = capi_json(&env.db_url, &["customer", "export", "--phone", PHONE]);
    let texts: Vec<&str> = doc["dialogs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["messages"].as_array().unwrap())
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        [
            "Oi, vi o anúncio da clínica",
            "Quero agendar uma limpeza amanhã",
            "Vocês atendem sábado?"
        ]
    );
    let first_dialog = &doc["dialogs"][0];
    assert_eq!(
        (
            &first_dialog["phone"],
            &first_dialog["whatsapp_id"],
            &first_dialog["name"]
        ),
        (&json!(PHONE), &json!(LID), &json!("Maria Souza"))
    );
    assert_eq!(
        first_dialog["bot_replies"][0]["text"],
        "Olá Maria Souza, temos horário"
    );
    assert_eq!(first_dialog["events"][0]["event_id"], "ev-maria-1");
    assert_eq!(doc["crm_changes"].as_array().unwrap().len(), 1);
    assert_eq!(doc["crm_changes"][0]["entity_id"], "7");
    assert!(
        !doc.to_string().contains("Ana"),
        "nobody else's data: {doc}"
    );
    assert_eq!(doc["dialogs"].as_array().unwrap().len(), 2);
    let first = capi_json(
        &env.db_url,
        &["customer", "forget", "--phone", "+55 (11) 98765-4321"],
    );
    assert_eq!(
        first["erased"],
        json!({"dialogs": 2, "leads": 2, "messages": 3, "bot_replies": 1, "qualification_runs": 1,
               "audit_rows": 1, "events_cancelled": 1, "crm_changes": 1}),
        "both dialogs (by phone, and by the LID it carried)"
    );
    for needle in [
        PHONE,
        hashed.as_str(),
        LID,
        "66417458159826",
        "Quero agendar uma limpeza",
        "Oi, vi o anúncio",
        "Vocês atendem sábado",
        "Maria Souza",
        "ARclick-maria",
    ] {
        assert_eq!(
            holders(&mut conn, needle).await,
            Vec::<String>::new(),
            "{needle} left"
        );
    }
    // Ana is untouched.
    for needle in [
        OTHER,
        "Qual o preço do clareamento",
        "Olá Ana",
        "+55 21 91234-5678",
    ] {
        assert!(
            !holders(&mut conn, needle).await.is_empty(),
            "{needle} kept"
        );
    }
    // The report of the day is the same, byte for byte.
    let report_after = domain::report::render(
        &storage::reports::compute(&mut conn, &account, today)
            .await
            .unwrap(),
    );
    assert_eq!(report_after, report_before);
    // Her queued event is closed and audited `erased`; Ana's still waits.
    let states: Vec<(String, String)> = {
        #[derive(diesel::QueryableByName)]
        struct S {
            #[diesel(sql_type = diesel::sql_types::Text)]
            event_id: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            status: String,
        }
        diesel::sql_query("SELECT event_id, status FROM capi_deliveries ORDER BY event_id")
            .load::<S>(&mut conn)
            .await
            .unwrap()
            .into_iter()
            .map(|s| (s.event_id, s.status))
            .collect()
    };
    assert_eq!(
        states,
        [
            ("ev-ana-2".to_owned(), "pending".to_owned()),
            ("ev-maria-2".to_owned(), "skipped".to_owned())
        ]
    );
    let audited: N = diesel::sql_query(
        "SELECT count(*) AS n FROM capi_events_log WHERE event_id = 'ev-maria-2' AND status = 'skipped' AND reason = 'erased'",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(audited.n, 1);
    // A second run: nothing left to erase.
    let second = capi_json(&env.db_url, &["customer", "forget", "--phone", PHONE]);
    assert_eq!(
        second["erased"],
        json!({"dialogs": 0, "leads": 0, "messages": 0, "bot_replies": 0, "qualification_runs": 0,
               "audit_rows": 0, "events_cancelled": 0, "crm_changes": 0})
    );
    // One audit entry, for the first run only: who asked and the counts.
    #[derive(diesel::QueryableByName)]
    struct Entry {
        #[diesel(sql_type = diesel::sql_types::Text)]
        requested_by: String,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        erased: Value,
    }
    let entries: Vec<Entry> =
        diesel::sql_query("SELECT requested_by, erased FROM erasures ORDER BY id")
            .load(&mut conn)
            .await
            .unwrap();
    assert_eq!(entries.len(), 1);
    assert!(entries[0].requested_by.starts_with("capi customer forget"));
    assert_eq!(entries[0].erased, first["erased"]);
    // A phone that is not one is refused before anything is read.
    let (code, _, err) = capi_on(
        &env.db_url,
        &["customer", "forget", "--phone", "maria@example.com"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--phone"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_windows_are_whole_days_within_bounds_and_the_sweep_runs_by_hand() {
    let env = pipeline_tests::TestEnv::new().await;
    let db = env.db_url.as_str();
    let s = pipeline_tests::seed(&env, &pipeline_tests::SeedOptions::default()).await;
    let account = s.user_account_id.to_string();
    for (flag, value, error) in [
        (
            "--retain-messages",
            "36h",
            "'36h' is not a whole number of days (e.g. 90d)",
        ),
        ("--retain-messages", "3d", "3 days is outside 7d..3650d"),
        ("--retain-crm-bodies", "0d", "0 days is outside 1d..3650d"),
        (
            "--retain-crm-bodies",
            "forever",
            "'forever' does not start with a number",
        ),
    ] {
        let (code, _, err) = capi_on(db, &["account", "set", &account, flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains(error), "{err}");
    }
    let listed = |db: &str| {
        let out = capi_ok(db, &["account", "list"]);
        serde_json::from_str::<Value>(out.lines().next().unwrap()).unwrap()
    };
    let row = listed(db);
    assert_eq!(
        (&row["retain_messages_days"], &row["retain_crm_bodies_days"]),
        (&json!(90), &json!(30)),
        "the defaults: {row}"
    );
    capi_ok(
        db,
        &[
            "account",
            "set",
            &account,
            "--retain-messages",
            "45d",
            "--retain-crm-bodies",
            "14d",
        ],
    );
    let row = listed(db);
    assert_eq!(
        (&row["retain_messages_days"], &row["retain_crm_bodies_days"]),
        (&json!(45), &json!(14))
    );
    let (code, _, err) = capi_on(
        db,
        &[
            "account",
            "set",
            "00000000-0000-4000-8000-000000000000",
            "--retain-messages",
            "45d",
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("no user account"), "{err}");

    // Texts of 46 and 44 days: the sweep by hand blanks the older one only.
    let mut conn = env.conn().await;
    for (id, days) in [("OLD", 46), ("NEW", 44)] {
        conversations::record_message(
            &mut conn,
            &NewMessage {
                sent_at: chrono::Utc::now() - chrono::Duration::days(days),
                ..pipeline_tests::text_message(&s.instance, id, Some(PHONE), None, "texto")
            },
            |_, _| None,
        )
        .await
        .unwrap();
    }
    // They reached us when written (the window counts from arrival).
    diesel_async::SimpleAsyncConnection::batch_execute(
        &mut conn,
        "UPDATE dialog_messages SET received_at = sent_at WHERE message_id IN ('OLD', 'NEW')",
    )
    .await
    .unwrap();
    let out = capi_json(db, &["customer", "sweep", "--batch", "1"]);
    assert_eq!(
        out["blanked"],
        json!({"messages": 1, "bot_replies": 0, "crm_bodies": 0}),
        "{out}"
    );
    let again = capi_json(db, &["customer", "sweep"]);
    assert_eq!(again["blanked"]["messages"], 0, "{again}");
    assert_eq!(
        pipeline_tests::count(
            &env,
            "SELECT count(*) AS n FROM dialog_messages WHERE text IS NULL AND message_id = 'OLD'"
        )
        .await
            + pipeline_tests::count(
                &env,
                "SELECT count(*) AS n FROM dialog_messages WHERE text IS NOT NULL AND message_id = 'NEW'"
            )
            .await,
        2
    );
}
