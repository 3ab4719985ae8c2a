//! A fake Bitrix24 portal: REST through an incoming webhook
//! (`/rest/{user}/{secret}/{method}.json`) or an OAuth app
//! (`/rest/{method}.json?auth=…`), `crm.{deal,lead,contact}.get`,
//! `crm.deal.contact.items.get`, `crm.{entity}.fields`; the leaky bucket
//! (2 requests/s, burst 50, then `503 QUERY_LIMIT_EXCEEDED`); `expired_token`
//! for a stale OAuth token, `GET /oauth/authorize/` (the app's consent: back
//! to its redirect URI at once with a single-use code, the state, `domain`
//! and `member_id`) and `GET /oauth/token/` for the code's first pair or a
//! refresh — and the
//! `ONCRM{ENTITY}UPDATE` event posted when an entity is put in.
//!
//! Set up (sandbox only):
//! - `PUT /sandbox/bitrix24/portal` — domain, member id, tokens, handler URL
//! - `PUT /sandbox/bitrix24/{entity}/{id}` — `{"fields": {…}, "contacts": [{CONTACT_ID, IS_PRIMARY}]}`;
//!   fires the update event to the handler URL when one is set
//! - `POST /sandbox/bitrix24/{entity}/{id}/redeliver` — the entity's last event again
//! - `PUT /sandbox/bitrix24/fields/{entity}` — what `crm.{entity}.fields` answers

use super::{ActiveFaults, CrmFaults, Meter, fire, form, poisoned};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

