//! The sandbox: a local Meta Conversions API (and the bot's model and
//! Evolution API, `assistant.rs`). It validates requests the way
//! Meta documents (`validate.rs`), answers with Meta's response and error
//! shapes, records every event it accepted, and can be told to be slow,
//! fail, throttle, or reject chosen events — so the whole system runs, and
//! can be tested and benchmarked, with no Meta account.
//!
//! - `POST /{version}/{pixel_id}/events` — the Conversions API
//! - `GET  /sandbox/stats` — requests, events, distinct and duplicated event ids
//! - `GET  /sandbox/events?pixel_id=&limit=` — accepted events, newest last
//! - `GET  /sandbox/events/{event_id}` — how many times an event id was accepted
//! - `GET|PUT /sandbox/faults` — latency, error and throttle rates, invalid event ids
//! - `GET|POST /{version}/{waba_id}/dataset` — the WhatsApp Business Account's dataset (`dataset.rs`)
//! - `GET|POST /{version}/{waba_id}/subscribed_apps` — the WABA's subscribed apps (`subscribed_apps.rs`)
//! - `GET /{version}/{pixel_id}` — the pixel, for `capi doctor`'s token check (a token containing `expired` is refused)
//! - `DELETE /sandbox/events` — forget everything recorded
//! - `POST /v1/chat/completions` — an OpenAI-compatible model with fixed answers
//! - `POST /message/sendText/{instance}` — Evolution API's send; `GET /sandbox/whatsapp/sent`
//! - `POST /webhook/set/{instance}`, `GET /webhook/find/{instance}` — Evolution API's webhook
//!   settings (`evolution_webhook.rs`); `GET /sandbox/evolution/webhooks`
//! - `GET|PUT /sandbox/llm/faults` — the model's latency, failures to inject
//!
//! - amoCRM and Bitrix24 APIs, OAuth, rate limits and webhooks (`crm/`), `GET /sandbox/crm/stats`
//! - Telegram's `sendMessage` and Meta's ad insights, for the reports service (`marketing.rs`)
//!
//! `sandbox customers` (`customers.rs`) plays the other side: WhatsApp
//! customers writing in, posted to webhook-gateway as Evolution API would;
//! `sandbox crm-burst` (`crm_burst.rs`) an amoCRM mass update's webhooks.

pub mod assistant;
pub mod cloud_webhook;
pub mod crm;
pub mod crm_burst;
pub mod customers;
pub mod dataset;
pub mod evolution_webhook;
pub mod marketing;
mod qualify;
pub mod subscribed_apps;
mod validate;

pub use validate::{MAX_EVENTS, validate};

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
    time::Duration,
};

/// What the sandbox is told to do wrong.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// Added to every answer.
    pub latency_ms: u64,
    /// Share of requests answered 500 (transient), 0..1.
    pub error_rate: f64,
    /// Share of requests answered as throttled (code 80004), 0..1.
    pub throttle_rate: f64,
    /// Events with these ids make their request invalid (code 100).
    pub invalid_event_ids: HashSet<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub pixel_id: String,
    pub received_at: i64,
    /// When the sandbox accepted the event (after any added latency), in
    /// Unix milliseconds: the moment Meta would acknowledge it.
    pub accepted_at_ms: i64,
    pub event: Value,
}

#[derive(Default)]
struct Store {
    faults: Faults,
    requests: u64,
    rejected_requests: u64,
    events: Vec<Recorded>,
    counts: HashMap<String, u64>,
}

#[derive(Default)]
pub struct Sandbox {
    store: Mutex<Store>,
    assistant: assistant::Assistant,
}

impl Sandbox {
    pub fn new(faults: Faults) -> Sandbox {
        Sandbox::with_llm(faults, assistant::LlmFaults::default())
    }

    pub fn with_llm(faults: Faults, llm: assistant::LlmFaults) -> Sandbox {
        Sandbox {
            store: Mutex::new(Store {
                faults,
                ..Store::default()
            }),
            assistant: assistant::Assistant::new(llm),
        }
    }

    fn faults(&self) -> Faults {
        self.store
            .lock()
            .map(|s| s.faults.clone())
            .unwrap_or_default()
    }

