//! Evolution API's webhook settings, as v2 answers them
//! (shared/research/evolution-api-and-whatsapp-webhooks.md §2.1):
//! `POST /webhook/set/{instance}` and `GET /webhook/find/{instance}`.
//! Refused as Evolution refuses: no `apikey` header (or one containing
//! "wrong") → 401; a body without `webhook.enabled` (boolean) and
//! `webhook.url` (an http(s) URL), or with an event Evolution does not
//! know → 400 with its `{status, error, response: {message: [..]}}` shape.
//! An instance named `missing…` does not exist → 404. The flat v1 body is
//! taken too (a v1 server's form). `GET /sandbox/evolution/webhooks` shows
//! tests what each instance holds, headers included.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;

/// Events an Evolution v2 webhook may subscribe to (its `Events` enum, a subset).
const EVENTS: &[&str] = &[
    "APPLICATION_STARTUP",
    "QRCODE_UPDATED",
    "MESSAGES_SET",
    "MESSAGES_UPSERT",
    "MESSAGES_EDITED",
    "MESSAGES_UPDATE",
    "MESSAGES_DELETE",
    "SEND_MESSAGE",
    "CONTACTS_UPSERT",
    "CONTACTS_UPDATE",
    "PRESENCE_UPDATE",
    "CHATS_UPSERT",
    "CHATS_UPDATE",
    "CHATS_DELETE",
    "CONNECTION_UPDATE",
    "CALL",
];

#[derive(Default)]
pub struct Webhooks(Mutex<HashMap<String, Value>>);

fn error(status: u16, error: &str, message: Value) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
    )
    .json(json!({"status": status, "error": error, "response": {"message": message}}))
}

/// Evolution's refusal of the call, if it refuses it.
fn refusal(req: &HttpRequest, instance: &str) -> Option<HttpResponse> {
    let key = req
        .headers()
        .get("apikey")
        .and_then(|k| k.to_str().ok())
        .unwrap_or_default();
    if key.trim().is_empty() || key.contains("wrong") {
        return Some(error(401, "Unauthorized", json!("Unauthorized")));
    }
    if instance.starts_with("missing") {
        return Some(error(
            404,
            "Not Found",
            json!([format!("The \"{instance}\" instance does not exist")]),
        ));
    }
    None
}

async fn set(
    req: HttpRequest,
    instance: web::Path<String>,
    body: web::Json<Value>,
    hooks: web::Data<Webhooks>,
) -> HttpResponse {
    if let Some(r) = refusal(&req, &instance) {
        return r;
    }
    // v2 nests the settings under `webhook`; v1 sends them flat.
    let w = body.get("webhook").unwrap_or(&body);
    let mut problems = Vec::new();
    if !w.get("enabled").is_some_and(Value::is_boolean) {
        problems.push("instance requires property \"enabled\"".to_owned());
    }
    let url = w.get("url").and_then(Value::as_str).unwrap_or_default();
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        problems.push("instance requires property \"url\" (a URL)".to_owned());
    }
    let events: Vec<String> = w
        .get("events")
        .and_then(Value::as_array)
        .map(|e| {
            e.iter()
                .map(|v| v.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default();
    for e in &events {
        if !EVENTS.contains(&e.as_str()) {
            problems.push(format!("events: {e:?} is not an event"));
        }
    }
    if !problems.is_empty() {
        return error(400, "Bad Request", json!(problems));
    }
    let enabled = w["enabled"].as_bool().unwrap_or(false);
    // enabled with no events: all of them; disabled: none.
    let events: Vec<String> = match (enabled, events.is_empty()) {
        (false, _) => Vec::new(),
        (true, true) => EVENTS.iter().map(|e| (*e).to_owned()).collect(),
        (true, false) => events,
    };
    let stored = json!({
        "id": uuid::Uuid::new_v4().to_string(),
        "url": url,
        "headers": w.get("headers").cloned().unwrap_or(Value::Null),
        "enabled": enabled,
        "events": events,
        "webhookByEvents": w.get("byEvents").or(w.get("webhook_by_events")).cloned().unwrap_or(json!(false)),
        "webhookBase64": w.get("base64").or(w.get("webhook_base64")).cloned().unwrap_or(json!(false)),
        "instanceId": instance.as_str(),
    });
    if let Ok(mut h) = hooks.0.lock() {
        h.insert(instance.into_inner(), stored.clone());
    }
    HttpResponse::Created().json(stored)
}

async fn find(
    req: HttpRequest,
    instance: web::Path<String>,
    hooks: web::Data<Webhooks>,
) -> HttpResponse {
    if let Some(r) = refusal(&req, &instance) {
        return r;
    }
    let found = hooks
        .0
        .lock()
        .ok()
        .and_then(|h| h.get(instance.as_str()).cloned());
    HttpResponse::Ok().json(found.unwrap_or(Value::Null))
}

async fn list(hooks: web::Data<Webhooks>) -> HttpResponse {
    let all = hooks.0.lock().map(|h| json!(h.clone())).unwrap_or_default();
    HttpResponse::Ok().json(all)
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhook/set/{instance}", web::post().to(set))
        .route("/webhook/find/{instance}", web::get().to(find))
        .route("/sandbox/evolution/webhooks", web::get().to(list));
}
