//! What the reports service talks to: the Telegram Bot API's `sendMessage`
//! and the Marketing API's insights endpoint. Both record what they get,
//! and can be told to fail the next requests.
//!
//! - `POST /bot{token}/sendMessage` — Telegram; `GET /sandbox/telegram/sent?chat_id=`
//! - `PUT /sandbox/telegram/faults` — `{"fail_next": [429, 500], "retry_after": 1}`
//! - `GET /{version}/{ad_account}/insights` — spend per day at `level`
//!   `ad`, `adset` or `campaign` (ad rows summed up), only the `fields`
//!   asked for, an unknown level or field refused as Meta does (#100);
//!   `PUT /sandbox/insights/{ad_account}` sets the ad rows (unset accounts
//!   get a demo ad at 25.00 a day), paged by `limit`/`after`;
//!   `GET /sandbox/insights/requests`; `PUT /sandbox/insights/faults`
//!   `{"fail_next": [{"status": 400, "code": 17}]}`

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
};

#[derive(Default)]
pub struct Marketing {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sent: Vec<Value>,
    telegram_fail_next: VecDeque<u16>,
    telegram_retry_after: u64,
    insights: HashMap<String, Vec<SpendRow>>,
    insights_requests: Vec<Value>,
    insights_fail_next: VecDeque<InsightsFault>,
}

/// One ad's spend on one day (a campaign-level row when the ad set and ad are empty).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpendRow {
    pub campaign_id: String,
    pub campaign_name: String,
    #[serde(default)]
    pub adset_id: String,
    #[serde(default)]
    pub adset_name: String,
    #[serde(default)]
    pub ad_id: String,
    #[serde(default)]
    pub ad_name: String,
    pub date: NaiveDate,
    pub spend: String,
    #[serde(default = "usd")]
    pub currency: String,
}

