//! One person, one dialog: a customer WhatsApp addressed by LID and by phone
//! ends up in one dialog, keyed by the phone, once a message names both —
//! whichever came first, and when messages arrive together.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use pipeline_tests::{
    Pipeline, PipelineOptions, SeedOptions, TestEnv, count, customer_message, post_ok, query_json,
    seed, text_message,
};
use serde_json::{Value, json};
use storage::conversations::{self, NewMessage, Recorded};

const PHONE: &str = "5511987654321";
const LID: &str = "66417458159826@lid";

/// An Evolution `messages.upsert` from `jid`, with `remoteJidAlt` when given.
fn evolution(
    instance: &str,
    id: &str,
    jid: &str,
    alt: Option<&str>,
    clid: Option<&str>,
    ts: i64,
) -> Value {
    let mut body = customer_message(instance, id, PHONE, &format!("text of {id}"), clid, ts);
    body["data"]["key"]["remoteJid"] = json!(jid);
    if let Some(alt) = alt {
        body["data"]["key"]["remoteJidAlt"] = json!(alt);
    }
    body
}

/// The instance's dialogs with what a merge must get right, oldest first.
async fn dialogs(env: &TestEnv, instance: &str) -> Value {
    query_json(
        env,
        &format!(
            "SELECT jsonb_agg(jsonb_build_object('id', d.id, 'key', d.contact_key, 'phone', d.contact_phone, \
               'lid', d.contact_lid, 'incoming', d.incoming_count, 'clid', d.ctwa_clid, \
               'messages', (SELECT count(*) FROM dialog_messages m WHERE m.dialog_id = d.id), \
               'lead_key', l.contact_key, 'lead_clid', l.ctwa_clid) ORDER BY d.created_at) AS v \
             FROM dialog_analysis d LEFT JOIN leads l ON l.id = d.lead_id WHERE d.instance_name = '{instance}'"
        ),
    )
    .await
}

async fn record(conn: &mut diesel_async::AsyncPgConnection, m: &NewMessage<'_>) -> Recorded {
    conn.transaction(async |c| conversations::record_message(c, m, |_, _| None).await)
        .await
        .expect("recorded")
}