/// The leaky bucket of a non-Enterprise cloud portal.
pub const BURST: f64 = 50.0;
pub const DRAIN_PER_SECOND: f64 = 2.0;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Portal {
    pub domain: String,
    pub member_id: String,
    /// What the portal's events carry in `auth[application_token]`.
    pub application_token: String,
    /// The incoming webhook: `/rest/{user_id}/{webhook_secret}/`.
    pub user_id: String,
    pub webhook_secret: String,
    /// OAuth app: the one access token accepted, and the refresh token.
    pub access_token: String,
    pub refresh_token: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where entity updates are posted (the connection's handler URL).
    pub handler_url: String,
    /// The app's redirect URI (its handler for the authorisation).
    pub redirect_uri: String,
}

#[derive(Default)]
struct Bucket {
    level: f64,
    at: Option<Instant>,
    max_level: f64,
}

impl Bucket {
    /// Adds one request unless the bucket is full.
    fn admit(&mut self, now: Instant) -> bool {
        let drained = self.at.map_or(0.0, |t| {
            now.duration_since(t).as_secs_f64() * DRAIN_PER_SECOND
        });
        self.level = (self.level - drained).max(0.0);
        self.at = Some(now);
        if self.level + 1.0 > BURST {
            return false;
        }
        self.level += 1.0;
        self.max_level = self.max_level.max(self.level);
        true
    }
}

#[derive(Default)]
struct State {
    portal: Portal,
    /// (entity, id) → fields.
    entities: BTreeMap<(String, String), Value>,
    deal_contacts: HashMap<String, Value>,
    fields: HashMap<String, Value>,
    last_event: HashMap<(String, String), String>,
    meter: Meter,
    bucket: Bucket,
    faults: ActiveFaults,
    refreshes: u64,
    refused_refreshes: u64,
    events_fired: u64,
    /// Codes the consent page gave and not yet exchanged.
    codes: Vec<String>,
}

#[derive(Default)]
pub struct Bitrix {
    state: Mutex<State>,
}

fn error(status: u16, code: &str, description: &str) -> HttpResponse {
    let s = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(s).json(json!({"error": code, "error_description": description}))
}

/// How a REST call authenticated.
enum Auth<'a> {
    Webhook { user: &'a str, secret: &'a str },
    OAuth(Option<&'a str>),
}

impl Bitrix {
    pub fn stats(&self) -> Value {
        let Ok(s) = self.state.lock() else {
            return Value::Null;
        };
        let mut v = s.meter.stats();
        v["max_bucket_level"] = json!(s.bucket.max_level.ceil());
        v["refreshes"] = json!(s.refreshes);
        v["refused_refreshes"] = json!(s.refused_refreshes);
        v["events_fired"] = json!(s.events_fired);
        v
    }

    pub fn set_faults(&self, f: CrmFaults) {
        if let Ok(mut s) = self.state.lock() {
            s.faults.set(f);
        }
    }

    fn latency(&self) -> (Duration, Duration) {
        self.state
            .lock()
            .map_or((Duration::ZERO, Duration::ZERO), |s| {
                (
                    Duration::from_millis(s.faults.faults.latency_ms),
                    Duration::from_millis(s.faults.faults.refresh_latency_ms),
                )
            })
    }

    /// One REST call: faults, the bucket, auth, then the method.
    fn call(&self, auth: Auth<'_>, method: &str, params: &Map<String, Value>) -> HttpResponse {
        let Ok(mut s) = self.state.lock() else {
            return poisoned();
        };
        let now = Instant::now();
        s.meter.hit(now);
        if s.faults.unavailable() {
            return error(500, "INTERNAL_SERVER_ERROR", "Internal server error");
        }
        if s.faults.throttling() || !s.bucket.admit(now) {
            s.meter.throttled += 1;
            return error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests");
        }
        let p = &s.portal;
        match auth {
            Auth::Webhook { user, secret } => {
                if p.webhook_secret.is_empty() || user != p.user_id || secret != p.webhook_secret {
                    s.meter.unauthorized += 1;
                    return error(401, "INVALID_CREDENTIALS", "Invalid request credentials");
                }
            }
            Auth::OAuth(None) => {
                s.meter.unauthorized += 1;
                return error(401, "NO_AUTH_FOUND", "Wrong authorization data");
            }
            Auth::OAuth(Some(token)) => {
                if p.access_token.is_empty() || token != p.access_token {
                    s.meter.unauthorized += 1;
                    return error(
                        401,
                        "expired_token",
                        "The access token provided has expired.",
                    );
                }
            }
        }
        let id = params
            .get("id")
            .or_else(|| params.get("ID"))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                v => v.to_string(),
            })
            .unwrap_or_default();
        let result = match method {
            "crm.deal.get" | "crm.lead.get" | "crm.contact.get" => {
                let entity = method.trim_start_matches("crm.").trim_end_matches(".get");
                s.entities.get(&(entity.to_owned(), id.clone())).cloned()
            }
            "crm.deal.contact.items.get" => s
                .entities
                .contains_key(&("deal".to_owned(), id.clone()))
                .then(|| {
                    s.deal_contacts
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| json!([]))
                }),
            m if m.starts_with("crm.") && m.ends_with(".fields") => {
                let entity = m.trim_start_matches("crm.").trim_end_matches(".fields");
                Some(s.fields.get(entity).cloned().unwrap_or_else(|| json!({})))
            }
            _ => return error(404, "ERROR_METHOD_NOT_FOUND", "Method not found!"),
        };
        match result {
            Some(result) => HttpResponse::Ok().json(json!({"result": result,
                "time": {"start": 0, "finish": 0, "duration": 0, "processing": 0}})),
            // crm.*.get: 400 with an empty `error` (apidocs.bitrix24.com, crm.deal.get: "error": "" for a missing id).
            None => error(400, "", "Not found"),
        }
    }
}

/// A call's parameters: the query string, then the JSON body over it.
fn params(query: &HashMap<String, String>, body: &web::Bytes) -> Map<String, Value> {
    let mut p: Map<String, Value> = query
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    if let Ok(Value::Object(b)) = serde_json::from_slice::<Value>(body) {
        p.extend(b);
    }
    p
}

