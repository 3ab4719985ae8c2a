//! A fake amoCRM/Kommo account: API v4 reads (`leads/{id}?with=contacts`,
//! `contacts/{id}`, `{entity}/custom_fields`, `leads/pipelines`, `account`), bearer
//! auth, `GET /oauth` (the authorisation page: consents at once and sends
//! the browser back to the integration's redirect URI with a single-use
//! code, the state and `referer`), `POST /oauth2/access_token` (the code's
//! first pair, or a refresh), 7 requests/s then 429 with
//! `retry_after`, 204 for a missing entity — and the status webhook fired
//! when a lead is put in.
//!
//! Set up (sandbox only):
//! - `PUT /sandbox/amocrm/account` — subdomain, id, tokens, OAuth client, webhook URL, currency
//! - `PUT /sandbox/amocrm/leads/{id}` — a lead (`status_id`, `pipeline_id`,
//!   `custom_fields_values`, `contacts: [{id, is_main}]`); fires
//!   `leads[status]` to the webhook URL when one is set
//! - `POST /sandbox/amocrm/leads/{id}/redeliver` — the lead's last webhook again
//! - `PUT /sandbox/amocrm/contacts/{id}`, `PUT /sandbox/amocrm/custom_fields/{entity}`,
//!   `PUT /sandbox/amocrm/pipelines` (`[{id, name, _embedded: {statuses: [{id, name}]}}]`)

use super::{ActiveFaults, CrmFaults, Meter, fire, form, poisoned};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
    time::{Duration, Instant},
};

/// amoCRM's documented limit.
pub const REQUESTS_PER_SECOND: usize = 7;

/// Who the account is and how it authenticates.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Account {
    pub subdomain: String,
    pub id: String,
    /// The one bearer token accepted.
    pub access_token: String,
    /// OAuth: the refresh token that buys the next pair (then is spent).
    pub refresh_token: String,
    pub client_id: String,
    pub client_secret: String,
    /// Where lead changes are posted (the connection's webhook URL).
    pub webhook_url: String,
    /// The account's currency (`GET /api/v4/account` → `currency`): lead
    /// prices are in it.
    pub currency: String,
    /// The integration's redirect URI: the authorisation page sends the
    /// browser there, and a code is exchanged only with it.
    #[serde(default)]
    pub redirect_uri: String,
}

#[derive(Default)]
struct State {
    account: Account,
    leads: BTreeMap<String, Value>,
    contacts: BTreeMap<String, Value>,
    custom_fields: BTreeMap<String, Vec<Value>>,
    pipelines: Vec<Value>,
    last_webhook: HashMap<String, String>,
    meter: Meter,
    faults: ActiveFaults,
    refreshes: u64,
    refused_refreshes: u64,
    webhooks_fired: u64,
    /// Codes the authorisation page gave and not yet exchanged.
    codes: Vec<String>,
}

#[derive(Default)]
pub struct Amo {
    state: Mutex<State>,
}

impl Amo {
    pub fn stats(&self) -> Value {
        let Ok(s) = self.state.lock() else {
            return Value::Null;
        };
        let mut v = s.meter.stats();
        v["refreshes"] = json!(s.refreshes);
        v["refused_refreshes"] = json!(s.refused_refreshes);
        v["webhooks_fired"] = json!(s.webhooks_fired);
        v
    }

    pub fn set_faults(&self, f: CrmFaults) {
        if let Ok(mut s) = self.state.lock() {
            s.faults.set(f);
        }
    }

