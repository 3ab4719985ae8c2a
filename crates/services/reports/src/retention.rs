//! The retention sweep: every `reports.retention_every`, texts and CRM
//! bodies past their account's window are blanked (`storage::retention`),
//! a small batch per transaction. Replicas may all run it: a batch skips the
//! rows another replica holds, so they share the work.

use crate::{Background, Config};
use runtime::{
    CancellationToken,
    periodic::{First, every},
};
use storage::{DbPool, retention};

pub(crate) async fn run(bg: Background) {
    let (config, metrics) = (&bg.config, &bg.metrics);
    every(
        config.retention_every,
        First::AfterOnePeriod,
        &bg.stop,
        || async {
            match sweep(bg.store.pool(), config, &bg.stop).await {
                Ok(swept) => {
                    for kind in retention::Kind::ALL {
                        let n = swept.get(kind) as u64;
                        metrics
                            .retention_blanked
                            .get_or_create(&crate::metrics::KindLabel {
                                kind: kind.as_str(),
                            })
                            .inc_by(n);
                    }
                    if swept != retention::Swept::default() {
                        tracing::info!(
                            messages = swept.messages,
                            bot_replies = swept.bot_replies,
                            crm_bodies = swept.crm_bodies,
                            "retention: texts past their window blanked"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = format!("{e:#}"), "retention sweep: will retry"),
            }
        },
    )
    .await
}

async fn sweep(
    pool: &DbPool,
    config: &Config,
    stop: &CancellationToken,
) -> anyhow::Result<retention::Swept> {
    let mut conn = pool.get().await?;
    Ok(retention::sweep(
        &mut conn,
        config.retention_batch,
        config.retention_pause,
        || stop.is_cancelled(),
    )
    .await?)
}