async fn webhook_call(
    path: web::Path<(String, String, String)>,
    query: web::Query<HashMap<String, String>>,
    body: web::Bytes,
    crms: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let (user, secret, method) = path.into_inner();
    let b = &crms.bitrix24;
    let (latency, _) = b.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let p = params(&query, &body);
    b.call(
        Auth::Webhook {
            user: &user,
            secret: &secret,
        },
        method.trim_end_matches(".json"),
        &p,
    )
}

async fn oauth_call(
    method: web::Path<String>,
    query: web::Query<HashMap<String, String>>,
    body: web::Bytes,
    crms: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let b = &crms.bitrix24;
    let (latency, _) = b.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let p = params(&query, &body);
    let token = p.get("auth").and_then(Value::as_str);
    b.call(Auth::OAuth(token), method.trim_end_matches(".json"), &p)
}

/// `GET /oauth/token/?grant_type=refresh_token&client_id&client_secret&refresh_token`.
async fn refresh(
    q: web::Query<HashMap<String, String>>,
    crms: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let (_, latency) = crms.bitrix24.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Ok(mut s) = crms.bitrix24.state.lock() else {
        return poisoned();
    };
    let p = &s.portal;
    let given = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
    let client = !p.client_id.is_empty()
        && given("client_id") == p.client_id
        && given("client_secret") == p.client_secret;
    let valid = match given("grant_type") {
        "refresh_token" => {
            client && !p.refresh_token.is_empty() && given("refresh_token") == p.refresh_token
        }
        // A code works once.
        "authorization_code" => {
            let at = s.codes.iter().position(|c| c == given("code"));
            if let Some(i) = at {
                s.codes.remove(i);
            }
            client && at.is_some()
        }
        _ => false,
    };
    if !valid {
        s.refused_refreshes += 1;
        return error(400, "invalid_grant", "Invalid refresh token");
    }
    s.refreshes += 1;
    s.portal.access_token = format!("b24-access-{}", uuid::Uuid::new_v4().simple());
    s.portal.refresh_token = format!("b24-refresh-{}", uuid::Uuid::new_v4().simple());
    let p = &s.portal;
    HttpResponse::Ok().json(json!({
        "access_token": p.access_token,
        "expires_in": 3600,
        "refresh_token": p.refresh_token,
        "scope": "crm",
        "domain": "oauth.bitrix.info",
        "server_endpoint": "https://oauth.bitrix.info/rest/",
        "status": "L",
        "member_id": p.member_id,
    }))
}

/// The portal's consent page for an app (`/oauth/authorize/?client_id=&state=`):
/// allowed at once; back to the app's redirect URI with a code.
async fn authorize(
    q: web::Query<HashMap<String, String>>,
    crms: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let Ok(mut s) = crms.bitrix24.state.lock() else {
        return poisoned();
    };
    let client = q.get("client_id").map(String::as_str).unwrap_or_default();
    if client.is_empty() || client != s.portal.client_id || s.portal.redirect_uri.is_empty() {
        return error(400, "invalid_client", "Application not found");
    }
    let code = format!("b24-code-{}", uuid::Uuid::new_v4().simple());
    s.codes.push(code.clone());
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair(
            "state",
            q.get("state").map(String::as_str).unwrap_or_default(),
        )
        .append_pair("domain", &s.portal.domain)
        .append_pair("member_id", &s.portal.member_id)
        .append_pair("scope", "crm")
        .append_pair("server_domain", "oauth.bitrix.info")
        .finish();
    HttpResponse::Found()
        .insert_header(("location", format!("{}?{query}", s.portal.redirect_uri)))
        .finish()
}

