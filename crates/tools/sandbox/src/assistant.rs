//! The sandbox's stand-ins for the bot's two outside services: an
//! OpenAI-compatible `POST /v1/chat/completions` that answers
//! deterministically (replies, and qualification by `qualify.rs`), and Evolution API's `POST /message/sendText/{instance}`
//! that records what would have reached WhatsApp.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{sync::Mutex, time::Duration};

/// How the fake model misbehaves.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmFaults {
    /// Added to every chat completion.
    pub latency_ms: u64,
    /// The next this many chat requests are answered 503.
    pub fail_next: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SentText {
    pub instance: String,
    pub number: String,
    pub text: String,
    pub received_at_ms: i64,
}

#[derive(Default)]
struct State {
    faults: LlmFaults,
    chat_requests: u64,
    sent: Vec<SentText>,
}

#[derive(Default)]
pub struct Assistant {
    state: Mutex<State>,
}

/// The newest `user` message's text ("" when there is none).
pub(crate) fn last_user_content(messages: &[Value]) -> &str {
    messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The deterministic answer to a conversation: it quotes the customer's
/// newest message, so a reader can see which message it answers.
pub fn answer(messages: &[Value]) -> String {
    let last = last_user_content(messages);
    format!(
        "Thank you for your message (\u{201c}{}\u{201d}). A specialist will help you shortly. Would you like to book a consultation?",
        last.chars().take(200).collect::<String>()
    )
}

impl Assistant {
    pub fn new(faults: LlmFaults) -> Assistant {
        Assistant {
            state: Mutex::new(State {
                faults,
                ..State::default()
            }),
        }
    }

    pub fn stats(&self) -> Value {
        self.state
            .lock()
            .map(|s| json!({"chat_requests": s.chat_requests, "whatsapp_sent": s.sent.len()}))
            .unwrap_or(Value::Null)
    }

    pub fn reset(&self) {
        if let Ok(mut s) = self.state.lock() {
            let faults = s.faults.clone();
            *s = State {
                faults,
                ..State::default()
            };
        }
    }
}

fn error(status: u16, message: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(code)
        .json(json!({"error": {"message": message, "type": "invalid_request_error"}}))
}

async fn chat(body: web::Json<Value>, a: web::Data<crate::Sandbox>) -> HttpResponse {
    let (latency, fail) = match a.assistant.state.lock() {
        Ok(mut s) => {
            s.chat_requests += 1;
            let fail = s.faults.fail_next > 0;
            if fail {
                s.faults.fail_next -= 1;
            }
            (s.faults.latency_ms, fail)
        }
        Err(_) => (0, true),
    };
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    if fail {
        return error(503, "The sandbox model is unavailable (injected fault).");
    }
    let Some(messages) = body.get("messages").and_then(Value::as_array) else {
        return error(400, "'messages' is required");
    };
    if body
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return error(400, "'model' is required");
    }
    // Structured requests get their schema's answer: qualification
    // (keyword rules) or an onboarding prompt draft.
    let schema = body
        .pointer("/response_format/json_schema/name")
        .and_then(Value::as_str);
    let content = match schema {
        Some("qualification") => crate::qualify::analysis(messages).to_string(),
        Some("qualification_prompt") => crate::qualify::draft(messages).to_string(),
        _ => answer(messages),
    };
    let prompt_chars: usize = messages
        .iter()
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .map(str::len)
        .sum();
    HttpResponse::Ok().json(json!({
        "id": format!("chatcmpl-sandbox-{}", uuid::Uuid::new_v4().simple()),
        "object": "chat.completion",
        "model": body.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_chars.div_ceil(4),
            "completion_tokens": content.len().div_ceil(4),
            "total_tokens": (prompt_chars + content.len()).div_ceil(4)
        }
    }))
}

