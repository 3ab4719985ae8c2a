//! The schema lives in `migrations/` at the workspace root, embedded here.
//!
//! Policy: services never change the schema. `capi migrate` (the operator,
//! the run script, or a Kubernetes Job) applies migrations, serialised by a
//! PostgreSQL advisory lock so concurrent runs are safe; services report
//! not-ready and wait until the schema is current before taking work.

use anyhow::Context;
use diesel::{QueryableByName, migration::MigrationSource, pg::Pg, sql_types::Text};
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../../migrations");

/// Arbitrary constant shared by every `capi migrate`.
const MIGRATION_LOCK_KEY: i64 = 0x4341_5049_4d49_4752; // "CAPIMIGR"

/// Every embedded migration's version, oldest first.
pub fn embedded_versions() -> anyhow::Result<Vec<String>> {
    let migrations = MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .map_err(|e| anyhow::anyhow!("reading embedded migrations: {e}"))?;
    Ok(migrations
        .iter()
        .map(|m| m.name().version().to_string())
        .collect())
}

/// Applies pending migrations; returns the versions applied. Needs the
/// multi-threaded tokio runtime (the harness blocks in place).
pub async fn run_pending(database_url: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = crate::connect::connect(database_url)
        .await
        .context("connecting to PostgreSQL to migrate")?;
    // SQL: a session advisory lock is a function call on no table.
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await?;
    let mut harness = AsyncMigrationHarness::new(conn);
    let result = tokio::task::block_in_place(|| {
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|applied| applied.iter().map(ToString::to_string).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))
    });
    let mut conn = harness.into_inner();
    // SQL: a session advisory lock is a function call on no table.
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(&mut conn)
        .await?;
    result
}

#[derive(QueryableByName)]
struct Version {
    #[diesel(sql_type = Text)]
    version: String,
}

/// Embedded migrations not yet applied to the database.
pub async fn pending(conn: &mut AsyncPgConnection) -> anyhow::Result<Vec<String>> {
    let applied: Vec<Version> =
        // SQL: diesel's own bookkeeping table, which may not exist yet (not in schema.rs).
        match diesel::sql_query("SELECT version FROM __diesel_schema_migrations")
            .load(conn)
            .await
        {
            Ok(v) => v,
            // No migration table yet: nothing is applied.
            Err(diesel::result::Error::DatabaseError(_, info))
                if info.message().contains("does not exist") =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
    Ok(embedded_versions()?
        .into_iter()
        .filter(|v| !applied.iter().any(|a| &a.version == v))
        .collect())
}
