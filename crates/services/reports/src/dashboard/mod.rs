//! The dashboard: server-rendered pages for one account. Sign-in without
//! passwords: `capi dashboard-link` prints a short-lived signed link;
//! opening it sets an HttpOnly session cookie (signed, with its own
//! expiry). The CAPI section (12 cards, funnel per direction, daily chart,
//! optimisation advice) is left out when no direction has CAPI on, as the
//! spec says; the leads table and a lead's three CAPI columns are always there.

mod ads;
mod health;
mod setup;

use crate::{
    State,
    html::{chart, csp, money, page, pct},
    stats::{self, CapiStats, Optimisation},
};
use actix_web::{
    HttpRequest, HttpResponse,
    cookie::{Cookie, SameSite, time::Duration as CookieDuration},
    http::{StatusCode, header},
    web,
};
use chrono::{NaiveDate, Utc};
use domain::analytics::RevenueView;
use domain::api_key::verify_link;
use maud::{Markup, html};
use std::collections::HashMap;
use storage::analytics::{LeadEvents, LevelColumn};
use storage::dashboard::{SignIn, SignInOutcome};
use uuid::Uuid;

const COOKIE: &str = "capi_session";
const LEADS_PER_PAGE: i64 = 25;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let at = runtime::http::resource;
    cfg.service(at("/dashboard/login", "GET").route(web::get().to(login)))
        .service(at("/dashboard/logout", "POST").route(web::post().to(logout)))
        .service(at("/dashboard", "GET").route(web::get().to(dashboard)))
        .service(at("/dashboard/leads/{lead_id}", "GET").route(web::get().to(lead_view)))
        .service(at("/dashboard/leads.csv", "GET").route(web::get().to(leads_csv)))
        .service(at("/dashboard/ads.csv", "GET").route(web::get().to(ads_csv)))
        .configure(setup::routes);
}

fn message_page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", csp()))
        .body(page(title, html! {}, html! { section { p { (text) } } }).into_string())
}

fn ok_page(page: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("Content-Security-Policy", csp()))
        .body(page.into_string())
}

/// Why a dashboard page is not shown.
enum Refusal {
    /// No `reports.dashboard_secret`.
    Off,
    /// No valid session.
    SignIn,
    /// The database could not say.
    Unavailable(anyhow::Error),
}

impl Refusal {
    fn page(self) -> HttpResponse {
        match self {
            Refusal::Off => message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Dashboard off",
                "The dashboard is off: the operator has not set reports.dashboard_secret.",
            ),
            Refusal::SignIn => message_page(
                StatusCode::UNAUTHORIZED,
                "Sign in",
                "Open a sign-in link to see this dashboard (the operator prints one with capi dashboard-link).",
            ),
            Refusal::Unavailable(e) => unavailable(&e, "dashboard session"),
        }
    }
}

fn secret(state: &State) -> Result<&[u8], Refusal> {
    state.config.dashboard_secret.as_deref().ok_or(Refusal::Off)
}

fn link_refused(text: &str) -> HttpResponse {
    message_page(StatusCode::UNAUTHORIZED, "Link not valid", text)
}

fn unavailable(e: &anyhow::Error, what: &str) -> HttpResponse {
    tracing::error!(error = format!("{e:#}"), "{what}");
    message_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Unavailable",
        "Temporarily unavailable, retry later.",
    )
}

