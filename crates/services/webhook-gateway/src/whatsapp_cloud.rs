//! `/webhooks/whatsapp-cloud`: Meta's WhatsApp Cloud API webhooks.
//!
//! `GET` answers the subscription handshake with the configured verify
//! token. `POST` checks `X-Hub-Signature-256` over the raw body against the
//! configured app secrets before anything is parsed (401, nothing stored,
//! when it does not hold), then checks that every number the body names
//! belongs to an app that signed it (a number mapped with `--app`, or the
//! only app configured), then stores every message of every entry and
//! change; statuses and other fields are acknowledged and ignored. Meta
//! retries for days, so a repeat (same wamid) is a 200 that stores nothing.

use crate::{State, body, inbound};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{TimeZone, Utc};
use domain::whatsapp_cloud::{self, CloudMessage, CloudParseError};
use runtime::ApiError;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use std::{collections::HashMap, sync::Arc};
use storage::{
    cloud_numbers::{self, CloudNumber},
    conversations::{Author, NewMessage},
};
use subtle::ConstantTimeEq;

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// What the Cloud API endpoint checks requests against.
pub struct CloudAuth {
    verify_token: SecretString,
    /// (Meta app id, its secret); the id is empty for a secret given alone.
    app_secrets: Vec<(String, SecretString)>,
}

impl CloudAuth {
    /// `app_secrets` is comma-separated, one `APP_ID=SECRET` per Meta app
    /// (a bare `SECRET` is an app without an id: fine when it is the only one).
    pub fn new(verify_token: &SecretString, app_secrets: &SecretString) -> CloudAuth {
        CloudAuth {
            verify_token: verify_token.clone(),
            app_secrets: app_secrets
                .expose_secret()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|entry| match entry.split_once('=') {
                    Some((app, secret)) => (app.trim().to_owned(), secret.trim().into()),
                    None => (String::new(), entry.into()),
                })
                .collect(),
        }
    }

    pub fn has_app_secret(&self) -> bool {
        !self.app_secrets.is_empty()
    }

    pub fn has_verify_token(&self) -> bool {
        !self.verify_token.expose_secret().is_empty()
    }

    /// The apps whose secret signed `body` (none: not signed by any).
    fn signers(&self, body: &[u8], header: Option<&str>) -> Vec<String> {
        self.app_secrets
            .iter()
            .filter(|(_, secret)| {
                whatsapp_cloud::signature_valid(&[secret.expose_secret().as_bytes()], body, header)
            })
            .map(|(app, _)| app.clone())
            .collect()
    }

    /// May a webhook signed by `signers` speak for a number bound to
    /// `number_app`? A bound number: only its app. An unbound one: only
    /// when one app is configured (nothing to confuse it with).
    fn may_speak_for(&self, signers: &[String], number_app: Option<&str>) -> bool {
        match number_app {
            Some(app) => signers.iter().any(|s| s == app),
            None => self.app_secrets.len() == 1,
        }
    }
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        runtime::http::resource("/webhooks/whatsapp-cloud", "GET, POST")
            .route(web::get().to(handshake))
            .route(web::post().to(receive)),
    );
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// `hub.mode=subscribe` with the configured token → 200 with the challenge
/// as the body; anything else → 403.
async fn handshake(query: web::Query<Handshake>, state: web::Data<State>) -> HttpResponse {
    let q = query.into_inner();
    let expected = state.cloud.verify_token.expose_secret().as_bytes();
    let token_ok = q
        .verify_token
        .as_deref()
        .is_some_and(|t| !expected.is_empty() && bool::from(t.as_bytes().ct_eq(expected)));
    match (q.mode.as_deref(), token_ok, q.challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            tracing::info!("WhatsApp Cloud API webhook subscription verified");
            HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body(challenge)
        }
        _ => {
            tracing::warn!("WhatsApp Cloud API subscription refused: wrong mode or verify token");
            actix_web::ResponseError::error_response(&ApiError::new(
                runtime::ErrorCode::Forbidden,
                "hub.mode must be subscribe and hub.verify_token the configured token",
            ))
        }
    }
}

async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let body = body::read(&req, payload, state.body_limits, body::Kind::Json).await?;
    let header = req
        .headers()
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let signers = state.cloud.signers(&body, header);
    if signers.is_empty() {
        tracing::warn!(
            has_header = header.is_some(),
            "WhatsApp Cloud API webhook rejected: missing or wrong signature"
        );
        return Err(body::unauthorized(
            "missing or wrong X-Hub-Signature-256 (HMAC-SHA256 of the body with the app secret)",
        ));
    }
    let main = state.main.clone();
    let answer = main
        .run(handle(state.into_inner(), body, signers))
        .await
        .map_err(ApiError::unavailable)??;
    Ok(HttpResponse::Ok().json(answer))
}

