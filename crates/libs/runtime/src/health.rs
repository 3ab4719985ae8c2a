//! `GET /health` (the process is up) and `GET /ready` (it can do its work:
//! database reachable, schema current, broker reachable).

use actix_web::{HttpResponse, web};
use bus::Bus;
use serde_json::json;
use std::sync::Arc;
use storage::DbPool;

use crate::service::MainRuntime;

#[derive(Clone)]
pub struct Readiness {
    pub pool: DbPool,
    pub bus: Arc<Bus>,
    pub main: MainRuntime,
}

impl Readiness {
    /// `(ready, details)`; details name what is wrong, never a secret.
    pub async fn check(&self) -> (bool, serde_json::Value) {
        let database = match self.pool.get().await {
            Ok(mut conn) => match storage::migrations::pending(&mut conn).await {
                Ok(p) if p.is_empty() => Ok("current".to_owned()),
                Ok(p) => Err(format!(
                    "{} migration(s) pending: run `capi migrate`",
                    p.len()
                )),
                Err(_) => Err("schema check failed".to_owned()),
            },
            Err(_) => Err("unreachable".to_owned()),
        };
        let broker = self.bus.check().await;
        let ready = database.is_ok() && broker;
        let db_text = match &database {
            Ok(s) | Err(s) => s.clone(),
        };
        (
            ready,
            json!({
                "status": if ready { "ready" } else { "not_ready" },
                "database": db_text,
                "broker": if broker { "reachable" } else { "unreachable" },
            }),
        )
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

async fn ready(readiness: web::Data<Readiness>) -> HttpResponse {
    let r = readiness.get_ref().clone();
    let (ok, body) = match readiness.main.run(async move { r.check().await }).await {
        Ok(result) => result,
        Err(_) => (
            false,
            json!({"status": "not_ready", "database": "unknown", "broker": "unknown"}),
        ),
    };
    if ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(crate::http::resource("/health", "GET").route(web::get().to(health)))
        .service(crate::http::resource("/ready", "GET").route(web::get().to(ready)));
}
