//! The reports service's own metrics (served at `/metrics` with every
//! service's, `runtime::metrics`; the API's latency is the shared HTTP one).

use crate::Background;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use runtime::{
    metrics::OutcomeLabel,
    periodic::{First, every},
};
use std::{sync::Arc, time::Duration};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabel {
    /// Ids only: `/metrics` is read by whoever reaches the port, so no
    /// tenant's direction name is on it (`capi doctor --direction ID` names it).
    pub direction_id: String,
}

pub struct Metrics {
    /// Daily reports this process created.
    pub reports_generated: Counter,
    /// Telegram sends: sent, waited (429 inside the lease), retry, failed.
    pub telegram: Family<OutcomeLabel, Counter>,
    /// Spend syncs: done, retry, failed.
    pub spend_syncs: Family<OutcomeLabel, Counter>,
    /// Per direction with CAPI on: seconds since Meta last accepted one of
    /// its events (since it was created, if never), sampled every minute.
    pub direction_silence: Family<DirectionLabel, Gauge>,
    /// Rows the retention sweep blanked, by kind (messages, bot_replies, crm_bodies).
    pub retention_blanked: Family<KindLabel, Counter>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        let m = Metrics {
            reports_generated: Counter::default(),
            telegram: Family::default(),
            spend_syncs: Family::default(),
            direction_silence: Family::default(),
            retention_blanked: Family::default(),
        };
        registry.register(
            "reports_generated",
            "Daily reports created by this process",
            m.reports_generated.clone(),
        );
        registry.register(
            "telegram_messages",
            "Telegram sendMessage calls by outcome",
            m.telegram.clone(),
        );
        registry.register(
            "spend_syncs",
            "Ad spend syncs by outcome",
            m.spend_syncs.clone(),
        );
        registry.register(
            "direction_last_event_age_seconds",
            "Seconds since Meta last accepted an event of the direction (CAPI on)",
            m.direction_silence.clone(),
        );
        registry.register(
            "retention_blanked",
            "Texts and CRM bodies the retention sweep blanked, by kind",
            m.retention_blanked.clone(),
        );
        Arc::new(m)
    }

    pub fn telegram(&self, outcome: &'static str) {
        self.telegram.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn spend_sync(&self, outcome: &'static str) {
        self.spend_syncs
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }
}

/// Samples each CAPI direction's silence every minute until stopped.
pub(crate) async fn sample_directions(bg: Background) {
    let metrics = &bg.metrics;
    every(Duration::from_secs(60), First::Now, &bg.stop, || async {
        if let Ok(mut conn) = bg.store.pool().get().await
            && let Ok(rows) = storage::analytics::direction_silences(&mut conn).await
        {
            metrics.direction_silence.clear();
            for r in rows {
                let label = DirectionLabel {
                    direction_id: r.direction_id.to_string(),
                };
                metrics
                    .direction_silence
                    .get_or_create(&label)
                    .set(r.seconds);
            }
        }
    })
    .await
}
