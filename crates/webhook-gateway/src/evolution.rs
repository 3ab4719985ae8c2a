//! `POST /webhooks/evolution/{instance}`: Evolution API webhooks.
//!
//! Evolution does not sign its webhooks, so each instance has a secret the
//! sender passes in the `X-Webhook-Secret` header (set in Evolution's webhook
//! `headers`) or, for senders that cannot set headers, as `?token=`.

use crate::{State, body};
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use bus::messages::{BusMessage, MessageReceived, encode};
use chrono::{DateTime, TimeZone, Utc};
use diesel_async::AsyncConnection;
use domain::evolution::{self, InboundMessage, Parsed};
use runtime::ApiError;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use storage::conversations::{self, Author, NewMessage, Recorded};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/evolution/{instance}", web::post().to(receive));
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
    let body = body::read(&req, payload, state.max_body_bytes).await?;
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
    let mut conn = state.pool.get().await.map_err(ApiError::unavailable)?;
    let instance = storage::directions::instance(&mut conn, &instance_name)
        .await
        .map_err(ApiError::unavailable)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_instance",
                format!("no WhatsApp instance named '{instance_name}'"),
            )
        })?;
    if !body::secret_matches(presented.as_deref(), Some(&instance.webhook_secret)) {
        tracing::warn!(instance = %instance_name, "webhook rejected: missing or wrong secret");
        return Err(body::unauthorized(format!(
            "missing or wrong webhook secret (header {} or ?token=)",
            body::SECRET_HEADER
        )));
    }
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("body is not valid JSON: {e}"),
        )
    })?;
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
    let parsed = evolution::parse_messages_upsert(&value)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_payload", e.to_string()))?;
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

/// Stores one message and queues the buffer step in the same transaction.
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
        from_ad: m.from_ad,
        ad_context: m.ad_context.as_ref(),
    };
    let received_at_ms = Some(chrono::Utc::now().timestamp_millis());
    let recorded = conn
        .transaction::<_, storage::DbError, _>(async |conn| {
            let recorded = conversations::record_message(conn, &new).await?;
            if let Recorded::Stored {
                dialog_id,
                buffer_seq: Some(seq),
            } = recorded
            {
                let msg = MessageReceived {
                    dialog_id,
                    seq,
                    received_at_ms,
                };
                storage::outbox::enqueue(conn, MessageReceived::ROUTING_KEY, &encode(&msg), 0)
                    .await?;
            }
            Ok(recorded)
        })
        .await
        .map_err(ApiError::unavailable)?;
    match recorded {
        Recorded::Duplicate => {
            tracing::debug!(instance = %instance_name, message_id = %m.message_id, "duplicate webhook ignored");
            Ok("duplicate")
        }
        Recorded::Stored { dialog_id, .. } => {
            state.outbox_wake.notify_one();
            tracing::info!(
                instance = %instance_name, %dialog_id, message_id = %m.message_id, from_me = m.from_me,
                has_ctwa_clid = m.ctwa_clid.is_some(), from_ad = m.from_ad, "message stored"
            );
            Ok("stored")
        }
    }
}
