//! The reports service's own metrics (served at `/metrics` with every
//! service's, `runtime::metrics`; the API's latency is the shared HTTP one).

use prometheus_client::{
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};
use runtime::metrics::OutcomeLabel;
use std::sync::Arc;

pub struct Metrics {
    /// Daily reports this process created.
    pub reports_generated: Counter,
    /// Telegram sends: sent, waited (429 inside the lease), retry, failed.
    pub telegram: Family<OutcomeLabel, Counter>,
    /// Spend syncs: done, retry, failed.
    pub spend_syncs: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        let m = Metrics {
            reports_generated: Counter::default(),
            telegram: Family::default(),
            spend_syncs: Family::default(),
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
