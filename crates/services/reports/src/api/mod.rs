//! The analytics/ROI HTTP API (JSON; errors `{code, message}`), described by
//! `GET /openapi.json` (`crates/reports/openapi.json`, checked against
//! [`API_PATHS`] by a test). Every call but the document carries an API
//! key (`Authorization: Bearer capi_…`) and sees its own account only:
//! another account, or its lead, is a 404 like one that does not exist.

pub(crate) mod params;

use crate::{State, ads, export, health, stats};
use actix_web::{HttpRequest, HttpResponse, web};
use domain::ids::UserAccountId;
use params::{Params, Range, parse_uuid};
use runtime::ApiError;
use serde_json::{Value, json};
use std::{collections::HashMap, future::Future};
use storage::{AsyncPgConnection, reports::ReportAccount};

/// The paths this module serves, as the OpenAPI document names them.
pub const API_PATHS: &[&str] = &[
    "/analytics/capi-stats",
    "/analytics/ads",
    "/analytics/ads.csv",
    "/analytics/capi-health",
    "/analytics/optimisation",
    "/api/capi-events",
    "/api/capi-events.csv",
    "/api/capi-events/{lead_id}",
    "/reports/daily",
    "/openapi.json",
    "/api/customers/{phone}",
];

/// The paths this module serves with DELETE (the customer's path serves
/// GET too: what is held, then its erasure).
pub const API_DELETE_PATHS: &[&str] = &["/api/customers/{phone}"];

pub const OPENAPI: &str = include_str!("../../openapi.json");

pub fn routes(cfg: &mut web::ServiceConfig) {
    let get = |path| runtime::http::resource(path, "GET");
    cfg.service(get(API_PATHS[0]).route(web::get().to(capi_stats)))
        .service(get(API_PATHS[1]).route(web::get().to(ads)))
        .service(get(API_PATHS[2]).route(web::get().to(ads_csv)))
        .service(get(API_PATHS[3]).route(web::get().to(capi_health)))
        .service(get(API_PATHS[4]).route(web::get().to(optimisation)))
        .service(get(API_PATHS[5]).route(web::get().to(leads)))
        .service(get(API_PATHS[6]).route(web::get().to(leads_csv)))
        .service(get(API_PATHS[7]).route(web::get().to(lead)))
        .service(get(API_PATHS[8]).route(web::get().to(daily_report)))
        .service(get(API_PATHS[9]).route(web::get().to(openapi)))
        .service(
            runtime::http::resource(API_DELETE_PATHS[0], "GET, DELETE")
                .route(web::get().to(export_customer))
                .route(web::delete().to(forget_customer)),
        );
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(OPENAPI)
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(runtime::ErrorCode::NotFound, format!("no such {what}"))
}

/// The presented key: `Authorization: Bearer …` or `X-Api-Key`.
fn presented_key(req: &HttpRequest) -> Result<String, ApiError> {
    let h = req.headers();
    let bearer = h
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let key = bearer.or_else(|| h.get("x-api-key").and_then(|v| v.to_str().ok()));
    key.map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                runtime::ErrorCode::Unauthorized,
                "an API key is required: Authorization: Bearer <key> (capi api-key create)",
            )
        })
}

fn db_error(e: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(e)
}

/// Runs database work on the service's main runtime (see `runtime::MainRuntime`).
async fn on_main<T, F>(state: &State, work: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, ApiError>> + Send + 'static,
{
    state.main.run(work).await.map_err(ApiError::unavailable)?
}

/// The key's account, when it is `account_id`; otherwise 401 (bad key) or 404.
async fn authorize(
    conn: &mut AsyncPgConnection,
    key: &str,
    account_id: UserAccountId,
) -> Result<ReportAccount, ApiError> {
    let owner = storage::api_keys::authenticate(conn, &domain::api_key::hash(key))
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            ApiError::new(
                runtime::ErrorCode::Unauthorized,
                "the API key is unknown or revoked",
            )
        })?;
    if owner != account_id {
        return Err(not_found("user account"));
    }
    storage::reports::account(conn, account_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| not_found("user account"))
}

struct Call {
    key: String,
    account: UserAccountId,
    params: Params,
    pool: storage::DbPool,
}

fn call(req: &HttpRequest, q: HashMap<String, String>, state: &State) -> Result<Call, ApiError> {
    let key = presented_key(req)?;
    let params = Params(q);
    Ok(Call {
        key,
        account: params.uuid("user_account_id")?.into(),
        params,
        pool: state.pool.clone(),
    })
}

impl Call {
    /// A pooled connection and the key's account (401 or 404 otherwise).
    async fn open(&self) -> Result<(storage::PooledConn, ReportAccount), ApiError> {
        let mut conn = self.pool.get().await.map_err(db_error)?;
        let account = authorize(&mut conn, &self.key, self.account).await?;
        Ok((conn, account))
    }
}

/// Today in the account's zone.
async fn today(
    conn: &mut AsyncPgConnection,
    account: &ReportAccount,
) -> Result<chrono::NaiveDate, ApiError> {
    storage::reports::local_today(conn, &account.timezone)
        .await
        .map_err(db_error)
}