/// Opens a sign-in link: once, into a session of its own (a row; the
/// cookie holds its token).
async fn login(q: web::Query<HashMap<String, String>>, state: web::Data<State>) -> HttpResponse {
    let secret = match secret(&state) {
        Ok(s) => s,
        Err(r) => return r.page(),
    };
    let now = Utc::now();
    let token = q.get("token").map(String::as_str).unwrap_or_default();
    let Some(grant) = verify_link(secret, token, now.timestamp()) else {
        return link_refused(
            "This sign-in link is invalid or has expired. Ask for a new one (capi dashboard-link).",
        );
    };
    let ttl = state.config.session_ttl;
    let session = domain::api_key::random_secret();
    let session_hash = domain::api_key::hash(&session);
    let pool = state.pool.clone();
    let work = async move {
        let mut conn = pool.get().await?;
        let sign_in = SignIn {
            account: grant.account,
            generation: grant.generation,
            nonce: &grant.nonce,
            link_expires_at: chrono::DateTime::from_timestamp(grant.expires_unix, 0).unwrap_or(now),
            session_hash: &session_hash,
            session_expires_at: now
                + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(12)),
            role: grant.role,
            link_id: &grant.link_id(),
        };
        Ok::<_, anyhow::Error>(storage::dashboard::sign_in(&mut conn, &sign_in).await?)
    };
    match state.main.run(work).await {
        Ok(Ok(SignInOutcome::SignedIn)) => {}
        Ok(Ok(SignInOutcome::AlreadyUsed)) => {
            return link_refused(
                "This sign-in link was already used: each link signs in once. Ask for a new one (capi dashboard-link).",
            );
        }
        Ok(Ok(SignInOutcome::Revoked)) => {
            return link_refused(
                "This account's dashboard sessions were ended after the link was made. Ask for a new one (capi dashboard-link).",
            );
        }
        Ok(Err(e)) | Err(e) => return unavailable(&e, "dashboard sign-in"),
    }
    let cookie = Cookie::build(COOKIE, session)
        .path("/dashboard")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(state.config.public_url.starts_with("https://"))
        .max_age(CookieDuration::seconds(ttl.as_secs() as i64))
        .finish();
    HttpResponse::SeeOther()
        .cookie(cookie)
        .insert_header((header::LOCATION, "/dashboard"))
        .finish()
}

/// Ends this browser's session (its row and its cookie).
async fn logout(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    if let Some(c) = req.cookie(COOKIE) {
        let hash = domain::api_key::hash(c.value());
        let pool = state.pool.clone();
        let work = async move {
            let mut conn = pool.get().await?;
            Ok::<_, anyhow::Error>(storage::dashboard::end_session(&mut conn, &hash).await?)
        };
        match state.main.run(work).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) | Err(e) => return unavailable(&e, "dashboard sign-out"),
        }
    }
    let mut gone = Cookie::build(COOKIE, "").path("/dashboard").finish();
    gone.make_removal();
    let mut page = message_page(
        StatusCode::OK,
        "Signed out",
        "You are signed out. Open a new sign-in link to come back.",
    );
    let _ = page.add_cookie(&gone);
    page
}

/// The signed-in account: the cookie's session is open, not expired, and
/// of the account's current generation.
async fn session(req: &HttpRequest, state: &State) -> Result<domain::ids::UserAccountId, Refusal> {
    signed_in(req, state).await.map(|s| s.session.account)
}

/// A live session and its token's hash (what a CSRF token is bound to).
struct SignedIn {
    session: storage::dashboard::Session,
    hash: String,
}

async fn signed_in(req: &HttpRequest, state: &State) -> Result<SignedIn, Refusal> {
    secret(state)?;
    let hash = req
        .cookie(COOKIE)
        .map(|c| domain::api_key::hash(c.value()))
        .ok_or(Refusal::SignIn)?;
    let pool = state.pool.clone();
    let key = hash.clone();
    let work = async move {
        let mut conn = pool.get().await?;
        Ok::<_, anyhow::Error>(storage::dashboard::session(&mut conn, &key).await?)
    };
    match state.main.run(work).await {
        Ok(Ok(Some(session))) => Ok(SignedIn { session, hash }),
        Ok(Ok(None)) => Err(Refusal::SignIn),
        Ok(Err(e)) | Err(e) => Err(Refusal::Unavailable(e)),
    }
}

/// A date the form sent; anything else (not a date, out of range) is as
/// if it were not sent.
fn date_param(q: &HashMap<String, String>, name: &str) -> Option<NaiveDate> {
    q.get(name)
        .and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
        .and_then(crate::api::params::in_range)
}