fn usd() -> String {
    "USD".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct InsightsFault {
    status: u16,
    code: i64,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/bot{token}/sendMessage", web::post().to(send_message))
        .route("/sandbox/telegram/sent", web::get().to(sent))
        .route("/sandbox/telegram/faults", web::put().to(telegram_faults))
        .route(
            "/sandbox/insights/requests",
            web::get().to(insights_requests),
        )
        .route("/sandbox/insights/faults", web::put().to(insights_faults))
        .route(
            "/sandbox/insights/{ad_account}",
            web::put().to(set_insights),
        )
        .route("/{version}/{ad_account}/insights", web::get().to(insights));
}

fn telegram_error(status: u16, description: &str, retry_after: Option<u64>) -> HttpResponse {
    let mut body = json!({"ok": false, "error_code": status, "description": description});
    if let Some(s) = retry_after {
        body["parameters"] = json!({"retry_after": s});
    }
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(body)
}

async fn send_message(
    path: web::Path<String>,
    body: web::Bytes,
    m: web::Data<Marketing>,
) -> HttpResponse {
    let token = path.into_inner();
    let valid_token = token.split_once(':').is_some_and(|(id, rest)| {
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && rest.len() >= 8
    });
    if !valid_token {
        return telegram_error(401, "Unauthorized", None);
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return telegram_error(400, "Bad Request: can't parse JSON", None);
    };
    let text = req["text"].as_str().unwrap_or_default();
    let chat_id = match &req["chat_id"] {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return telegram_error(400, "Bad Request: chat_id is empty", None),
    };
    if text.trim().is_empty() {
        return telegram_error(400, "Bad Request: message text is empty", None);
    }
    if text.encode_utf16().count() > 4096 {
        return telegram_error(400, "Bad Request: message is too long", None);
    }
    let Ok(mut s) = m.state.lock() else {
        return telegram_error(500, "Internal Server Error", None);
    };
    if let Some(status) = s.telegram_fail_next.pop_front() {
        let retry = (status == 429).then_some(s.telegram_retry_after.max(1));
        let description = if status == 429 {
            format!("Too Many Requests: retry after {}", retry.unwrap_or(1))
        } else {
            "Internal Server Error".to_owned()
        };
        return telegram_error(status, &description, retry);
    }
    let message_id = s.sent.len() + 1;
    s.sent.push(
        json!({"bot_token": token, "chat_id": chat_id, "text": text, "message_id": message_id}),
    );
    HttpResponse::Ok().json(json!({"ok": true, "result": {"message_id": message_id, "chat": {"id": chat_id}, "text": text}}))
}

async fn sent(q: web::Query<HashMap<String, String>>, m: web::Data<Marketing>) -> HttpResponse {
    let s = m.state.lock().map(|s| s.sent.clone()).unwrap_or_default();
    let chat = q.get("chat_id");
    let list: Vec<Value> = s
        .into_iter()
        .filter(|v| chat.is_none_or(|c| v["chat_id"].as_str() == Some(c.as_str())))
        .collect();
    HttpResponse::Ok().json(list)
}

#[derive(Deserialize)]
struct TelegramFaults {
    #[serde(default)]
    fail_next: Vec<u16>,
    #[serde(default)]
    retry_after: u64,
}

async fn telegram_faults(f: web::Json<TelegramFaults>, m: web::Data<Marketing>) -> HttpResponse {
    if let Ok(mut s) = m.state.lock() {
        s.telegram_fail_next = f.fail_next.iter().copied().collect();
        s.telegram_retry_after = f.retry_after;
    }
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
struct SetInsights {
    rows: Vec<SpendRow>,
}

async fn set_insights(
    path: web::Path<String>,
    body: web::Json<SetInsights>,
    m: web::Data<Marketing>,
) -> HttpResponse {
    if let Ok(mut s) = m.state.lock() {
        s.insights.insert(path.into_inner(), body.into_inner().rows);
    }
    HttpResponse::NoContent().finish()
}

async fn insights_requests(m: web::Data<Marketing>) -> HttpResponse {
    HttpResponse::Ok().json(
        m.state
            .lock()
            .map(|s| s.insights_requests.clone())
            .unwrap_or_default(),
    )
}

#[derive(Deserialize)]
struct InsightsFaults {
    #[serde(default)]
    fail_next: Vec<InsightsFault>,
}

async fn insights_faults(f: web::Json<InsightsFaults>, m: web::Data<Marketing>) -> HttpResponse {
    if let Ok(mut s) = m.state.lock() {
        s.insights_fail_next = f.into_inner().fail_next.into();
    }
    HttpResponse::NoContent().finish()
}

fn graph_error(status: u16, code: i64, message: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default()).json(json!({
        "error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AsandboxTrace"}
    }))
}

