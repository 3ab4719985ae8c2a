//! `POST /webhooks/amocrm/{connection}` and `POST /webhooks/bitrix24/{connection}`:
//! CRM change webhooks. Each reported change is stored once (a redelivery is
//! recognised by its key) and the answer goes back at once: no CRM is
//! called inside the request (amoCRM waits 2 s at most and disables a hook
//! that fails too often). Each new change is queued (`crm.changed`, through
//! the outbox, in the same transaction) for qualification-agent to evaluate;
//! webhooks arriving together share that transaction (`crm_store.rs`).
//!
//! amoCRM signs nothing: the connection's secret travels in the URL
//! (`?secret=`, or the `X-Webhook-Secret` header), and the body must name the
//! connection's account. Bitrix24 sends `auth[application_token]`, compared
//! in constant time, and `auth[member_id]`, which must be the connection's.

use crate::{State, body, crm_store::Change};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::ids::ConnectionId;
use domain::{
    crm::{amocrm, bitrix24, form::FormError},
    level::CrmType,
};
use runtime::ApiError;
use serde::Deserialize;
use serde_json::{Value, json};
use storage::crm::Connection;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        runtime::http::resource("/webhooks/amocrm/{connection}", "POST")
            .route(web::post().to(amocrm_hook)),
    )
    .service(
        runtime::http::resource("/webhooks/bitrix24/{connection}", "POST")
            .route(web::post().to(bitrix24_hook)),
    );
}

#[derive(Deserialize)]
struct SecretQuery {
    secret: Option<String>,
}

fn invalid_body(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(runtime::ErrorCode::InvalidBody, e.to_string())
}

/// 400 for a body the form reader refused: `limit_exceeded` naming the
/// limit, else `invalid_body` saying why.
fn form_error(e: &FormError) -> ApiError {
    match e {
        FormError::Limit(l) => body::over_limit(*l),
        other => invalid_body(other),
    }
}

async fn amocrm_hook(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<SecretQuery>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let presented = body::presented_secret(&req, query.into_inner().secret);
    let body = body::read(&req, payload, state.body_limits, body::Kind::Form).await?;
    let answer = amocrm_changes(&state, &path.into_inner(), presented, body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

async fn bitrix24_hook(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read(&req, payload, state.body_limits, body::Kind::Form).await?;
    let answer = bitrix24_change(&state, &path.into_inner(), body).await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// The connection named in the URL, if it is one of `crm`
/// (`crm_connections.rs` says how often it is read). An unknown one gets
/// the same 401 as a wrong secret.
async fn connection(state: &State, id: &str, crm: CrmType) -> Result<Connection, ApiError> {
    let unknown = || {
        tracing::warn!(connection = %id, %crm, "CRM webhook rejected: no such connection");
        body::not_authenticated()
    };
    let id: ConnectionId = id.parse().map_err(|_| unknown())?;
    let found = state
        .crm_connections
        .get(id)
        .await
        .map_err(ApiError::unavailable)?;
    found.filter(|c| c.crm_type == crm).ok_or_else(unknown)
}

fn text(body: &web::Bytes) -> Result<&str, ApiError> {
    std::str::from_utf8(body).map_err(|_| invalid_body("the body is not UTF-8 text"))
}

async fn amocrm_changes(
    state: &State,
    connection_id: &str,
    presented: Option<String>,
    body: web::Bytes,
) -> Result<Value, ApiError> {
    let c = connection(state, connection_id, CrmType::AmoCrm).await?;
    if !body::secret_matches(presented.as_deref(), c.webhook_secret.as_ref()) {
        tracing::warn!(connection = %c.id, "amoCRM webhook rejected: missing or wrong secret");
        return Err(body::not_authenticated());
    }
    let hook = amocrm::parse_webhook(text(&body)?).map_err(|e| match &e {
        amocrm::WebhookError::Form(f) => form_error(f),
        other => invalid_body(other),
    })?;
    // What the connection expects must be what the body says (nothing
    // expected: anything goes).
    let same = |expected: &Option<String>, said: &Option<String>| {
        expected
            .as_ref()
            .is_none_or(|e| said.as_ref().is_some_and(|s| e.eq_ignore_ascii_case(s)))
    };
    if !same(&c.account_subdomain, &hook.account.subdomain)
        || (hook.account.id.is_some() && !same(&c.account_id, &hook.account.id))
    {
        tracing::warn!(connection = %c.id, subdomain = ?hook.account.subdomain, "amoCRM webhook rejected: another account");
        return Err(body::unauthorized(
            "the webhook is from another amoCRM account than the connection's",
        ));
    }
    let changes: Vec<Change> = hook
        .changes
        .iter()
        .filter_map(|ch| {
            Some(Change {
                entity: ch.entity.clone(),
                action: ch.action.clone(),
                entity_id: ch.id.clone()?,
                key: ch.key(),
                change: json!(ch),
            })
        })
        .collect();
    if changes.is_empty() {
        return Err(invalid_body("no change in the body carries an [id]"));
    }
    let n = changes.len();
    let new = store(state, c.id, changes).await?;
    tracing::info!(connection = %c.id, changes = n, new, "amoCRM changes stored");
    Ok(json!({"status": "stored", "changes": n, "new": new}))
}
/// Stores the changes and queues each new one for evaluation (one
/// transaction, shared with whatever other webhooks came meanwhile); how
/// many were new.
async fn store(
    state: &State,
    connection_id: ConnectionId,
    changes: Vec<Change>,
) -> Result<usize, ApiError> {
    state
        .changes
        .store(connection_id, changes)
        .await
        .map_err(ApiError::unavailable)
}

async fn bitrix24_change(
    state: &State,
    connection_id: &str,
    body: web::Bytes,
) -> Result<Value, ApiError> {
    // The token is in the body, so the body must be read to authenticate;
    // an unknown connection is refused before it is (the same 401 as a
    // wrong token).
    let c = connection(state, connection_id, CrmType::Bitrix24).await?;
    let event = bitrix24::parse_event(text(&body)?).map_err(|e| match &e {
        bitrix24::EventError::Form(f) => form_error(f),
        other => invalid_body(other),
    })?;
    let member_ok = c.member_id.is_none() || c.member_id == event.member_id;
    if !body::secret_matches(
        event.application_token.as_deref(),
        c.application_token.as_ref(),
    ) || !member_ok
    {
        tracing::warn!(connection = %c.id, domain = ?event.domain, "Bitrix24 event rejected: wrong application token or portal");
        return Err(body::not_authenticated());
    }
    let (Some(entity), Some(action)) = (&event.entity, &event.action) else {
        return Ok(
            json!({"status": "ignored", "reason": format!("event {} is not a CRM change", event.event)}),
        );
    };
    let id = event
        .id
        .as_deref()
        .ok_or_else(|| invalid_body("no data[FIELDS][ID] in the event"))?;
    let change = Change {
        entity: entity.clone(),
        action: action.clone(),
        entity_id: id.to_owned(),
        key: event.key(),
        change: json!(event),
    };
    let new = store(state, c.id, vec![change]).await?;
    tracing::info!(connection = %c.id, %entity, %action, new, "Bitrix24 change stored");
    Ok(json!({"status": "stored", "changes": 1, "new": new}))
}