    /// The API's gate: faults, the rate limit, then the bearer token; the
    /// answer when the request does not get through.
    fn refusal(&self, req: &HttpRequest) -> Option<HttpResponse> {
        let Ok(mut s) = self.state.lock() else {
            return Some(poisoned());
        };
        let in_last_second = s.meter.hit(Instant::now());
        if s.faults.unavailable() {
            return Some(problem(
                503,
                "Service Unavailable",
                "Service temporarily unavailable",
            ));
        }
        if s.faults.throttling() || in_last_second > REQUESTS_PER_SECOND {
            s.meter.throttled += 1;
            let retry_after = s.faults.faults.retry_after_s.max(1);
            let mut body = problem_body(429, "Too Many Requests", "Too many requests");
            body["retry_after"] = json!(retry_after);
            return Some(
                HttpResponse::TooManyRequests()
                    .content_type("application/problem+json")
                    .json(body),
            );
        }
        let presented = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if s.account.access_token.is_empty() || presented != Some(s.account.access_token.as_str()) {
            s.meter.unauthorized += 1;
            return Some(problem(
                401,
                "Unauthorized",
                "Неверный или просроченный токен",
            ));
        }
        None
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
}

fn problem_body(status: u16, title: &str, detail: &str) -> Value {
    json!({"title": title, "type": format!("https://httpstatus.es/{status}"),
           "status": status, "detail": detail})
}

fn problem(status: u16, title: &str, detail: &str) -> HttpResponse {
    let code = actix_web::http::StatusCode::from_u16(status)
        .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(code)
        .content_type("application/problem+json")
        .json(problem_body(status, title, detail))
}

async fn api(
    req: HttpRequest,
    amo: &Amo,
    read: impl FnOnce(&State) -> Option<Value>,
) -> HttpResponse {
    let (latency, _) = amo.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(refused) = amo.refusal(&req) {
        return refused;
    }
    let Ok(s) = amo.state.lock() else {
        return poisoned();
    };
    match read(&s) {
        Some(v) => HttpResponse::Ok()
            .content_type("application/hal+json")
            .json(v),
        // amoCRM answers "nothing" with 204 and no body.
        None => HttpResponse::NoContent().finish(),
    }
}

#[derive(Deserialize)]
struct With {
    with: Option<String>,
}

async fn get_lead(
    req: HttpRequest,
    id: web::Path<String>,
    q: web::Query<With>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let with_contacts = q.with.as_deref().is_some_and(|w| w.contains("contacts"));
    api(req, &amo.amocrm, |s| {
        let mut lead = s.leads.get(id.as_str())?.clone();
        let contacts = lead
            .as_object_mut()
            .and_then(|o| o.remove("contacts"))
            .unwrap_or_else(|| json!([]));
        let embedded = if with_contacts {
            json!({"tags": [], "companies": [], "contacts": contacts})
        } else {
            json!({"tags": [], "companies": []})
        };
        lead["_embedded"] = embedded;
        Some(lead)
    })
    .await
}

/// `GET /api/v4/account`: the fields amoCRM always returns (no `with`).
async fn get_account(req: HttpRequest, amo: web::Data<crate::crm::Crms>) -> HttpResponse {
    api(req, &amo.amocrm, |s| {
        let id = s.account.id.parse::<u64>().map_or_else(|_| json!(s.account.id), |n| json!(n));
        Some(json!({
            "id": id, "name": s.account.subdomain, "subdomain": s.account.subdomain,
            "currency": s.account.currency, "currency_symbol": currency_symbol(&s.account.currency),
            "country": "RU", "customers_mode": "disabled", "is_unsorted_on": true,
            "mobile_feature_version": 0, "is_loss_reason_enabled": true,
            "is_helpbot_enabled": false, "is_technical_account": false,
            "contact_name_display_order": 1,
            "_links": {"self": {"href": format!("https://{}.amocrm.ru/api/v4/account", s.account.subdomain)}}
        }))
    })
    .await
}

fn currency_symbol(code: &str) -> &'static str {
    match code {
        "RUB" => "₽",
        "USD" => "$",
        "EUR" => "€",
        _ => "",
    }
}

async fn get_contact(
    req: HttpRequest,
    id: web::Path<String>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    api(req, &amo.amocrm, |s| s.contacts.get(id.as_str()).cloned()).await
}

#[derive(Deserialize)]
struct Page {
    page: Option<usize>,
    limit: Option<usize>,
}

/// `GET /api/v4/{entity}/custom_fields`: 50 a page unless `limit` (≤ 250).
async fn get_custom_fields(
    req: HttpRequest,
    entity: web::Path<String>,
    q: web::Query<Page>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let page = q.page.unwrap_or(1).max(1);
    let limit = q.limit.unwrap_or(50).clamp(1, 250);
    let entity = entity.into_inner();
    api(req, &amo.amocrm, |s| {
        let all = s.custom_fields.get(&entity)?;
        let items: Vec<&Value> = all.iter().skip((page - 1) * limit).take(limit).collect();
        if items.is_empty() {
            return None;
        }
        let mut links = json!({"self": {"href": format!("/api/v4/{entity}/custom_fields?page={page}&limit={limit}")}});
        if page * limit < all.len() {
            links["next"] = json!({"href": format!("/api/v4/{entity}/custom_fields?page={}&limit={limit}", page + 1)});
        }
        Some(json!({"_total_items": items.len(), "_page": page, "_links": links,
                    "_embedded": {"custom_fields": items}}))
    })
    .await
}