fn dialog_of(r: Recorded) -> String {
    match r {
        Recorded::Stored { dialog_id, .. } => dialog_id.to_string(),
        Recorded::Duplicate => panic!("a repeat"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_begun_under_the_lid_continues_under_the_phone_in_one_dialog() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let p = Pipeline::start(&env, &PipelineOptions::new("http://127.0.0.1:9")).await;
    let t0 = 1_773_449_000;
    // Evolution ≤ 2.2: the LID alone, from the ad.
    post_ok(
        &p,
        &s,
        &evolution(&s.instance, "L1", LID, None, Some("ARclick-first"), t0),
    )
    .await;
    let before = dialogs(&env, &s.instance).await;
    assert_eq!(before[0]["key"], LID, "{before}");
    // 2.3: the LID with the phone beside it; then the phone alone.
    let phone_jid = format!("{PHONE}@s.whatsapp.net");
    post_ok(
        &p,
        &s,
        &evolution(&s.instance, "B1", LID, Some(&phone_jid), None, t0 + 60),
    )
    .await;
    post_ok(
        &p,
        &s,
        &evolution(&s.instance, "P1", &phone_jid, None, None, t0 + 120),
    )
    .await;
    assert_eq!(
        dialogs(&env, &s.instance).await,
        json!([{"id": before[0]["id"], "key": PHONE, "phone": PHONE, "lid": LID, "incoming": 3,
                "clid": "ARclick-first", "messages": 3, "lead_key": PHONE, "lead_clid": "ARclick-first"}])
    );
    assert_eq!(count(&env, "SELECT count(*) AS n FROM leads").await, 1);
    p.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dialogs_of_one_person_merge_keeping_the_first_click_and_each_level_once() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let mut conn = env.conn().await;
    let ago = |h: i64| chrono::Utc::now() - chrono::Duration::hours(h);
    let ad = json!({"externalAdReply": {"sourceType": "ad"}});
    // The LID's conversation began first, from an ad; the phone's an hour
    // later, from another ad: two dialogs, nothing tells they are one person.
    let by_lid = dialog_of(
        record(
            &mut conn,
            &NewMessage {
                sent_at: ago(3),
                ctwa_clid: Some("ARclick-first"),
                ad_id: Some("120239177205810192"),
                from_ad: true,
                ad_context: Some(&ad),
                ..text_message(&s.instance, "L1", None, Some(LID), "Oi, vi o anúncio")
            },
        )
        .await,
    );
    let by_phone = dialog_of(
        record(
            &mut conn,
            &NewMessage {
                sent_at: ago(2),
                ctwa_clid: Some("ARclick-second"),
                from_ad: true,
                ..text_message(&s.instance, "P1", Some(PHONE), None, "Quanto custa?")
            },
        )
        .await,
    );
    assert_ne!(by_lid, by_phone);
    // Levels decided on each: the LID's Lead still waits (its message is on
    // the bus) and its CompleteRegistration too; the phone's Lead was sent,
    // and the model thinks the phone's conversation further on.
    conn.batch_execute(&format!(
        "INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, status) VALUES
           ('{by_lid}', 1, 'ev-lid-lead', now(), 'pending'),
           ('{by_lid}', 2, 'ev-lid-qualified', now(), 'pending');
         INSERT INTO capi_deliveries (dialog_id, event_level, event_id, event_time, status, attempts, finished_at)
           VALUES ('{by_phone}', 1, 'ev-phone-lead', now(), 'success', 1, now());
         INSERT INTO capi_events_log (dialog_id, event_level, event_name, event_id, status)
           VALUES ('{by_phone}', 1, 'Lead', 'ev-phone-lead', 'success');
         UPDATE dialog_analysis SET capi_interest_sent = true, capi_interest_event_id = 'ev-phone-lead',
           capi_interest_sent_at = now(), funnel_stage = 'qualified', interest_level = 'hot',
           llm_calls = 2 WHERE id = '{by_phone}';
         UPDATE dialog_analysis SET funnel_stage = 'interested', interest_level = 'warm', llm_calls = 1
           WHERE id = '{by_lid}';
         INSERT INTO bot_replies (dialog_id, seq, status) VALUES ('{by_lid}', 1, 'sent'), ('{by_phone}', 1, 'sent');"
    ))
    .await
    .unwrap();

    // Evolution 2.3 names both: one dialog, the earlier conversation's.
    let both = record(
        &mut conn,
        &NewMessage {
            sent_at: ago(1),
            ..text_message(
                &s.instance,
                "B1",
                Some(PHONE),
                Some(LID),
                "Pode ser amanhã?",
            )
        },
    )
    .await;
    assert_eq!(
        both,
        Recorded::Stored {
            dialog_id: by_lid.parse().unwrap(),
            buffer_seq: Some(2)
        }
    );
    assert_eq!(
        dialogs(&env, &s.instance).await,
        json!([{"id": by_lid, "key": PHONE, "phone": PHONE, "lid": LID, "incoming": 3,
                "clid": "ARclick-first", "messages": 3, "lead_key": PHONE, "lead_clid": "ARclick-first"}])
    );
    assert_eq!(
        query_json(
            &env,
            &format!(
                "SELECT to_jsonb(d) - 'id' AS v FROM (SELECT funnel_stage, interest_level, from_ad, ad_id, \
                   capi_interest_sent, capi_interest_event_id, capi_qualified_sent, llm_calls, analyzed_message_id \
                   FROM dialog_analysis WHERE id = '{by_lid}') d"
            )
        )
        .await,
        json!({"funnel_stage": "qualified", "interest_level": "hot", "from_ad": true, "ad_id": "120239177205810192",
               "capi_interest_sent": true, "capi_interest_event_id": "ev-phone-lead", "capi_qualified_sent": false,
               "llm_calls": 3, "analyzed_message_id": null})
    );
    // Each level once: the sent Lead stays, the waiting one is closed (its
    // bus message will find nothing) and audited; the other level moves.
    assert_eq!(
        query_json(
            &env,
            "SELECT jsonb_agg(jsonb_build_object('dialog', dialog_id, 'level', event_level, 'event_id', event_id, \
               'status', status) ORDER BY event_level) AS v FROM capi_deliveries"
        )
        .await,
        json!([{"dialog": by_lid, "level": 1, "event_id": "ev-phone-lead", "status": "success"},
               {"dialog": by_lid, "level": 2, "event_id": "ev-lid-qualified", "status": "pending"}])
    );
    assert_eq!(
        query_json(
            &env,
            "SELECT jsonb_agg(jsonb_build_object('dialog', dialog_id, 'event_id', event_id, 'status', status, \
               'reason', reason, 'account', user_account_id) ORDER BY id) AS v FROM capi_events_log"
        )
        .await,
        json!([{"dialog": by_lid, "event_id": "ev-phone-lead", "status": "success", "reason": null, "account": null},
               {"dialog": by_lid, "event_id": "ev-lid-lead", "status": "skipped", "reason": "merged",
                "account": s.user_account_id}])
    );
    // The bot's replies of both stay, in order, without a clash of sequence.
    assert_eq!(
        query_json(
            &env,
            &format!(
                "SELECT jsonb_agg(seq ORDER BY seq) AS v FROM bot_replies WHERE dialog_id = '{by_lid}'"
            )
        )
        .await,
        json!([-1, 1])
    );
    assert_eq!(count(&env, "SELECT count(*) AS n FROM leads").await, 1);
    // A reply the absorbed dialog's burst still had queued finds no dialog
    // (the chatbot acknowledges it and the kept dialog answers its own).
    assert!(matches!(
        storage::replies::claim(&mut conn, by_phone.parse().unwrap(), 2, 60_000).await,
        Ok(storage::replies::Claim::NoDialog)
    ));

    // From now on either id alone finds it.
    for (id, phone, lid) in [("P2", Some(PHONE), None), ("L2", None, Some(LID))] {
        let r = record(&mut conn, &text_message(&s.instance, id, phone, lid, "ok")).await;
        assert_eq!(dialog_of(r), by_lid, "{id}");
    }
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM dialog_analysis").await,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_of_one_new_person_arriving_together_make_one_dialog() {
    let env = TestEnv::new().await;
    let s = seed(&env, &SeedOptions::default()).await;
    let (mut a, mut b, mut c) = (env.conn().await, env.conn().await, env.conn().await);
    // Each round a new person whose three messages race, each in its own
    // transaction on its own connection: LID alone, phone alone, both.
    for round in 0..30 {
        let phone = format!("5511900{round:06}");
        let lid = format!("{}@lid", 77_000_000 + round);
        let ids = [
            format!("R{round}-L"),
            format!("R{round}-P"),
            format!("R{round}-B"),
        ];
        let lid_only = text_message(&s.instance, &ids[0], None, Some(&lid), "oi");
        let phone_only = text_message(&s.instance, &ids[1], Some(&phone), None, "oi");
        let both = text_message(&s.instance, &ids[2], Some(&phone), Some(&lid), "oi");
        let (x, y, z) = match round % 3 {
            0 => (&lid_only, &phone_only, &both),
            1 => (&both, &lid_only, &phone_only),
            _ => (&phone_only, &both, &lid_only),
        };
        let (rx, ry, rz) = tokio::join!(record(&mut a, x), record(&mut b, y), record(&mut c, z));
        let found = query_json(
            &env,
            &format!(
                "SELECT jsonb_agg(jsonb_build_object('key', contact_key, 'lid', contact_lid, 'incoming', incoming_count)) AS v \
                 FROM dialog_analysis WHERE contact_key IN ('{phone}', '{lid}') OR contact_lid = '{lid}'"
            ),
        )
        .await;
        assert_eq!(
            found,
            json!([{"key": phone, "lid": lid, "incoming": 3}]),
            "round {round}"
        );
        for r in [rx, ry, rz] {
            dialog_of(r);
        }
        // Every message is in the dialog that is left (a message stored
        // before the merge reports the id of the dialog it first went to).
        assert_eq!(
            count(
                &env,
                &format!(
                    "SELECT count(*) AS n FROM dialog_messages m JOIN dialog_analysis d ON d.id = m.dialog_id \
                     WHERE d.contact_key = '{phone}'"
                )
            )
            .await,
            3,
            "round {round}"
        );
    }
    assert_eq!(
        count(&env, "SELECT count(*) AS n FROM dialog_analysis").await,
        30
    );
    assert_eq!(count(&env, "SELECT count(*) AS n FROM leads").await, 30);
}