async fn put_portal(p: web::Json<Portal>, crms: web::Data<crate::crm::Crms>) -> HttpResponse {
    let Ok(mut s) = crms.bitrix24.state.lock() else {
        return poisoned();
    };
    s.portal = p.into_inner();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutEntity {
    fields: Map<String, Value>,
    /// A deal's contacts, as `crm.deal.contact.items.get` answers them.
    #[serde(default)]
    contacts: Option<Value>,
}

/// The event the portal posts for an update of `entity` `id`.
fn update_event(p: &Portal, entity: &str, id: &str) -> String {
    let pairs = [
        (
            "event",
            format!("ONCRM{}UPDATE", entity.to_ascii_uppercase()),
        ),
        ("data[FIELDS][ID]", id.to_owned()),
        ("ts", chrono::Utc::now().timestamp().to_string()),
        ("auth[domain]", p.domain.clone()),
        (
            "auth[client_endpoint]",
            format!("https://{}/rest/", p.domain),
        ),
        (
            "auth[server_endpoint]",
            "https://oauth.bitrix.info/rest/".to_owned(),
        ),
        ("auth[member_id]", p.member_id.clone()),
        ("auth[application_token]", p.application_token.clone()),
    ];
    let pairs: Vec<(String, String)> = pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    form(&pairs)
}

async fn put_entity(
    path: web::Path<(String, String)>,
    e: web::Json<PutEntity>,
    crms: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let (entity, id) = path.into_inner();
    if !matches!(entity.as_str(), "deal" | "lead" | "contact") {
        return HttpResponse::BadRequest().json(json!({"code": "unknown_entity",
            "message": "entity must be deal, lead or contact"}));
    }
    let PutEntity {
        mut fields,
        contacts,
    } = e.into_inner();
    fields.insert("ID".into(), Value::String(id.clone()));
    let (url, body) = {
        let Ok(mut s) = crms.bitrix24.state.lock() else {
            return poisoned();
        };
        if let Some(c) = contacts {
            s.deal_contacts.insert(id.clone(), c);
        }
        s.entities
            .insert((entity.clone(), id.clone()), Value::Object(fields));
        let body = update_event(&s.portal, &entity, &id);
        s.last_event
            .insert((entity.clone(), id.clone()), body.clone());
        (s.portal.handler_url.clone(), body)
    };
    let status = deliver(&crms.bitrix24, &url, body).await;
    HttpResponse::Ok().json(json!({"entity": entity, "id": id, "webhook_status": status}))
}

async fn deliver(b: &Bitrix, url: &str, body: String) -> Option<u16> {
    if url.is_empty() {
        return None;
    }
    let status = fire(url, body).await;
    if let Ok(mut s) = b.state.lock() {
        s.events_fired += 1;
    }
    Some(status)
}

async fn redeliver(
    path: web::Path<(String, String)>,
    crms: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let key = path.into_inner();
    let (url, body) = {
        let Ok(s) = crms.bitrix24.state.lock() else {
            return poisoned();
        };
        (
            s.portal.handler_url.clone(),
            s.last_event.get(&key).cloned(),
        )
    };
    let Some(body) = body else {
        return HttpResponse::NotFound().json(json!({"code": "no_event",
            "message": format!("{} {} fired no event", key.0, key.1)}));
    };
    let status = deliver(&crms.bitrix24, &url, body).await;
    HttpResponse::Ok().json(json!({"entity": key.0, "id": key.1, "webhook_status": status}))
}

async fn put_fields(
    entity: web::Path<String>,
    fields: web::Json<Value>,
    crms: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let Ok(mut s) = crms.bitrix24.state.lock() else {
        return poisoned();
    };
    s.fields.insert(entity.into_inner(), fields.into_inner());
    HttpResponse::NoContent().finish()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/rest/{user}/{secret}/{method}",
        web::route().to(webhook_call),
    )
    .route("/rest/{method}", web::route().to(oauth_call))
    .route("/oauth/token/", web::get().to(refresh))
    .route("/oauth/authorize/", web::get().to(authorize))
    .route("/sandbox/bitrix24/portal", web::put().to(put_portal))
    .route(
        "/sandbox/bitrix24/fields/{entity}",
        web::put().to(put_fields),
    )
    .route("/sandbox/bitrix24/{entity}/{id}", web::put().to(put_entity))
    .route(
        "/sandbox/bitrix24/{entity}/{id}/redeliver",
        web::post().to(redeliver),
    );
}