async fn capi_stats(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let range = Range::from(&c.params)?;
    let started = std::time::Instant::now();
    tracing::info!(user_account_id = %c.account, since = ?range.since, until = ?range.until, "[capi-stats] fetching");
    let body = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        let today = today(&mut conn, &account).await?;
        let (since, until) = range.resolve(today)?;
        stats::capi_stats(&mut conn, account.id, &account.timezone, since, until)
            .await
            .map_err(db_error)
    })
    .await?;
    tracing::info!(
        user_account_id = %body.user_account_id,
        lead = body.totals.events.lead,
        registration = body.totals.events.registration,
        schedule = body.totals.events.schedule,
        duration_ms = started.elapsed().as_millis() as u64,
        "[capi-stats] fetched"
    );
    Ok(HttpResponse::Ok().json(body))
}

async fn ads(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let (table, _) = ads_table(&state, c).await?;
    Ok(HttpResponse::Ok().json(table))
}

/// The ads table as CSV (`export`): the same rows, grouping and sort.
async fn ads_csv(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let (table, language) = ads_table(&state, c).await?;
    Ok(export::ads(&table, export::Dialect::of(language)))
}

/// The call's ads table (its range, `group`, `sort`, `order`) and the
/// account's language.
async fn ads_table(
    state: &State,
    c: Call,
) -> Result<(ads::AdsTable, domain::account::ReportLanguage), ApiError> {
    let range = Range::from(&c.params)?;
    let view = params::ads_view(&c.params)?;
    on_main(state, async move {
        let (mut conn, account) = c.open().await?;
        let today = today(&mut conn, &account).await?;
        let (since, until) = range.resolve(today)?;
        let table = ads::table(&mut conn, account.id, &account.timezone, since, until, view)
            .await
            .map_err(db_error)?;
        Ok((table, account.language))
    })
    .await
}

/// The leads of the range as CSV, streamed (`export`).
async fn leads_csv(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let range = Range::from(&c.params)?;
    let pool = c.pool.clone();
    let export = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        let today = today(&mut conn, &account).await?;
        let (since, until) = range.resolve(today)?;
        Ok(export::Export {
            account: account.id,
            timezone: account.timezone,
            dialect: export::Dialect::of(account.language),
            since,
            until,
        })
    })
    .await?;
    Ok(export::leads(pool, &state.main, export))
}

/// The customer's phone from the path, by the rule the CLI uses.
fn customer_phone(path: web::Path<String>) -> Result<String, ApiError> {
    domain::customer::phone_digits(&path.into_inner()).ok_or_else(|| {
        params::bad(
            "phone",
            "expected a phone number with its country code (6 to 15 digits)",
        )
    })
}

/// An access request for one customer of the key's account: everything
/// held about them (`storage::customers::export`, as `capi customer export`).
async fn export_customer(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let phone = customer_phone(path)?;
    let body = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        storage::customers::export(&mut conn, &phone, Some(account.id))
            .await
            .map_err(db_error)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

/// An erasure request for one customer of the key's account
/// (`storage::customers::forget`, as `capi customer forget`).
async fn forget_customer(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let phone = customer_phone(path)?;
    let by = format!("API key {}", domain::api_key::display_prefix(&c.key));
    let body = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        let erased = storage::customers::forget(&mut conn, &phone, Some(account.id), &by)
            .await
            .map_err(db_error)?;
        Ok(json!({ "erased": erased }))
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn capi_health(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let body = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        health::capi_health(&mut conn, account.id)
            .await
            .map_err(db_error)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn optimisation(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let body = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        let today = today(&mut conn, &account).await?;
        stats::optimisation(&mut conn, account.id, &account.timezone, today)
            .await
            .map_err(db_error)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn leads(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let range = Range::from(&c.params)?;
    let page = c.params.int("page", 1, 1, 1_000_000)?;
    let per_page = c.params.int("per_page", 50, 1, 200)?;
    let body = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        let today = today(&mut conn, &account).await?;
        let (since, until) = range.resolve(today)?;
        let (leads, total) = storage::analytics::leads_page(
            &mut conn,
            account.id,
            since,
            until,
            &account.timezone,
            page,
            per_page,
        )
        .await
        .map_err(db_error)?;
        Ok(json!({
            "user_account_id": account.id, "since": since, "until": until,
            "page": page, "per_page": per_page, "total": total, "leads": leads,
        }))
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn lead(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let lead_id = parse_uuid("lead_id", &path.into_inner())?;
    let body = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        let lead = storage::analytics::lead(&mut conn, account.id, lead_id.into())
            .await
            .map_err(db_error)?
            .ok_or_else(|| not_found("lead"))?;
        let attempts = storage::analytics::attempts(&mut conn, lead.dialog_id)
            .await
            .map_err(db_error)?;
        let mut body = serde_json::to_value(lead).map_err(db_error)?;
        body["attempts"] = serde_json::to_value(attempts).map_err(db_error)?;
        Ok(body)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}

async fn daily_report(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let c = call(&req, q.into_inner(), &state)?;
    let date = c.params.required_date("date")?;
    let body: Value = on_main(&state, async move {
        let (mut conn, account) = c.open().await?;
        let report = storage::reports::get(&mut conn, account.id, date)
            .await
            .map_err(db_error)?
            .ok_or_else(|| not_found("report for that date"))?;
        serde_json::to_value(report).map_err(db_error)
    })
    .await?;
    Ok(HttpResponse::Ok().json(body))
}