/// The days shown: the form's, else the last 30 to today; a range the API
/// would refuse (reversed, over 366 days) is the last 30 to `until`.
fn shown_range(
    today: NaiveDate,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> (NaiveDate, NaiveDate) {
    let until = until.unwrap_or(today);
    let mut since = since.unwrap_or(until - chrono::Duration::days(29));
    if since > until || (until - since).num_days() >= 366 {
        since = until - chrono::Duration::days(29);
    }
    (since, until)
}

/// The account, its today and the range shown (`None`: the account is gone).
async fn account_range(
    conn: &mut storage::AsyncPgConnection,
    account: domain::ids::UserAccountId,
    since: Option<NaiveDate>,
    until: Option<NaiveDate>,
) -> anyhow::Result<
    Option<(
        storage::reports::ReportAccount,
        NaiveDate,
        NaiveDate,
        NaiveDate,
    )>,
> {
    let Some(a) = storage::reports::account(conn, account).await? else {
        return Ok(None);
    };
    let today = storage::reports::local_today(conn, &a.timezone).await?;
    let (since, until) = shown_range(today, since, until);
    Ok(Some((a, today, since, until)))
}

/// The signed-in account's export of the shown range, or why not.
async fn export_of(
    req: &HttpRequest,
    q: &HashMap<String, String>,
    state: &State,
) -> Result<crate::export::Export, HttpResponse> {
    let account = session(req, state).await.map_err(Refusal::page)?;
    let (since, until) = (date_param(q, "since"), date_param(q, "until"));
    let pool = state.pool.clone();
    let work = async move {
        let mut conn = pool.get().await?;
        let Some((a, _, since, until)) = account_range(&mut conn, account, since, until).await?
        else {
            return Ok::<_, anyhow::Error>(None);
        };
        Ok(Some(crate::export::Export {
            account: a.id,
            timezone: a.timezone,
            dialect: crate::export::Dialect::of(a.language),
            since,
            until,
        }))
    };
    match state.main.run(work).await {
        Ok(Ok(Some(e))) => Ok(e),
        Ok(Ok(None)) => Err(message_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "This account no longer exists.",
        )),
        Ok(Err(e)) | Err(e) => Err(unavailable(&e, "dashboard export")),
    }
}

/// The leads table of the shown range as CSV (`export`).
async fn leads_csv(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> HttpResponse {
    match export_of(&req, &q, &state).await {
        Ok(e) => crate::export::leads(state.pool.clone(), &state.main, e),
        Err(page) => page,
    }
}

/// The ads table of the shown range, grouping and sort as CSV (`export`).
async fn ads_csv(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> HttpResponse {
    let e = match export_of(&req, &q, &state).await {
        Ok(e) => e,
        Err(page) => return page,
    };
    let view = ads::view_of(&q);
    let pool = state.pool.clone();
    let dialect = e.dialect;
    let work = async move {
        let mut conn = pool.get().await?;
        let table =
            crate::ads::table(&mut conn, e.account, &e.timezone, e.since, e.until, view).await?;
        Ok::<_, anyhow::Error>(table)
    };
    match state.main.run(work).await {
        Ok(Ok(table)) => crate::export::ads(&table, dialect),
        Ok(Err(e)) | Err(e) => unavailable(&e, "dashboard ads export"),
    }
}

struct DashboardData {
    name: String,
    stats: CapiStats,
    ads: crate::ads::AdsTable,
    view: crate::ads::View,
    health: crate::health::CapiHealth,
    advice: Optimisation,
    leads: Vec<LeadEvents>,
    total_leads: i64,
    page: i64,
    /// The session may change the set-up (a link to it in the header).
    editor: bool,
}

async fn dashboard(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> HttpResponse {
    let (account, editor) = match signed_in(&req, &state).await {
        Ok(s) => (
            s.session.account,
            s.session.role == domain::api_key::Role::Editor,
        ),
        Err(r) => return r.page(),
    };
    let (since, until) = (date_param(&q, "since"), date_param(&q, "until"));
    let page_no = q
        .get("page")
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 1_000_000);
    let view = ads::view_of(&q);
    let pool = state.pool.clone();
    let work = async move {
        let mut conn = pool.get().await?;
        let Some((a, today, since, until)) =
            account_range(&mut conn, account, since, until).await?
        else {
            return Ok::<_, anyhow::Error>(None);
        };
        let stats = stats::capi_stats(&mut conn, a.id, &a.timezone, since, until).await?;
        let advice = stats::optimisation(&mut conn, a.id, &a.timezone, today).await?;
        let ads = crate::ads::table(&mut conn, a.id, &a.timezone, since, until, view).await?;
        let health = crate::health::capi_health(&mut conn, a.id).await?;
        let (leads, total_leads) = storage::analytics::leads_page(
            &mut conn,
            a.id,
            since,
            until,
            &a.timezone,
            page_no,
            LEADS_PER_PAGE,
        )
        .await?;
        Ok(Some(DashboardData {
            name: a.name,
            stats,
            ads,
            view,
            health,
            advice,
            leads,
            total_leads,
            page: page_no,
            editor,
        }))
    };
    match state.main.run(work).await {
        Ok(Ok(Some(d))) => ok_page(render_dashboard(&d)),
        Ok(Ok(None)) => message_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "This account no longer exists.",
        ),
        Ok(Err(e)) | Err(e) => {
            tracing::error!(error = format!("{e:#}"), "dashboard");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Temporarily unavailable, retry later.",
            )
        }
    }
}

