//! capi-sender's own metrics, served at `/metrics` with every service's
//! (`runtime::metrics`).

use domain::{delivery::AttemptStatus, meta_errors::Verdict};
use prometheus_client::{
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
pub use runtime::metrics::OutcomeLabel;
use std::sync::Arc;

pub struct Metrics {
    /// Events by final outcome: sent, failed, skipped.
    pub events: Family<OutcomeLabel, Counter>,
    /// Attempts that will be tried again (transient or throttled).
    pub retries: Counter,
    /// Requests made to Meta, by outcome (accepted, invalid, transient, throttled, permanent).
    pub requests: Family<OutcomeLabel, Counter>,
    pub batch_size: Histogram,
    pub meta_latency_seconds: Histogram,
    /// From the level being reached (claimed) to Meta's answer.
    pub queue_lag_seconds: Histogram,
    /// Events waiting in in-process batches right now.
    pub pending_in_batches: Gauge,
    /// Events sent again although a request that may have reached Meta
    /// carried them (its sender died before recording the answer).
    pub uncertain_resends: Counter,
}

impl Metrics {
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        let events = Family::<OutcomeLabel, Counter>::default();
        let retries = Counter::default();
        let requests = Family::<OutcomeLabel, Counter>::default();
        let batch_size = Histogram::new([1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0]);
        let meta_latency_seconds =
            Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let queue_lag_seconds = Histogram::new([
            0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
        ]);
        let pending_in_batches = Gauge::default();
        let uncertain_resends = Counter::default();
        registry.register("events", "CAPI events by final outcome", events.clone());
        registry.register(
            "retries",
            "Event attempts scheduled for a retry",
            retries.clone(),
        );
        registry.register(
            "meta_requests",
            "Requests to the Meta Graph API by outcome",
            requests.clone(),
        );
        registry.register(
            "batch_size",
            "Events per request to Meta",
            batch_size.clone(),
        );
        registry.register(
            "meta_latency_seconds",
            "Meta request duration",
            meta_latency_seconds.clone(),
        );
        registry.register(
            "queue_lag_seconds",
            "Time from level reached to Meta's answer",
            queue_lag_seconds.clone(),
        );
        registry.register(
            "pending_in_batches",
            "Events waiting in batches",
            pending_in_batches.clone(),
        );
        registry.register(
            "uncertain_resends",
            "Events sent again after a request of theirs ended with no recorded answer (possible duplicates at Meta)",
            uncertain_resends.clone(),
        );
        Arc::new(Metrics {
            events,
            retries,
            requests,
            batch_size,
            meta_latency_seconds,
            queue_lag_seconds,
            pending_in_batches,
            uncertain_resends,
        })
    }

    /// An event's final outcome, by its audit status (the metric's words:
    /// sent, failed, skipped).
    pub fn event(&self, status: AttemptStatus) {
        let outcome = match status {
            AttemptStatus::Success => "sent",
            AttemptStatus::Error => "failed",
            AttemptStatus::Skipped => "skipped",
        };
        self.events.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// A request's answer, by what it means.
    pub fn request(&self, verdict: Verdict) {
        let outcome = match verdict {
            Verdict::Accepted => "accepted",
            Verdict::Transient => "transient",
            Verdict::Throttled => "throttled",
            Verdict::Invalid => "invalid",
            Verdict::Permanent => "permanent",
        };
        self.requests.get_or_create(&OutcomeLabel { outcome }).inc();
    }
}
