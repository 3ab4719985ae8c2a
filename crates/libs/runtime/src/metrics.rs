//! `/metrics` (Prometheus text) on every service: one registry per process
//! (prefix `capi_`) holding what every service shares — HTTP requests by
//! route, method and status with their latency, the outbox backlog and each
//! queue's ready and dead-lettered messages (sampled every 15 s), the tokio
//! tasks alive (every second) — and what
//! the service registers of its own before `Runtime::serve`.

use crate::periodic::{First, every};
use actix_web::{HttpResponse, web};
use bus::{Bus, Queue};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use std::{sync::Arc, time::Duration};
use storage::DbPool;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The route template (`/webhooks/evolution/{instance}`), never the path.
    pub route: String,
    pub method: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    pub queue: String,
}

/// A label set of one static word (`outcome`, `level`, …) for the services' own counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// The metrics every service has.
#[derive(Clone)]
pub struct Shared {
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Family<RouteLabel, Histogram>,
    outbox_rows: Gauge,
    outbox_oldest_seconds: Gauge,
    queue_ready: Family<QueueLabel, Gauge>,
    queue_dead_lettered: Family<QueueLabel, Gauge>,
    tasks_alive: Gauge,
}

fn latency_buckets() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
    ])
}

impl Shared {
    pub fn register(registry: &mut Registry) -> Shared {
        let s = Shared {
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency_buckets),
            outbox_rows: Gauge::default(),
            outbox_oldest_seconds: Gauge::default(),
            queue_ready: Family::default(),
            queue_dead_lettered: Family::default(),
            tasks_alive: Gauge::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            s.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request duration by route",
            s.http_seconds.clone(),
        );
        registry.register(
            "outbox_rows",
            "Outbox rows not yet published (sampled)",
            s.outbox_rows.clone(),
        );
        registry.register(
            "outbox_oldest_seconds",
            "Age of the oldest unpublished outbox row (sampled)",
            s.outbox_oldest_seconds.clone(),
        );
        registry.register(
            "queue_ready_messages",
            "Messages ready in each queue (sampled consumer lag)",
            s.queue_ready.clone(),
        );
        registry.register(
            "queue_dead_lettered_messages",
            "Messages in each queue's dead-letter queue (sampled)",
            s.queue_dead_lettered.clone(),
        );
        registry.register(
            "tasks_alive",
            "Tokio tasks alive in this process (sampled every second)",
            s.tasks_alive.clone(),
        );
        s
    }

    /// Samples the outbox and the queues every 15 s, the tasks every
    /// second, until stopped.
    pub async fn sample(self, pool: DbPool, bus: Arc<Bus>, stop: CancellationToken) {
        let tasks = every(Duration::from_secs(1), First::Now, &stop, || async {
            let alive = tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks();
            self.tasks_alive
                .set(i64::try_from(alive).unwrap_or(i64::MAX));
        });
        let stores = every(Duration::from_secs(15), First::Now, &stop, || async {
            if let Ok(mut conn) = pool.get().await
                && let Ok(b) = storage::outbox::backlog(&mut conn).await
            {
                self.outbox_rows.set(b.rows);
                let age = b
                    .oldest
                    .map_or(0, |t| (chrono::Utc::now() - t).num_seconds().max(0));
                self.outbox_oldest_seconds.set(age);
            }
            for q in Queue::ALL {
                let label = QueueLabel {
                    queue: bus.names().queue(q),
                };
                if let Ok(n) = bus.queue_depth(q).await {
                    self.queue_ready.get_or_create(&label).set(i64::from(n));
                }
                if let Ok(n) = bus.dead_letter_depth(q).await {
                    self.queue_dead_lettered
                        .get_or_create(&label)
                        .set(i64::from(n));
                }
            }
        });
        tokio::join!(tasks, stores);
    }
}

pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

async fn metrics(registry: web::Data<Arc<Registry>>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(render(&registry))
}

pub fn routes(cfg: &mut web::ServiceConfig, registry: Arc<Registry>) {
    cfg.app_data(web::Data::new(registry))
        .service(crate::http::resource("/metrics", "GET").route(web::get().to(metrics)));
}