    /// Handles one `/events` request: `(status, body)`.
    pub fn events(&self, pixel_id: &str, body: &Value, now: i64) -> (u16, Value) {
        let faults = self.faults();
        let Ok(mut store) = self.store.lock() else {
            return (
                500,
                json!({"error": {"message": "sandbox state poisoned", "code": 2, "is_transient": true}}),
            );
        };
        store.requests += 1;
        let roll: f64 = rand::random();
        let rejection = if roll < faults.error_rate {
            Some(validate::graph_error(
                500,
                2,
                None,
                "An unexpected error has occurred. Please retry your request later.",
                true,
            ))
        } else if roll < faults.error_rate + faults.throttle_rate {
            Some(validate::graph_error(
                400,
                80004,
                Some(2446079),
                "There have been too many calls to this ad-account. Wait a bit and try again.",
                true,
            ))
        } else {
            None
        };
        let result = match rejection {
            Some(e) => Err(e),
            None => validate(body, now).and_then(|events| {
                let bad = events.iter().position(|e| {
                    e.get("event_id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| faults.invalid_event_ids.contains(id))
                });
                match bad {
                    Some(i) => Err(validate::graph_error(
                        400,
                        100,
                        Some(2804019),
                        &format!("Invalid parameter: event {i} is invalid"),
                        false,
                    )),
                    None => Ok(events),
                }
            }),
        };
        match result {
            Err(e) => {
                store.rejected_requests += 1;
                (e.status, e.body)
            }
            Ok(events) => {
                let n = events.len();
                let accepted_at_ms = chrono::Utc::now().timestamp_millis();
                for event in events {
                    if let Some(id) = event.get("event_id").and_then(Value::as_str) {
                        *store.counts.entry(id.to_owned()).or_default() += 1;
                    }
                    store.events.push(Recorded {
                        pixel_id: pixel_id.to_owned(),
                        received_at: now,
                        accepted_at_ms,
                        event,
                    });
                }
                let trace = format!("Sbx{}", uuid::Uuid::new_v4().simple());
                (
                    200,
                    json!({"events_received": n, "messages": [], "fbtrace_id": trace}),
                )
            }
        }
    }

    pub fn stats(&self) -> Value {
        let Ok(s) = self.store.lock() else {
            return Value::Null;
        };
        let duplicated = s.counts.values().filter(|c| **c > 1).count();
        let assistant = self.assistant.stats();
        json!({
            "requests": s.requests,
            "rejected_requests": s.rejected_requests,
            "events_received": s.events.len(),
            "distinct_event_ids": s.counts.len(),
            "duplicated_event_ids": duplicated,
            "chat_requests": assistant["chat_requests"],
            "whatsapp_sent": assistant["whatsapp_sent"],
        })
    }

    pub fn count(&self, event_id: &str) -> u64 {
        self.store
            .lock()
            .ok()
            .and_then(|s| s.counts.get(event_id).copied())
            .unwrap_or(0)
    }
}

async fn post_events(
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
    sb: web::Data<Sandbox>,
) -> HttpResponse {
    let (_version, pixel_id) = path.into_inner();
    let latency = sb.faults().latency_ms;
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    let (status, answer) = sb.events(&pixel_id, &body, chrono::Utc::now().timestamp());
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(code).json(answer)
}

async fn stats(sb: web::Data<Sandbox>) -> HttpResponse {
    HttpResponse::Ok().json(sb.stats())
}

#[derive(Deserialize)]
struct EventsQuery {
    pixel_id: Option<String>,
    limit: Option<usize>,
}

async fn list_events(q: web::Query<EventsQuery>, sb: web::Data<Sandbox>) -> HttpResponse {
    let Ok(s) = sb.store.lock() else {
        return HttpResponse::InternalServerError().finish();
    };
    let matching: Vec<&Recorded> = s
        .events
        .iter()
        .filter(|r| q.pixel_id.as_deref().is_none_or(|p| p == r.pixel_id))
        .collect();
    let limit = q.limit.unwrap_or(100).min(10_000);
    let tail = &matching[matching.len().saturating_sub(limit)..];
    HttpResponse::Ok().json(json!({"total": matching.len(), "events": tail}))
}

async fn event_count(id: web::Path<String>, sb: web::Data<Sandbox>) -> HttpResponse {
    let id = id.into_inner();
    let count = sb.count(&id);
    HttpResponse::Ok().json(json!({"event_id": id, "count": count}))
}

async fn reset(sb: web::Data<Sandbox>) -> HttpResponse {
    if let Ok(mut s) = sb.store.lock() {
        let faults = s.faults.clone();
        *s = Store {
            faults,
            ..Store::default()
        };
    }
    sb.assistant.reset();
    HttpResponse::NoContent().finish()
}

async fn get_faults(sb: web::Data<Sandbox>) -> HttpResponse {
    HttpResponse::Ok().json(sb.faults())
}

async fn put_faults(f: web::Json<Faults>, sb: web::Data<Sandbox>) -> HttpResponse {
    if let Ok(mut s) = sb.store.lock() {
        s.faults = f.into_inner();
    }
    HttpResponse::Ok().json(sb.faults())
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    let json = web::JsonConfig::default()
        .limit(16 * 1024 * 1024)
        .error_handler(|err, _| {
            let body =
                validate::graph_error(400, 100, None, &format!("Invalid parameter: {err}"), false)
                    .body;
            actix_web::error::InternalError::from_response(
                err,
                HttpResponse::BadRequest().json(body),
            )
            .into()
        });
    cfg.app_data(json)
        .configure(assistant::routes)
        .route("/sandbox/stats", web::get().to(stats))
        .route("/sandbox/events", web::get().to(list_events))
        .route("/sandbox/events", web::delete().to(reset))
        .route("/sandbox/events/{event_id}", web::get().to(event_count))
        .route("/sandbox/faults", web::get().to(get_faults))
        .route("/sandbox/faults", web::put().to(put_faults))
        .route("/{version}/{pixel_id}/events", web::post().to(post_events))
        .configure(dataset::routes)
        .configure(subscribed_apps::routes)
        // Last: two free segments would shadow any GET registered after it.
        .route("/{version}/{pixel_id}", web::get().to(get_pixel));
}

/// `GET /{version}/{pixel_id}`: the pixel, as Meta answers a token that may
/// read it. A token containing "expired" is refused (code 190); a pixel id
/// that is not a number does not exist (code 100).
async fn get_pixel(req: actix_web::HttpRequest, path: web::Path<(String, String)>) -> HttpResponse {
    let (_, pixel_id) = path.into_inner();
    if let Err(e) = token_check(&req) {
        return graph_answer(e);
    }
    if pixel_id.is_empty() || !pixel_id.bytes().all(|b| b.is_ascii_digit()) {
        let e = validate::graph_error(
            400,
            100,
            Some(33),
            &format!("Unsupported get request. Object with ID '{pixel_id}' does not exist"),
            false,
        );
        return HttpResponse::BadRequest().json(e.body);
    }
    HttpResponse::Ok().json(json!({"id": pixel_id, "name": "Sandbox pixel"}))
}

/// A Graph call's bearer token as Meta checks it: none → 190; one
/// containing "expired" → 190/463.
pub(crate) fn token_check(req: &actix_web::HttpRequest) -> Result<(), validate::GraphError> {
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if token.is_empty() {
        return Err(validate::graph_error(
            400,
            190,
            None,
            "An access token is required to request this resource.",
            false,
        ));
    }
    if token.contains("expired") {
        return Err(validate::graph_error(
            400,
            190,
            Some(463),
            "Error validating access token: Session has expired.",
            false,
        ));
    }
    Ok(())
}

/// A Graph error as the HTTP answer.
pub(crate) fn graph_answer(e: validate::GraphError) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(e.status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(e.body)
}

/// Serves the sandbox (Meta, the model, Evolution API and the CRMs) on `listener` until the returned server stops.
pub fn serve(
    listener: std::net::TcpListener,
    sandbox: web::Data<Sandbox>,
) -> std::io::Result<actix_web::dev::Server> {
    let crms = web::Data::new(crm::Crms::default());
    let marketing = web::Data::new(marketing::Marketing::default());
    let datasets = web::Data::new(dataset::Datasets::default());
    let webhooks = web::Data::new(evolution_webhook::Webhooks::default());
    let subscriptions = web::Data::new(subscribed_apps::Subscriptions::default());
    Ok(actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(sandbox.clone())
            .app_data(datasets.clone())
            .app_data(crms.clone())
            .app_data(marketing.clone())
            .app_data(webhooks.clone())
            .app_data(subscriptions.clone())
            .configure(evolution_webhook::routes)
            .configure(crm::routes)
            .configure(marketing::routes)
            .configure(routes)
    })
    .workers(2)
    .listen(listener)?
    .run())
}