fn sign_out() -> Markup {
    html! {
        form.logout method="post" action="/dashboard/logout" { button type="submit" { "Sign out" } }
    }
}

fn range_form(since: NaiveDate, until: NaiveDate) -> Markup {
    html! {
        form method="get" action="/dashboard" {
            label { "From " input type="date" name="since" value=(since); }
            label { "to " input type="date" name="until" value=(until); }
            button type="submit" { "Show" }
        }
    }
}

fn card(metric: &str, label: &str, value: &str) -> Markup {
    html! {
        div.card data-metric=(metric) { div.label { (label) } div.value { (value) } }
    }
}

/// Revenue per currency: `15000.00 RUB + 1500.50 USD`, or —.
fn revenue(r: &[RevenueView]) -> String {
    if r.is_empty() {
        return "—".to_owned();
    }
    r.iter()
        .map(|v| money(Some(v.amount), Some(&v.currency)))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// ROAS where the spend is in the revenue's currency: `2.50× RUB`, or —.
fn roas(r: &[RevenueView]) -> String {
    let known: Vec<String> = r
        .iter()
        .filter_map(|v| v.roas.map(|x| format!("{x:.2}× {}", v.currency)))
        .collect();
    if known.is_empty() {
        "—".to_owned()
    } else {
        known.join(" · ")
    }
}

/// A lead's paid orders in the leads table: their values, or —.
fn purchases_cell(p: &[storage::analytics::PurchaseColumn]) -> String {
    if p.is_empty() {
        return "—".to_owned();
    }
    p.iter()
        .map(|x| money(Some(x.value), Some(&x.currency)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ✓ or — for one CAPI level of a lead.
fn mark(c: &LevelColumn) -> Markup {
    html! {
        @if c.sent { span.yes { "✓" } } @else { span.no { "—" } }
    }
}

fn when(t: Option<chrono::DateTime<Utc>>, format: &str) -> String {
    t.map(|t| t.format(format).to_string()).unwrap_or_default()
}

fn render_dashboard(d: &DashboardData) -> Markup {
    let s = &d.stats;
    let t = &s.totals;
    let currency = t.spend.as_ref().map(|x| x.currency.as_str());
    let pages = (d.total_leads + LEADS_PER_PAGE - 1) / LEADS_PER_PAGE;
    let page_link = |p: i64, label: &str| {
        html! { a href={ "/dashboard?since=" (s.since) "&until=" (s.until) "&page=" (p) } { (label) } }
    };
    let body = html! {
        (health::section(&d.health))
        section id="summary" {
            h2 { "Summary" }
            p {
                "Leads (new dialogs in CAPI directions): " strong id="leads-count" { (t.leads) }
                " · Spend: " strong id="spend" { (money(t.spend.as_ref().map(|x| x.amount), currency)) }
                " " span.muted { (s.since) " – " (s.until) " (" (s.timezone) ")" }
            }
        }
        @if s.capi_enabled {
            section id="capi-section" {
                h2 { "CAPI events" }
                div.grid {
                    (card("lead", "CAPI Lead", &t.events.lead.to_string()))
                    (card("registration", "CAPI Registration", &t.events.registration.to_string()))
                    (card("schedule", "CAPI Schedule", &t.events.schedule.to_string()))
                    (card("leads_to_lead_pct", "Leads → CAPI Lead", &pct(t.conversions.leads_to_lead_pct)))
                    (card("lead_to_registration_pct", "Lead → Registration", &pct(t.conversions.lead_to_registration_pct)))
                    (card("registration_to_schedule_pct", "Registration → Schedule", &pct(t.conversions.registration_to_schedule_pct)))
                    (card("cost_per_lead", "Cost per Lead", &money(t.costs.cost_per_lead, currency)))
                    (card("cost_per_registration", "Cost per Registration", &money(t.costs.cost_per_registration, currency)))
                    (card("cost_per_schedule", "Cost per Schedule", &money(t.costs.cost_per_schedule, currency)))
                    (card("purchase", "CAPI Purchase", &t.events.purchase.to_string()))
                    (card("revenue", "Revenue", &revenue(&t.revenue)))
                    (card("roas", "ROAS (revenue ÷ spend)", &roas(&t.revenue)))
                }
                h3 { "Funnel by direction" }
                table id="funnel" {
                    tr {
                        th { "Direction" } th { "CAPI" } th { "Leads" } th { "Lead" } th { "Registration" }
                        th { "Schedule" } th { "Leads → Lead" } th { "Lead → Reg." } th { "Reg. → Schedule" }
                        th { "Cost per Lead" } th { "Purchase" } th { "Revenue" } th { "ROAS" }
                    }
                    @for r in &s.directions {
                        @let f = &r.funnel;
                        tr data-direction=(r.direction_id) {
                            td { (r.name) }
                            td { @if r.capi_enabled { "on" } @else { "off" } }
                            td { (f.leads) } td { (f.events.lead) } td { (f.events.registration) } td { (f.events.schedule) }
                            td { (pct(f.conversions.leads_to_lead_pct)) }
                            td { (pct(f.conversions.lead_to_registration_pct)) }
                            td { (pct(f.conversions.registration_to_schedule_pct)) }
                            td {
                                (money(f.costs.cost_per_lead, f.spend.as_ref().map(|x| x.currency.as_str())))
                                @if r.spend_basis == Some(stats::SpendBasis::AdAccount) {
                                    " " span.muted {
                                        @if r.spend_shared { "(whole ad account, shared)" } @else { "(whole ad account)" }
                                    }
                                }
                            }
                            td { (f.events.purchase) }
                            td { (revenue(&f.revenue)) }
                            td { (roas(&f.revenue)) }
                        }
                    }
                }
                p.muted {
                    "A direction's cost is the spend of the ads its dialogs came from; "
                    "“whole ad account” marks a direction none of whose dialogs came from an ad Meta's insights know."
                }
                h3 { "Events per day" }
                (chart(&s.daily))
                h3 { "What to optimise the ads for" }
                p.muted {
                    "Lead first; move up after " (d.advice.min_events) "+ events of the next level in the last 7 days ("
                    (d.advice.last_7_days[0]) " – " (d.advice.last_7_days[1]) ") at a cost per event within ±"
                    (d.advice.stable_within_pct) " % of the week before."
                }
                table id="optimisation" {
                    tr { th { "Direction" } th { "Optimise for" } th { "Why" } }
                    @for a in &d.advice.directions {
                        tr {
                            td { (a.name) }
                            td { strong { (a.advice.event) } " " span.muted { "(" (a.event_name) ")" } }
                            td { (a.advice.reason) }
                        }
                    }
                }
            }
        }
        (ads::section(&d.ads, d.view))
        section id="leads" {
            h2 { "Leads (" (d.total_leads) ")" }
            p { a id="leads-csv" href={ "/dashboard/leads.csv?since=" (s.since) "&until=" (s.until) } download { "Download CSV" } }
            table {
                tr {
                    th { "Lead" } th { "Direction" } th { "First message" } th { "Interest" }
                    th { "Qualified (CAPI)" } th { "Booked" } th { "Purchases" }
                }
                @for l in &d.leads {
                    tr {
                        td { a href={ "/dashboard/leads/" (l.lead_id) } { (l.contact_name.as_deref().unwrap_or("(no name)")) } }
                        td { (l.direction_name.as_deref().unwrap_or("—")) }
                        td { (when(l.first_message, "%Y-%m-%d %H:%M UTC")) }
                        td { (mark(&l.interest)) } td { (mark(&l.qualified)) } td { (mark(&l.scheduled)) }
                        td.purchases { (purchases_cell(&l.purchases)) }
                    }
                }
            }
            @if pages > 1 {
                p.muted {
                    "Page " (d.page) " of " (pages) " "
                    @if d.page > 1 { (page_link(d.page - 1, "← newer")) }
                    @if d.page < pages { " " (page_link(d.page + 1, "older →")) }
                }
            }
        }
    };
    page(
        &d.name,
        html! {
            (range_form(s.since, s.until))
            @if d.editor { a.setup href="/dashboard/setup" { "Set-up" } }
            (sign_out())
        },
        body,
    )
}

async fn lead_view(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    let account = match session(&req, &state).await {
        Ok(a) => a,
        Err(r) => return r.page(),
    };
    let Ok(lead_id) = Uuid::parse_str(&path.into_inner()) else {
        return message_page(StatusCode::NOT_FOUND, "Not found", "No such lead.");
    };
    let pool = state.pool.clone();
    let work = async move {
        let mut conn = pool.get().await?;
        let Some(lead) = storage::analytics::lead(&mut conn, account, lead_id.into()).await? else {
            return Ok::<_, anyhow::Error>(None);
        };
        let attempts = storage::analytics::attempts(&mut conn, lead.dialog_id).await?;
        Ok(Some((lead, attempts)))
    };
    match state.main.run(work).await {
        Ok(Ok(Some((l, attempts)))) => ok_page(render_lead(&l, &attempts)),
        Ok(Ok(None)) => message_page(StatusCode::NOT_FOUND, "Not found", "No such lead."),
        Ok(Err(e)) | Err(e) => {
            tracing::error!(error = format!("{e:#}"), "dashboard lead");
            message_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "Temporarily unavailable, retry later.",
            )
        }
    }
}

/// What an attempt's outcome means, for people.
fn outcome(a: &storage::analytics::Attempt) -> String {
    match a.status.as_str() {
        "success" => "accepted by Meta".to_owned(),
        "skipped" => format!(
            "not sent: {}",
            match a.reason.as_deref() {
                Some("too_old") => "older than Meta's 7 days",
                Some("no_dialog") => "no WhatsApp dialog for the CRM deal",
                Some("no_pixel") => "the direction has no pixel",
                Some("no_access_token") => "no access token on the ad account or user account",
                Some("event_name_not_allowed") => "an event name Meta refuses",
                Some(other) => other,
                None => "no reason recorded",
            }
        ),
        _ => format!(
            "refused{}: {}",
            a.http_status.map(|s| format!(" ({s})")).unwrap_or_default(),
            a.message.as_deref().unwrap_or("no message")
        ),
    }
}

fn render_lead(l: &LeadEvents, attempts: &[storage::analytics::Attempt]) -> Markup {
    let column = |id: &str, title: &str, c: &LevelColumn| {
        html! {
            td id={ "col-" (id) } data-sent=(c.sent) {
                div.label { (title) }
                div class=(if c.sent { "yes" } else { "no" }) { (if c.sent { "✓ sent" } else { "— not sent" }) }
                div.muted { (when(c.sent_at, "%Y-%m-%d %H:%M:%S UTC")) }
                div.muted.event-id { (c.event_id.as_deref().unwrap_or("")) }
            }
        }
    };
    let body = html! {
        section id="lead" {
            h2 { (l.contact_name.as_deref().unwrap_or("(no name)")) }
            p.muted {
                "Direction: " (l.direction_name.as_deref().unwrap_or("—"))
                " · first message " (when(l.first_message, "%Y-%m-%d %H:%M UTC"))
                " · " (if l.from_ad { "from an ad" } else { "not from an ad" })
            }
            table id="capi-columns" {
                tr {
                    (column("interest", "Interest (CAPI Level 1)", &l.interest))
                    (column("qualified", "Qualified (CAPI Level 2)", &l.qualified))
                    (column("scheduled", "Booked (CAPI Level 3)", &l.scheduled))
                }
            }
            h3 { "Purchases (CAPI Level 4)" }
            @if l.purchases.is_empty() {
                p.muted { "None yet." }
            } @else {
                table id="purchases" {
                    tr { th { "Order" } th { "Value" } th { "Sent" } th { "Event id" } }
                    @for p in &l.purchases {
                        tr {
                            td { (p.order_ref) }
                            td { (money(Some(p.value), Some(&p.currency))) }
                            td { @if p.status == "success" { span.yes { "✓ " } (when(p.sent_at, "%Y-%m-%d %H:%M:%S UTC")) } @else { span.no { "— " (p.status) } } }
                            td.muted.event-id { (p.event_id) }
                        }
                    }
                }
            }
            h3 { "Every attempt" }
            @if attempts.is_empty() {
                p.muted { "No event was attempted for this lead." }
            } @else {
                table id="attempts" {
                    tr { th { "Time" } th { "Level" } th { "Event" } th { "Outcome" } th { "Event id" } }
                    @for a in attempts {
                        tr data-status=(a.status) data-level=(a.level) {
                            td { (a.at.format("%Y-%m-%d %H:%M:%S UTC")) }
                            td { (a.level) }
                            td { (a.event_name) @if a.attempt > 1 { " " span.muted { "(attempt " (a.attempt) ")" } } }
                            td.outcome {
                                @match a.status.as_str() {
                                    "success" => { span.yes { "✓ " } }
                                    _ => { span.no { "— " } }
                                }
                                (outcome(a))
                            }
                            td.muted.event-id { (a.event_id) }
                        }
                    }
                }
            }
            p { a href="/dashboard" { "← Dashboard" } }
        }
    };
    page("Lead", sign_out(), body)
}
