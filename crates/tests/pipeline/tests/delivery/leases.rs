//! The delivery lease, its fencing token and the sending mark, against real PostgreSQL.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use chrono::Utc;
use domain::level::Level;
use pipeline_tests::{SeedOptions, TestEnv, count, dialog_ids, seed};
use storage::deliveries;

/// A seeded instance with one dialog; its id.
async fn one_dialog(env: &TestEnv) -> domain::ids::DialogId {
    use diesel_async::RunQueryDsl;
    let s = seed(env, &SeedOptions::default()).await;
    diesel::sql_query(
        "INSERT INTO dialog_analysis (instance_name, contact_key) VALUES ($1, '5511999999999')",
    )
    .bind::<diesel::sql_types::Text, _>(&s.instance)
    .execute(&mut env.conn().await)
    .await
    .expect("dialog");
    dialog_ids(env).await[0]
}

/// Whether the delivery is marked as being sent by `sender` (0 or 1).
async fn marked_by(env: &TestEnv, delivery_id: i64, sender: &str) -> i64 {
    count(
        env,
        &format!(
            "SELECT count(*) AS n FROM capi_deliveries \
             WHERE id = {delivery_id} AND sending_by = '{sender}' AND sending_at IS NOT NULL"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_whose_lease_was_taken_over_can_no_longer_send() {
    let env = TestEnv::new().await;
    let mut conn = env.conn().await;
    let dialog = one_dialog(&env).await;
    assert!(
        deliveries::claim_level(
            &mut conn,
            dialog,
            Level::Interest,
            &"e-1".into(),
            Utc::now()
        )
        .await
        .expect("claim")
    );
    assert!(
        !deliveries::claim_level(
            &mut conn,
            dialog,
            Level::Interest,
            &"e-1".into(),
            Utc::now()
        )
        .await
        .expect("claim"),
        "claimed once"
    );
    let ctx = deliveries::delivery_context(&mut conn, &"e-1".into())
        .await
        .expect("query")
        .expect("delivery");

    let lease_after_grace = |secs, grace| {
        let env = &env;
        async move {
            deliveries::lease_many(&mut env.conn().await, &[ctx.delivery_id], secs, grace)
                .await
                .expect("lease")
                .into_iter()
                .map(|t| (t.attempt, t.uncertain))
                .collect::<Vec<_>>()
        }
    };
    let lease = |secs| lease_after_grace(secs, 0);
    let mark = |attempt, secs, sender: &'static str| {
        let env = &env;
        async move {
            deliveries::mark_sending(
                &mut env.conn().await,
                &[(ctx.delivery_id, attempt)],
                secs,
                sender,
            )
            .await
            .expect("fence")
        }
    };

    // Sender A leases it, but its lease runs out (0 s) while the event waits in a batch.
    assert_eq!(lease(0).await, vec![(1, false)]);
    // Sender B (a redelivered copy) takes it over; a live lease keeps out a third.
    assert_eq!(
        lease(60).await,
        vec![(2, false)],
        "A never sent it: nothing uncertain"
    );
    assert!(lease(60).await.is_empty(), "a live lease keeps others out");
    // Just before sending, only the current owner's token still holds.
    assert!(mark(1, 60, "A").await.is_empty(), "A must not send");
    // B marks it as being sent and dies with the request out (its lease
    // runs out at once here): the next owner learns the request may have
    // reached Meta.
    assert_eq!(mark(2, 0, "B").await, vec![ctx.delivery_id]);
    assert_eq!(
        marked_by(&env, ctx.delivery_id, "B").await,
        1,
        "the mark names the sender"
    );
    // A sender slow to record (not dead) gets the grace first.
    assert!(lease_after_grace(60, 60).await.is_empty());
    assert_eq!(lease_after_grace(60, 0).await, vec![(3, true)]);
    // C's request gets an answer (a transient error): the mark is cleared
    // with the lease, and the next attempt is certain again.
    deliveries::release_many(&mut conn, &[ctx.delivery_id])
        .await
        .expect("release");
    assert_eq!(marked_by(&env, ctx.delivery_id, "B").await, 0);
    assert_eq!(lease(60).await, vec![(4, false)]);
    // D stops before its request leaves: it hands the lease and the attempt back.
    assert_eq!(
        deliveries::return_unsent(&mut conn, &[(ctx.delivery_id, 3)])
            .await
            .expect("return"),
        0,
        "a stale token hands nothing back"
    );
    assert_eq!(
        deliveries::return_unsent(&mut conn, &[(ctx.delivery_id, 4)])
            .await
            .expect("return"),
        1
    );
    assert_eq!(
        lease(60).await,
        vec![(4, false)],
        "free at once, the attempt not counted"
    );
    // Once finished, nobody owns it any more.
    deliveries::finish(
        &mut conn,
        ctx.delivery_id,
        Level::Interest,
        &"e-1".into(),
        domain::delivery::AttemptStatus::Success,
    )
    .await
    .expect("finish");
    assert!(mark(4, 60, "D").await.is_empty());
    let flags = deliveries::sent_flags(&mut conn, dialog)
        .await
        .expect("query")
        .expect("dialog");
    assert!(flags.capi_interest_sent);
    assert_eq!(flags.capi_interest_event_id.as_deref(), Some("e-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_reply_is_held_by_one_turn_at_a_time_and_its_tries_are_counted() {
    use storage::replies::{self, Claim};
    let env = TestEnv::new().await;
    let mut conn = env.conn().await;
    let dialog = one_dialog(&env).await;
    let claim = |lease_ms| {
        let env = &env;
        async move {
            let mut conn = env.conn().await;
            replies::claim(&mut conn, dialog, 1, lease_ms)
                .await
                .expect("claim")
        }
    };
    // The flushing process takes it; the queued copy finds it held.
    let Claim::Taken(first) = claim(60_000).await else {
        panic!("the first claim takes the reply");
    };
    assert_eq!((first.status.as_str(), first.attempts), ("pending", 1));
    let Claim::Leased(until) = claim(60_000).await else {
        panic!("a live lease keeps a second turn out");
    };
    assert!(until > Utc::now() + chrono::Duration::seconds(50));
    // The turn gives up for now (model unavailable): the retry takes it.
    replies::release(&mut conn, first.id)
        .await
        .expect("release");
    let Claim::Taken(second) = claim(60_000).await else {
        panic!("a released reply is taken again");
    };
    assert_eq!((second.id, second.attempts), (first.id, 2));
    // A turn that died: its lease runs out and the next one takes over.
    replies::release(&mut conn, first.id)
        .await
        .expect("release");
    assert!(matches!(claim(0).await, Claim::Taken(r) if r.attempts == 3));
    assert!(matches!(claim(60_000).await, Claim::Taken(r) if r.attempts == 4));
    // Finished: nobody takes it again.
    replies::close(&mut conn, first.id, replies::Unsent::Skipped, "superseded")
        .await
        .expect("close");
    assert!(
        matches!(claim(60_000).await, Claim::Done(status) if status == domain::conversation::ReplyStatus::Skipped)
    );
}