async fn get_pipelines(req: HttpRequest, amo: web::Data<crate::crm::Crms>) -> HttpResponse {
    api(req, &amo.amocrm, |s| {
        (!s.pipelines.is_empty()).then(
            || json!({"_total_items": s.pipelines.len(), "_embedded": {"pipelines": s.pipelines}}),
        )
    })
    .await
}

async fn put_pipelines(p: web::Json<Vec<Value>>, amo: web::Data<crate::crm::Crms>) -> HttpResponse {
    let Ok(mut s) = amo.amocrm.state.lock() else {
        return poisoned();
    };
    s.pipelines = p.into_inner();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct RefreshRequest {
    client_id: String,
    client_secret: String,
    grant_type: String,
    #[serde(default)]
    refresh_token: String,
    #[serde(default)]
    code: String,
    /// Checked for a code (it must be the one the code was given for).
    redirect_uri: Option<String>,
}

/// `POST /oauth2/access_token` with `grant_type=refresh_token`: a new pair;
/// the refresh token used is spent.
async fn refresh(
    body: web::Json<RefreshRequest>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let (_, latency) = amo.amocrm.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let Ok(mut s) = amo.amocrm.state.lock() else {
        return poisoned();
    };
    let a = &s.account;
    let client = body.client_id == a.client_id && body.client_secret == a.client_secret;
    let valid = match body.grant_type.as_str() {
        "refresh_token" => {
            client && !a.refresh_token.is_empty() && body.refresh_token == a.refresh_token
        }
        // A code works once, with the redirect URI it was given for.
        "authorization_code" => {
            let redirect_ok = body.redirect_uri.as_deref() == Some(a.redirect_uri.as_str());
            let at = s.codes.iter().position(|c| *c == body.code);
            if let Some(i) = at {
                s.codes.remove(i);
            }
            client && redirect_ok && at.is_some()
        }
        _ => false,
    };
    if !valid {
        s.refused_refreshes += 1;
        let mut body = problem_body(400, "Bad Request", "Token has been revoked");
        body["hint"] = json!("Token has been revoked");
        return HttpResponse::BadRequest()
            .content_type("application/problem+json")
            .json(body);
    }
    s.refreshes += 1;
    s.account.access_token = format!("amo-access-{}", uuid::Uuid::new_v4().simple());
    s.account.refresh_token = format!("amo-refresh-{}", uuid::Uuid::new_v4().simple());
    HttpResponse::Ok().json(json!({
        "token_type": "Bearer",
        "expires_in": 86400,
        "access_token": s.account.access_token,
        "refresh_token": s.account.refresh_token,
    }))
}

/// amoCRM's authorisation page (`www.amocrm.ru/oauth?client_id=&state=`):
/// the user consents at once; the browser goes back to the integration's
/// redirect URI with a new code, the state, and this account's host as
/// `referer`. An unknown client id is an error page.
async fn authorize(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let Ok(mut s) = amo.amocrm.state.lock() else {
        return poisoned();
    };
    let client = q.get("client_id").map(String::as_str).unwrap_or_default();
    if client.is_empty() || client != s.account.client_id || s.account.redirect_uri.is_empty() {
        return HttpResponse::BadRequest()
            .content_type("text/html; charset=utf-8")
            .body("<p>Integration not found</p>");
    }
    let code = format!("amo-code-{}", uuid::Uuid::new_v4().simple());
    s.codes.push(code.clone());
    let host = req.connection_info().host().to_owned();
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("code", &code)
        .append_pair(
            "state",
            q.get("state").map(String::as_str).unwrap_or_default(),
        )
        .append_pair("referer", &host)
        .append_pair("client_id", client)
        .finish();
    HttpResponse::Found()
        .insert_header(("location", format!("{}?{query}", s.account.redirect_uri)))
        .finish()
}

async fn put_account(a: web::Json<Account>, amo: web::Data<crate::crm::Crms>) -> HttpResponse {
    let Ok(mut s) = amo.amocrm.state.lock() else {
        return poisoned();
    };
    s.account = a.into_inner();
    HttpResponse::NoContent().finish()
}

/// The status webhook amoCRM posts when a lead moves (`leads[status]`).
pub(crate) fn status_webhook(
    account: &Account,
    id: &str,
    lead: &Value,
    old_status: Option<&Value>,
) -> String {
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Number(_)) => v.to_string(),
        _ => String::new(),
    };
    let p = |k: &str| format!("leads[status][0][{k}]");
    let mut pairs = vec![
        (p("id"), id.to_owned()),
        (p("status_id"), text(lead.get("status_id"))),
        (p("pipeline_id"), text(lead.get("pipeline_id"))),
        (p("old_status_id"), text(old_status)),
        (p("modified_user_id"), "0".into()),
        (
            p("last_modified"),
            chrono::Utc::now().timestamp().to_string(),
        ),
    ];
    pairs.push(("account[id]".into(), account.id.clone()));
    pairs.push(("account[subdomain]".into(), account.subdomain.clone()));
    form(&pairs)
}

