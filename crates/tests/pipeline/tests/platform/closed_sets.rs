//! Every closed set the code passes around as an enum is the set the
//! database allows in its column, and each value survives the trip through
//! PostgreSQL as itself.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use diesel::{QueryableByName, sql_types::Text};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::{
    account::ReportLanguage,
    analytics::{SpendSource, SyncStatus},
    conversation::{Author, ReplyStatus},
    delivery::{AttemptStatus, DeliveryStatus},
    evolution::ApiVersion,
    level::{CapiSource, CrmType, Level, NoDialog},
    qualification::{AnalysisStatus, FunnelStage, InterestLevel},
    report::TelegramStatus,
    usage::Purpose,
};
use pipeline_tests::TestEnv;
use std::collections::BTreeSet;

/// The definition of a column's own check constraint (`{table}_{column}_check`;
/// a table's constraints across columns, such as a purchase's, are not it).
async fn check_of(conn: &mut AsyncPgConnection, table: &str, column: &str) -> String {
    #[derive(QueryableByName)]
    struct Def {
        #[diesel(sql_type = Text)]
        def: String,
    }
    let defs: Vec<Def> = diesel::sql_query(
        "SELECT pg_get_constraintdef(c.oid) AS def FROM pg_constraint c \
         JOIN pg_class t ON t.oid = c.conrelid \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (c.conkey) \
         WHERE c.contype = 'c' AND t.relname = $1 AND a.attname = $2 \
           AND c.conname = $1 || '_' || $2 || '_check'",
    )
    .bind::<Text, _>(table)
    .bind::<Text, _>(column)
    .load(conn)
    .await
    .expect("constraints");
    assert_eq!(defs.len(), 1, "{table}.{column} has one check constraint");
    defs.into_iter().map(|d| d.def).collect()
}

/// The words a column's check constraint lists (`col IN ('a', 'b')`).
async fn allowed(conn: &mut AsyncPgConnection, table: &str, column: &str) -> BTreeSet<String> {
    check_of(conn, table, column)
        .await
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

macro_rules! closed_set {
    ($conn:expr, $ty:ty, $table:literal, $column:literal) => {{
        let words: BTreeSet<String> = <$ty>::ALL.iter().map(|v| v.as_str().to_owned()).collect();
        assert_eq!(
            allowed($conn, $table, $column).await,
            words,
            concat!(
                stringify!($ty),
                " and ",
                $table,
                ".",
                $column,
                " allow the same words"
            )
        );
        #[derive(QueryableByName)]
        struct Back {
            #[diesel(sql_type = Text)]
            v: $ty,
        }
        let back: Vec<Back> = diesel::sql_query("SELECT unnest($1::text[]) AS v")
            .bind::<diesel::sql_types::Array<Text>, _>(<$ty>::ALL.to_vec())
            .load($conn)
            .await
            .expect(concat!(stringify!($ty), " round trip"));
        let back: Vec<$ty> = back.into_iter().map(|b| b.v).collect();
        assert_eq!(back, <$ty>::ALL.to_vec());
        let unknown: Result<Vec<Back>, _> = diesel::sql_query("SELECT 'no such word'::text AS v")
            .load($conn)
            .await;
        let err = unknown.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("'no such word'"), "{err}");
    }};
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_closed_set_is_its_columns_check_and_round_trips() {
    let env = TestEnv::new().await;
    let conn = &mut env.conn().await;
    closed_set!(conn, Author, "dialog_messages", "author");
    closed_set!(conn, DeliveryStatus, "capi_deliveries", "status");
    closed_set!(conn, AttemptStatus, "capi_events_log", "status");
    closed_set!(conn, ReplyStatus, "bot_replies", "status");
    closed_set!(conn, AnalysisStatus, "qualification_runs", "status");
    closed_set!(conn, AnalysisStatus, "dialog_analysis", "analysis_status");
    closed_set!(conn, InterestLevel, "dialog_analysis", "interest_level");
    closed_set!(conn, FunnelStage, "dialog_analysis", "funnel_stage");
    closed_set!(conn, CapiSource, "account_directions", "capi_source");
    closed_set!(conn, CrmType, "account_directions", "capi_crm_type");
    closed_set!(conn, NoDialog, "account_directions", "capi_crm_no_dialog");
    closed_set!(conn, CrmType, "crm_connections", "crm_type");
    closed_set!(conn, Purpose, "llm_usage_daily", "purpose");
    closed_set!(
        conn,
        ApiVersion,
        "whatsapp_phone_numbers",
        "evolution_api_version"
    );
    closed_set!(conn, ReportLanguage, "user_accounts", "report_language");
    closed_set!(conn, ReportLanguage, "conversation_reports", "language");
    closed_set!(
        conn,
        TelegramStatus,
        "conversation_reports",
        "telegram_status"
    );
    closed_set!(conn, SpendSource, "ad_spend", "source");
    closed_set!(conn, SyncStatus, "ad_spend_syncs", "status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_are_stored_as_their_numbers_and_nothing_else_reads_as_one() {
    let env = TestEnv::new().await;
    let conn = &mut env.conn().await;
    // Purchase (4) is claimed and logged; the model reaches at most 3.
    for (table, column, highest) in [
        ("capi_deliveries", "event_level", "<= 4"),
        ("capi_events_log", "event_level", "<= 4"),
        ("qualification_runs", "reached_level", "<= 3"),
    ] {
        let def = check_of(conn, table, column).await;
        assert!(
            def.contains(">= 1") && def.contains(highest),
            "{table}.{column}: {def}"
        );
    }
    #[derive(QueryableByName)]
    struct Back {
        #[diesel(sql_type = diesel::sql_types::SmallInt)]
        v: Level,
    }
    let back: Vec<Back> = diesel::sql_query("SELECT unnest($1::int2[]) AS v")
        .bind::<diesel::sql_types::Array<diesel::sql_types::SmallInt>, _>(Level::ALL.to_vec())
        .load(conn)
        .await
        .expect("levels round trip");
    assert_eq!(
        back.into_iter().map(|b| b.v).collect::<Vec<_>>(),
        Level::ALL.to_vec()
    );
    let five: Result<Vec<Back>, _> = diesel::sql_query("SELECT 5::int2 AS v").load(conn).await;
    assert!(five.is_err(), "5 is no level");
}
