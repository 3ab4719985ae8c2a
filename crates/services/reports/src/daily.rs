//! The daily schedule: every tick, each account whose local clock has passed
//! `reports.daily_at` and whose local yesterday has no report gets one. The
//! report row's unique key (account, day) is the guard: replicas racing on
//! the same account compute the same report and one insert wins.

use crate::Background;
use runtime::periodic::{First, every};
use storage::{DbPool, reports};

pub(crate) async fn run(bg: Background) {
    let pool = bg.store.pool();
    every(bg.config.tick, First::Now, &bg.stop, || async {
        match generate_due(pool, bg.config.daily_at_minutes).await {
            Ok(0) => {}
            Ok(n) => {
                bg.metrics.reports_generated.inc_by(n as u64);
                tracing::info!(reports = n, "daily reports generated")
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "daily reports: will retry"),
        }
    })
    .await
}

/// Generates every due report; returns how many this process created.
pub async fn generate_due(pool: &DbPool, daily_at_minutes: i32) -> anyhow::Result<usize> {
    let mut conn = pool.get().await?;
    let due = reports::due_accounts(&mut conn, daily_at_minutes).await?;
    let mut created = 0;
    for (account_id, day) in due {
        let Some(account) = reports::account(&mut conn, account_id).await? else {
            continue;
        };
        let (_, stored) = reports::generate(&mut conn, &account, day, false).await?;
        if stored == reports::Stored::Created {
            tracing::info!(user_account_id = %account_id, %day, "daily report stored");
            created += 1;
        }
    }
    Ok(created)
}
