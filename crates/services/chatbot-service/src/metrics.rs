//! chatbot-service's own metrics (served at `/metrics` with every
//! service's, `runtime::metrics`): messages held in the buffer, replies by
//! outcome, the model's latency.

use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use runtime::metrics::OutcomeLabel;
use std::sync::Arc;

pub struct Metrics {
    /// Customer messages held (unacknowledged) until their buffer delay passes.
    pub buffered: Gauge,
    /// sent, skipped, rejected, failed, retry.
    pub replies: Family<OutcomeLabel, Counter>,
    pub model_seconds: Histogram,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        let m = Metrics {
            buffered: Gauge::default(),
            replies: Family::default(),
            model_seconds: Histogram::new([0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0]),
        };
        registry.register(
            "chatbot_buffered_messages",
            "Customer messages held in the buffer",
            m.buffered.clone(),
        );
        registry.register("chatbot_replies", "Bot turns by outcome", m.replies.clone());
        registry.register(
            "chatbot_model_seconds",
            "The model's answer time for a bot reply",
            m.model_seconds.clone(),
        );
        Arc::new(m)
    }

    pub fn reply(&self, outcome: &'static str) {
        self.replies.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}