async fn insights(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    q: web::Query<HashMap<String, String>>,
    m: web::Data<Marketing>,
) -> HttpResponse {
    let (_, ad_account) = path.into_inner();
    let token = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
        .or_else(|| q.get("access_token").cloned());
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return graph_error(
            400,
            190,
            "An access token is required to request this resource.",
        );
    };
    let range: Value = q
        .get("time_range")
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or(Value::Null);
    let date = |k: &str| {
        range[k]
            .as_str()
            .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    };
    let (Some(since), Some(until)) = (date("since"), date("until")) else {
        return graph_error(400, 100, "(#100) time_range must have since and until");
    };
    let level = q.get("level").map_or("account", String::as_str);
    if !["ad", "adset", "campaign", "account"].contains(&level) {
        return graph_error(
            400,
            100,
            "(#100) level must be one of the following values: ad, adset, campaign, account",
        );
    }
    let fields: Vec<&str> = q
        .get("fields")
        .map(|f| f.split(',').map(str::trim).collect())
        .unwrap_or_default();
    if let Some(bad) = fields.iter().find(|f| !INSIGHTS_FIELDS.contains(f)) {
        return graph_error(
            400,
            100,
            &format!("(#100) {bad} is not valid for fields param."),
        );
    }
    let Ok(mut s) = m.state.lock() else {
        return graph_error(500, 2, "sandbox state poisoned");
    };
    s.insights_requests.push(json!({
        "ad_account": ad_account, "token": token, "level": q.get("level"), "time_increment": q.get("time_increment"),
        "fields": q.get("fields"), "since": since, "until": until, "after": q.get("after"),
    }));
    if let Some(f) = s.insights_fail_next.pop_front() {
        let message = match f.code {
            17 | 4 | 613 => "(#17) User request limit reached",
            80000..=80014 => "There have been too many calls from this ad-account.",
            190 => "Error validating access token: Session has expired.",
            _ => "An unexpected error has occurred. Please retry your request later.",
        };
        return graph_error(f.status, f.code, message);
    }
    let rows: Vec<SpendRow> = match s.insights.get(&ad_account) {
        Some(rows) => rows
            .iter()
            .filter(|r| r.date >= since && r.date <= until)
            .cloned()
            .collect(),
        None => since
            .iter_days()
            .take_while(|d| *d <= until)
            .map(|date| SpendRow {
                campaign_id: "120210000000001".into(),
                campaign_name: "Demo campaign".into(),
                adset_id: "120210000000101".into(),
                adset_name: "Demo ad set".into(),
                ad_id: "120210000001001".into(),
                ad_name: "Demo ad".into(),
                date,
                spend: "25.00".into(),
                currency: "USD".into(),
            })
            .collect(),
    };
    let limit: usize = q
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(25)
        .clamp(1, 5000);
    let start: usize = q.get("after").and_then(|a| a.parse().ok()).unwrap_or(0);
    let rows = at_level(rows, level);
    let page: Vec<Value> = rows
        .iter()
        .skip(start)
        .take(limit)
        .map(|r| {
            let all = json!({"campaign_id": r.campaign_id, "campaign_name": r.campaign_name,
                   "adset_id": r.adset_id, "adset_name": r.adset_name, "ad_id": r.ad_id, "ad_name": r.ad_name,
                   "spend": r.spend, "account_currency": r.currency});
            let mut out: serde_json::Map<String, Value> = fields
                .iter()
                .filter_map(|f| Some(((*f).to_owned(), all.get(*f)?.clone())))
                .collect();
            out.insert("date_start".into(), json!(r.date));
            out.insert("date_stop".into(), json!(r.date));
            Value::Object(out)
        })
        .collect();
    let mut body = json!({"data": page, "paging": {"cursors": {"before": start.to_string(), "after": (start + limit).to_string()}}});
    if start + limit < rows.len() {
        let info = req.connection_info();
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in q.iter().filter(|(k, _)| k.as_str() != "after") {
            query.append_pair(k, v);
        }
        query.append_pair("after", &(start + limit).to_string());
        let next = format!(
            "{}://{}{}?{}",
            info.scheme(),
            info.host(),
            req.path(),
            query.finish()
        );
        body["paging"]["next"] = Value::String(next.to_string());
    }
    HttpResponse::Ok().json(body)
}

/// The insights fields this fake knows (Meta knows many more; asking for
/// one it does not know is refused, as Meta refuses a misspelt one).
const INSIGHTS_FIELDS: &[&str] = &[
    "account_currency",
    "campaign_id",
    "campaign_name",
    "adset_id",
    "adset_name",
    "ad_id",
    "ad_name",
    "spend",
    "date_start",
    "date_stop",
];

/// The ad rows summed up to `level`: per ad, ad set, campaign or the
/// account, per day (ids above the level kept, those below blanked).
fn at_level(rows: Vec<SpendRow>, level: &str) -> Vec<SpendRow> {
    let depth = match level {
        "ad" => return rows,
        "adset" => 2,
        "campaign" => 1,
        _ => 0,
    };
    let mut summed: Vec<SpendRow> = Vec::new();
    for mut r in rows {
        if depth < 2 {
            r.adset_id.clear();
            r.adset_name.clear();
        }
        if depth < 1 {
            r.campaign_id.clear();
            r.campaign_name.clear();
        }
        r.ad_id.clear();
        r.ad_name.clear();
        let cents = |s: &str| (s.parse::<f64>().unwrap_or(0.0) * 100.0).round() as i64;
        match summed.iter_mut().find(|o| {
            o.date == r.date && o.campaign_id == r.campaign_id && o.adset_id == r.adset_id
        }) {
            Some(o) => {
                let total = cents(&o.spend) + cents(&r.spend);
                o.spend = format!("{}.{:02}", total / 100, total % 100);
            }
            None => summed.push(r),
        }
    }
    summed
}
