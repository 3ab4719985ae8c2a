//! Fake amoCRM (`amocrm.rs`) and Bitrix24 (`bitrix24.rs`): the entities,
//! fields and contacts a test or the demo puts in, read back through each
//! CRM's own API shapes; OAuth refresh that retires the old refresh token;
//! each CRM's rate limit and error bodies; injected faults; and webhooks
//! fired the way the CRM fires them when an entity is put in — so the CRM
//! path runs end to end with no CRM account.
//!
//! Each fake counts what it saw (`GET /sandbox/crm/stats`): requests, how
//! many it throttled, the most requests it had in any one second, refreshes.

pub mod amocrm;
pub mod bitrix24;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

/// What a fake CRM is told to do wrong (`PUT /sandbox/crm/faults/{crm}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmFaults {
    /// Added to every API answer.
    pub latency_ms: u64,
    /// Added to every token refresh (widens a refresh race).
    pub refresh_latency_ms: u64,
    /// Answer every API request as rate limited for this long from now.
    pub throttle_for_ms: u64,
    /// Answer every API request 503 for this long from now.
    pub unavailable_for_ms: u64,
    /// amoCRM's `retry_after` (seconds) in its 429 bodies.
    pub retry_after_s: u64,
}

/// Faults with their windows started.
#[derive(Debug, Default)]
struct ActiveFaults {
    faults: CrmFaults,
    throttle_until: Option<Instant>,
    unavailable_until: Option<Instant>,
}

impl ActiveFaults {
    fn set(&mut self, f: CrmFaults) {
        let now = Instant::now();
        let until = |ms: u64| (ms > 0).then(|| now + Duration::from_millis(ms));
        self.throttle_until = until(f.throttle_for_ms);
        self.unavailable_until = until(f.unavailable_for_ms);
        self.faults = f;
    }

    fn throttling(&self) -> bool {
        self.throttle_until.is_some_and(|t| Instant::now() < t)
    }

    fn unavailable(&self) -> bool {
        self.unavailable_until.is_some_and(|t| Instant::now() < t)
    }
}

/// Requests as the CRM sees them: how many, how many refused, and the most
/// that fell in any one second.
#[derive(Debug, Default)]
struct Meter {
    last_second: VecDeque<Instant>,
    requests: u64,
    throttled: u64,
    unauthorized: u64,
    max_per_second: usize,
}

impl Meter {
    /// Counts a request; returns how many came in the last second, this one included.
    fn hit(&mut self, now: Instant) -> usize {
        self.requests += 1;
        while self
            .last_second
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.last_second.pop_front();
        }
        self.last_second.push_back(now);
        self.max_per_second = self.max_per_second.max(self.last_second.len());
        self.last_second.len()
    }

    fn stats(&self) -> Value {
        json!({"requests": self.requests, "throttled": self.throttled,
               "unauthorized": self.unauthorized, "max_per_second": self.max_per_second})
    }
}

/// Both fake CRMs.
#[derive(Default)]
pub struct Crms {
    pub amocrm: amocrm::Amo,
    pub bitrix24: bitrix24::Bitrix,
}

/// A form body (`a[b][0]=c&…`) from `(key, value)` pairs, brackets
/// encoded as the CRMs send them.
fn form(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Posts a webhook body as a CRM would; the receiver's status, or 0 when
/// it was not reached.
async fn fire(url: &str, body: String) -> u16 {
    let sent = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .timeout(Duration::from_secs(10))
        .body(body)
        .send()
        .await;
    sent.map_or(0, |r| r.status().as_u16())
}

/// A lock poisoned by a panicked handler: the fake answers 500.
fn poisoned() -> HttpResponse {
    HttpResponse::InternalServerError().json(json!({"error": "sandbox state poisoned"}))
}

async fn stats(crms: web::Data<Crms>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "amocrm": crms.amocrm.stats(),
        "bitrix24": crms.bitrix24.stats(),
    }))
}

async fn put_faults(
    crm: web::Path<String>,
    f: web::Json<CrmFaults>,
    crms: web::Data<Crms>,
) -> HttpResponse {
    let f = f.into_inner();
    match crm.as_str() {
        "amocrm" => crms.amocrm.set_faults(f.clone()),
        "bitrix24" => crms.bitrix24.set_faults(f.clone()),
        other => {
            return HttpResponse::NotFound()
                .json(json!({"code": "unknown_crm", "message": format!("no fake CRM '{other}'")}));
        }
    }
    HttpResponse::Ok().json(f)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sandbox/crm/stats", web::get().to(stats))
        .route("/sandbox/crm/faults/{crm}", web::put().to(put_faults))
        .configure(amocrm::routes)
        .configure(bitrix24::routes);
}