/// After the signature held: parse and store, on the main runtime.
async fn handle(
    state: Arc<State>,
    body: web::Bytes,
    signers: Vec<String>,
) -> Result<serde_json::Value, ApiError> {
    let value = body::json(&body)?;
    let messages = match whatsapp_cloud::parse(&value) {
        Ok(m) => m,
        Err(CloudParseError::NotWhatsApp(object)) => {
            // Another product's webhook (a Page, Instagram) sent here: retrying
            // it would not help.
            tracing::warn!(%object, "webhook of another object ignored");
            return Ok(
                json!({"status": "ignored", "reason": format!("object {object:?} is not whatsapp_business_account")}),
            );
        }
        Err(CloudParseError::Limit(l)) => return Err(body::over_limit(l)),
        Err(e) => {
            return Err(ApiError::new(
                runtime::ErrorCode::InvalidBody,
                e.to_string(),
            ));
        }
    };
    if messages.is_empty() {
        tracing::debug!("statuses or other fields acknowledged");
        return Ok(json!({"status": "ignored", "reason": "no messages"}));
    }
    let mut conn = state.conn().await?;
    // Every number the body names must be one the signing app may speak
    // for, before anything of it is stored.
    let mut checked = std::collections::HashSet::new();
    for m in &messages {
        if !checked.insert(m.phone_number_id.as_str()) {
            continue;
        }
        let known = cloud_numbers::number(&mut conn, &m.phone_number_id)
            .await
            .map_err(ApiError::unavailable)?;
        let bound = known.as_ref().and_then(|n| n.meta_app_id.as_deref());
        if known.is_some() && !state.cloud.may_speak_for(&signers, bound) {
            tracing::warn!(phone_number_id = %m.phone_number_id, "WhatsApp Cloud API webhook rejected: signed by an app the number is not mapped under");
            return Err(body::unauthorized(
                "the webhook is not signed by the Meta app this number is mapped under",
            ));
        }
    }
    // A number seen first here is noted under the app that signed (if one did).
    let signer = match signers.as_slice() {
        [one] if !one.is_empty() => Some(one.as_str()),
        _ => None,
    };
    let mut numbers: HashMap<String, CloudNumber> = HashMap::new();
    let mut results = Vec::with_capacity(messages.len());
    for m in &messages {
        if !numbers.contains_key(&m.phone_number_id) {
            let n = cloud_numbers::note_webhook_number(
                &mut conn,
                &m.phone_number_id,
                &m.waba_id,
                signer,
            )
            .await
            .map_err(ApiError::unavailable)?;
            if n.direction_id.is_none() {
                tracing::warn!(phone_number_id = %m.phone_number_id, "message for a Cloud API number without a direction: stored; map it with `capi number map`");
            }
            numbers.insert(m.phone_number_id.clone(), n);
        }
        let Some(number) = numbers.get(&m.phone_number_id) else {
            continue;
        };
        let Some(new) = new_message(&number.instance_name, m) else {
            tracing::warn!(message_id = %m.message_id, "Cloud API message without a phone or user id ignored");
            results.push(
                json!({"status": "ignored", "reason": "no_sender", "message_id": m.message_id}),
            );
            continue;
        };
        let status = inbound::store(&state, &mut conn, new).await?;
        results.push(json!({"status": status, "message_id": m.message_id}));
    }
    Ok(json!({"status": "processed", "results": results}))
}

/// A Cloud message as the pipeline records it: the contact keyed on the
/// phone, else on the business-scoped user id (kept as the contact's
/// other id, so a later message with only the user id finds the dialog).
/// `None` for a message naming neither (nobody to keep a dialog with).
fn new_message<'a>(instance_name: &'a str, m: &'a CloudMessage) -> Option<NewMessage<'a>> {
    let contact_key = m.phone.as_deref().or(m.user_id.as_deref())?;
    Some(NewMessage {
        instance_name,
        message_id: &m.message_id,
        from_me: false,
        author: Author::Customer,
        contact_key,
        contact_phone: m.phone.as_deref(),
        contact_lid: m.user_id.as_deref(),
        contact_name: m.push_name.as_deref(),
        text: m.text.as_deref(),
        message_type: m.message_type.as_deref(),
        sent_at: Utc
            .timestamp_opt(m.timestamp, 0)
            .single()
            .unwrap_or_else(Utc::now),
        ctwa_clid: m.ctwa_clid.as_deref(),
        ad_id: m.ad_id.as_deref(),
        from_ad: m.from_ad,
        ad_context: m.ad_context.as_ref(),
    })
}
