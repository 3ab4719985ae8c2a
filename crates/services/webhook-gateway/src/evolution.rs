//! `POST /webhooks/evolution/{instance}`: Evolution API webhooks.
//!
//! Evolution does not sign its webhooks, so each instance has a secret the
//! sender passes in the `X-Webhook-Secret` header (set in Evolution's webhook
//! `headers`) or, for senders that cannot set headers, as `?token=`.

use crate::{State, body, inbound};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, TimeZone, Utc};
use domain::{
    evolution::{self, InboundMessage, Parsed},
    whatsapp_cloud::Channel,
};
use runtime::ApiError;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use storage::conversations::{Author, NewMessage};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        runtime::http::resource("/webhooks/evolution/{instance}", "POST")
            .route(web::post().to(receive)),
    );
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn receive(
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<TokenQuery>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let instance_name = path.into_inner();
    let presented = body::presented_secret(&req, query.into_inner().token);
    let body = body::read(&req, payload, state.body_limits, body::Kind::Json).await?;
    let main = state.main.clone();
    let work = handle(state.into_inner(), instance_name, presented, body);
    let answer = main.run(work).await.map_err(ApiError::unavailable)??;
    Ok(HttpResponse::Ok().json(answer))
}

/// Everything after the body is read, on the main runtime (database work).
async fn handle(
    state: Arc<State>,
    instance_name: String,
    presented: Option<String>,
    body: web::Bytes,
) -> Result<serde_json::Value, ApiError> {
    // One connection for the lookup and the message(s): a webhook costs one
    // checkout from the pool.
    let mut conn = state.conn().await?;
    let instance = storage::directions::instance(&mut conn, state.store.keys(), &instance_name)
        .await
        .map_err(ApiError::unavailable)?
        // A Cloud API number's row is not an Evolution instance.
        .filter(|i| i.channel == Channel::Evolution);
    // An unknown instance and a wrong secret get the same answer.
    let Some(instance) = instance else {
        tracing::warn!(instance = %instance_name, "webhook rejected: no such Evolution instance");
        return Err(body::not_authenticated());
    };
    if !body::secret_matches(presented.as_deref(), Some(&instance.webhook_secret)) {
        tracing::warn!(instance = %instance_name, "webhook rejected: missing or wrong secret");
        return Err(body::not_authenticated());
    }
    let value = body::json(&body)?;
    match evolution::event_name(&value) {
        Some(e) if e == evolution::MESSAGES_UPSERT => {}
        other => {
            let event = other.unwrap_or_else(|| "(none)".into());
            tracing::debug!(instance = %instance_name, %event, "event ignored");
            return Ok(
                json!({"status": "ignored", "reason": format!("event {event} is not handled")}),
            );
        }
    }
    let parsed = evolution::parse_messages_upsert(&value).map_err(|e| match e {
        evolution::ParseError::Limit(l) => body::over_limit(l),
        other => ApiError::new(runtime::ErrorCode::InvalidBody, other.to_string()),
    })?;
    let mut results = Vec::with_capacity(parsed.len());
    for p in parsed {
        match p {
            Parsed::Ignored(reason) => {
                results.push(json!({"status": "ignored", "reason": reason.as_str()}))
            }
            Parsed::Message(m) => {
                let status = store(&state, &mut conn, &instance_name, &m).await?;
                results.push(json!({"status": status, "message_id": m.message_id}));
            }
        }
    }
    Ok(match results.len() {
        1 => results.remove(0),
        _ => json!({"status": "processed", "results": results}),
    })
}

fn sent_at(m: &InboundMessage) -> DateTime<Utc> {
    m.timestamp
        .and_then(|t| Utc.timestamp_opt(t, 0).single())
        .unwrap_or_else(Utc::now)
}

/// One Evolution message as the pipeline records it.
async fn store(
    state: &State,
    conn: &mut storage::AsyncPgConnection,
    instance_name: &str,
    m: &InboundMessage,
) -> Result<&'static str, ApiError> {
    let new = NewMessage {
        instance_name,
        message_id: &m.message_id,
        from_me: m.from_me,
        author: if m.from_me {
            Author::Operator
        } else {
            Author::Customer
        },
        contact_key: m.contact_key(),
        contact_phone: m.phone.as_deref(),
        contact_lid: m.lid.as_deref(),
        contact_name: m.push_name.as_deref(),
        text: m.text.as_deref(),
        message_type: m.message_type.as_deref(),
        sent_at: sent_at(m),
        ctwa_clid: m.ctwa_clid.as_deref(),
        ad_id: m.ad_id.as_deref(),
        from_ad: m.from_ad,
        ad_context: m.ad_context.as_ref(),
    };
    inbound::store(state, conn, new).await
}
