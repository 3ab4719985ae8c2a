//! A WhatsApp Business Account's subscribed apps, as Meta's Graph API
//! serves them: `POST /{version}/{waba_id}/subscribed_apps` subscribes the
//! token's app (idempotent, `{"success": true}`); `GET` lists them
//! (`{"data": [{"whatsapp_business_api_data": {"id", "name"}}]}`). No
//! token, or one containing "expired" → 190; a WABA id that is not a
//! number does not exist (100/33). The sandbox's one app is `SANDBOX_APP`.

use crate::{dataset::checked, graph_answer};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use std::{collections::BTreeSet, sync::Mutex};

pub const SANDBOX_APP: &str = "700800900";

/// The WABAs the sandbox's app is subscribed to.
#[derive(Default)]
pub struct Subscriptions(Mutex<BTreeSet<String>>);

async fn subscribe(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    subs: web::Data<Subscriptions>,
) -> HttpResponse {
    let (_, waba) = path.into_inner();
    if let Err(e) = checked(&req, &waba) {
        return graph_answer(e);
    }
    if let Ok(mut s) = subs.0.lock() {
        s.insert(waba);
    }
    HttpResponse::Ok().json(json!({"success": true}))
}

async fn list(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    subs: web::Data<Subscriptions>,
) -> HttpResponse {
    let (_, waba) = path.into_inner();
    if let Err(e) = checked(&req, &waba) {
        return graph_answer(e);
    }
    let subscribed = subs.0.lock().map(|s| s.contains(&waba)).unwrap_or(false);
    let data: Vec<_> = subscribed
        .then(|| json!({"whatsapp_business_api_data": {"id": SANDBOX_APP, "name": "Sandbox app"}}))
        .into_iter()
        .collect();
    HttpResponse::Ok().json(json!({"data": data}))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/{version}/{waba_id}/subscribed_apps",
        web::post().to(subscribe),
    )
    .route("/{version}/{waba_id}/subscribed_apps", web::get().to(list));
}