async fn put_lead(
    id: web::Path<String>,
    lead: web::Json<Value>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let id = id.into_inner();
    let mut lead = lead.into_inner();
    if !lead.is_object() {
        return HttpResponse::BadRequest()
            .json(json!({"code": "invalid_lead", "message": "a lead is a JSON object"}));
    }
    lead["id"] = json!(id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)));
    let (url, body) = {
        let Ok(mut s) = amo.amocrm.state.lock() else {
            return poisoned();
        };
        let old_status = s.leads.get(&id).and_then(|l| l.get("status_id")).cloned();
        let body = status_webhook(&s.account, &id, &lead, old_status.as_ref());
        s.leads.insert(id.clone(), lead);
        s.last_webhook.insert(id.clone(), body.clone());
        (s.account.webhook_url.clone(), body)
    };
    let status = deliver(&amo.amocrm, &url, body).await;
    HttpResponse::Ok().json(json!({"id": id, "webhook_status": status}))
}

/// Posts a webhook when the account has a URL; its status, or null.
async fn deliver(amo: &Amo, url: &str, body: String) -> Option<u16> {
    if url.is_empty() {
        return None;
    }
    let status = fire(url, body).await;
    if let Ok(mut s) = amo.state.lock() {
        s.webhooks_fired += 1;
    }
    Some(status)
}

async fn redeliver(id: web::Path<String>, amo: web::Data<crate::crm::Crms>) -> HttpResponse {
    let (url, body) = {
        let Ok(s) = amo.amocrm.state.lock() else {
            return poisoned();
        };
        (
            s.account.webhook_url.clone(),
            s.last_webhook.get(id.as_str()).cloned(),
        )
    };
    let Some(body) = body else {
        return HttpResponse::NotFound()
            .json(json!({"code": "no_webhook", "message": format!("lead {id} fired no webhook")}));
    };
    let status = deliver(&amo.amocrm, &url, body).await;
    HttpResponse::Ok().json(json!({"id": id.as_str(), "webhook_status": status}))
}

async fn put_contact(
    id: web::Path<String>,
    contact: web::Json<Value>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let id = id.into_inner();
    let mut contact = contact.into_inner();
    contact["id"] = json!(id.parse::<u64>().map_or_else(|_| json!(id), |n| json!(n)));
    let Ok(mut s) = amo.amocrm.state.lock() else {
        return poisoned();
    };
    s.contacts.insert(id, contact);
    HttpResponse::NoContent().finish()
}

async fn put_custom_fields(
    entity: web::Path<String>,
    fields: web::Json<Vec<Value>>,
    amo: web::Data<crate::crm::Crms>,
) -> HttpResponse {
    let Ok(mut s) = amo.amocrm.state.lock() else {
        return poisoned();
    };
    s.custom_fields
        .insert(entity.into_inner(), fields.into_inner());
    HttpResponse::NoContent().finish()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    // These first: `leads/{id}` would take them.
    cfg.route(
        "/api/v4/{entity}/custom_fields",
        web::get().to(get_custom_fields),
    )
    .route("/api/v4/leads/pipelines", web::get().to(get_pipelines))
    .route("/api/v4/account", web::get().to(get_account))
    .route("/api/v4/leads/{id}", web::get().to(get_lead))
    .route("/api/v4/contacts/{id}", web::get().to(get_contact))
    .route("/oauth2/access_token", web::post().to(refresh))
    .route("/oauth", web::get().to(authorize))
    .route("/sandbox/amocrm/account", web::put().to(put_account))
    .route("/sandbox/amocrm/pipelines", web::put().to(put_pipelines))
    .route("/sandbox/amocrm/leads/{id}", web::put().to(put_lead))
    .route(
        "/sandbox/amocrm/leads/{id}/redeliver",
        web::post().to(redeliver),
    )
    .route("/sandbox/amocrm/contacts/{id}", web::put().to(put_contact))
    .route(
        "/sandbox/amocrm/custom_fields/{entity}",
        web::put().to(put_custom_fields),
    );
}