async fn send_text(
    req: HttpRequest,
    instance: web::Path<String>,
    body: web::Json<Value>,
    a: web::Data<crate::Sandbox>,
) -> HttpResponse {
    let has_key = req
        .headers()
        .get("apikey")
        .and_then(|k| k.to_str().ok())
        .is_some_and(|k| !k.trim().is_empty());
    if !has_key {
        return HttpResponse::Unauthorized()
            .json(json!({"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}}));
    }
    let number = body.get("number").and_then(Value::as_str).unwrap_or("");
    // v2: {"number","text"}; v1: {"number","textMessage":{"text"}}
    let text = body
        .get("text")
        .or_else(|| body.pointer("/textMessage/text"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if number.trim().is_empty() || text.trim().is_empty() {
        return HttpResponse::BadRequest().json(json!({
            "status": 400, "error": "Bad Request",
            "response": {"message": ["number and text are required"]}
        }));
    }
    let now = chrono::Utc::now();
    let id = format!(
        "SB{}",
        uuid::Uuid::new_v4().simple().to_string()[..18].to_uppercase()
    );
    if let Ok(mut s) = a.assistant.state.lock() {
        s.sent.push(SentText {
            instance: instance.into_inner(),
            number: number.to_owned(),
            text: text.to_owned(),
            received_at_ms: now.timestamp_millis(),
        });
    }
    let jid = if number.contains('@') {
        number.to_owned()
    } else {
        format!("{number}@s.whatsapp.net")
    };
    HttpResponse::Created().json(json!({
        "key": {"remoteJid": jid, "fromMe": true, "id": id},
        "message": {"conversation": text},
        "messageType": "conversation",
        "messageTimestamp": now.timestamp(),
        "status": "PENDING"
    }))
}

#[derive(Deserialize)]
struct SentQuery {
    instance: Option<String>,
}

async fn list_sent(q: web::Query<SentQuery>, a: web::Data<crate::Sandbox>) -> HttpResponse {
    let sent: Vec<SentText> = a
        .assistant
        .state
        .lock()
        .map(|s| {
            s.sent
                .iter()
                .filter(|m| q.instance.as_deref().is_none_or(|i| i == m.instance))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    HttpResponse::Ok().json(json!({"total": sent.len(), "messages": sent}))
}

async fn get_faults(a: web::Data<crate::Sandbox>) -> HttpResponse {
    let f = a
        .assistant
        .state
        .lock()
        .map(|s| s.faults.clone())
        .unwrap_or_default();
    HttpResponse::Ok().json(f)
}

async fn put_faults(f: web::Json<LlmFaults>, a: web::Data<crate::Sandbox>) -> HttpResponse {
    if let Ok(mut s) = a.assistant.state.lock() {
        s.faults = f.into_inner();
    }
    get_faults(a).await
}

/// The WhatsApp Cloud API's `POST /{version}/{phone_number_id}/messages`
/// for a text: a Bearer token is required (else Graph's 190); `to` or
/// `recipient` and `text.body` are required (else 100). Recorded with the
/// number's instance name (`cloud-<id>`), listed by `/sandbox/whatsapp/sent`.
async fn cloud_send(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
    a: web::Data<crate::Sandbox>,
) -> HttpResponse {
    let (_, phone_number_id) = path.into_inner();
    let has_token = req
        .headers()
        .get("authorization")
        .and_then(|k| k.to_str().ok())
        .and_then(|k| k.strip_prefix("Bearer "))
        .is_some_and(|k| !k.trim().is_empty());
    if !has_token {
        let e = crate::validate::graph_error(
            401,
            190,
            None,
            "An access token is required to request this resource.",
            false,
        );
        return HttpResponse::Unauthorized().json(e.body);
    }
    let to = body
        .get("to")
        .or_else(|| body.get("recipient"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let text = body
        .pointer("/text/body")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp")
        || to.trim().is_empty()
        || text.trim().is_empty()
    {
        let e = crate::validate::graph_error(
            400,
            100,
            None,
            "(#100) messaging_product, to (or recipient) and text.body are required",
            false,
        );
        return HttpResponse::BadRequest().json(e.body);
    }
    let now = chrono::Utc::now();
    if let Ok(mut s) = a.assistant.state.lock() {
        s.sent.push(SentText {
            instance: domain::whatsapp_cloud::instance_name(&phone_number_id),
            number: to.to_owned(),
            text: text.to_owned(),
            received_at_ms: now.timestamp_millis(),
        });
    }
    let wamid = format!("wamid.SB{}", uuid::Uuid::new_v4().simple());
    HttpResponse::Ok().json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid}]
    }))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/chat/completions", web::post().to(chat))
        .route("/message/sendText/{instance}", web::post().to(send_text))
        .route(
            "/{version}/{phone_number_id}/messages",
            web::post().to(cloud_send),
        )
        .route("/sandbox/whatsapp/sent", web::get().to(list_sent))
        .route("/sandbox/llm/faults", web::get().to(get_faults))
        .route("/sandbox/llm/faults", web::put().to(put_faults));
}
