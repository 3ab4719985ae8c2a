//! The WhatsApp Business Account's dataset, as Meta's Graph API serves it
//! (research `meta-capi-business-messaging.md` §1.1): one dataset per WABA;
//! `POST /{version}/{waba_id}/dataset` creates it or returns the existing
//! one (`{id}`), `GET` reads it (`{"data": [{"id": …}]}`, empty before one
//! was made). A WABA id that is not a number does not exist (100/33).

use crate::{graph_answer, token_check, validate};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use std::{collections::HashMap, sync::Mutex};

/// WABA id → dataset id (one per server: `serve` shares it across workers).
#[derive(Default)]
pub struct Datasets(Mutex<HashMap<String, String>>);

impl Datasets {
    /// Gives `waba` a dataset with this id (a test's "already linked" WABA).
    pub fn link(&self, waba: &str, dataset: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(waba.to_owned(), dataset.to_owned());
        }
    }

    fn get(&self, waba: &str) -> Option<String> {
        self.0.lock().ok().and_then(|m| m.get(waba).cloned())
    }

    fn get_or_create(&self, waba: &str) -> String {
        let mut m = match self.0.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let next = format!("9{:014}", m.len() + 1);
        m.entry(waba.to_owned()).or_insert(next).clone()
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/{version}/{waba_id}/dataset", web::get().to(read))
        .route("/{version}/{waba_id}/dataset", web::post().to(create));
}

/// A WABA call's token and id, as Meta checks them (shared by the WABA's
/// edges: `dataset`, `subscribed_apps`).
pub(crate) fn checked(req: &HttpRequest, waba: &str) -> Result<(), validate::GraphError> {
    token_check(req)?;
    if waba.is_empty() || !waba.bytes().all(|b| b.is_ascii_digit()) {
        return Err(validate::graph_error(
            400,
            100,
            Some(33),
            &format!("Unsupported request. Object with ID '{waba}' does not exist"),
            false,
        ));
    }
    Ok(())
}

async fn read(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    datasets: web::Data<Datasets>,
) -> HttpResponse {
    let (_, waba) = path.into_inner();
    if let Err(e) = checked(&req, &waba) {
        return graph_answer(e);
    }
    let data: Vec<_> = datasets
        .get(&waba)
        .map(|id| json!({"id": id, "name": format!("WABA {waba} dataset")}))
        .into_iter()
        .collect();
    HttpResponse::Ok().json(json!({ "data": data }))
}

async fn create(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    datasets: web::Data<Datasets>,
) -> HttpResponse {
    let (_, waba) = path.into_inner();
    if let Err(e) = checked(&req, &waba) {
        return graph_answer(e);
    }
    HttpResponse::Ok().json(json!({ "id": datasets.get_or_create(&waba) }))
}
