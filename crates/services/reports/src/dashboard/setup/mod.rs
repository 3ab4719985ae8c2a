//! The set-up pages: what an editor changes in the browser instead of with
//! `capi` (directions, WhatsApp numbers, the CRM mapping, the bot), and the
//! audit trail. Each form calls the same operation as the CLI (the `setup`
//! crate), so a refusal reads the same in both.
//!
//! Access: a signed-in session whose link was made with `--role editor`
//! (`capi dashboard-link`); a viewer gets 403 on every page and form here.
//! Every POST carries the session's CSRF token (`csrf`, an HMAC of the
//! session bound to it, `domain::api_key::csrf_token`) on top of the
//! SameSite=Lax cookie; a form without it, or with another session's, gets
//! 403 and changes nothing. No script: plain forms, answered by a redirect
//! (303) to the page that shows the result.

mod audit;
mod crm;
mod crm_connect;
mod directions;
mod index;
mod numbers;

use super::{Refusal, SignedIn, message_page, ok_page, signed_in, unavailable};
use crate::{SetupContext, State, html::page};
use actix_web::{HttpRequest, HttpResponse, http::StatusCode, http::header, web};
use domain::api_key::Role;
use domain::ids::UserAccountId;
use maud::{Markup, html};
use setup::{Actor, SetupError};
use std::sync::Arc;

pub fn routes(cfg: &mut web::ServiceConfig) {
    let at = runtime::http::resource;
    cfg.service(at("/dashboard/setup", "GET").route(web::get().to(index::index)))
        .service(
            at("/dashboard/setup/directions", "POST").route(web::post().to(directions::create)),
        )
        .service(
            at("/dashboard/setup/directions/{id}", "GET, POST")
                .route(web::get().to(directions::edit))
                .route(web::post().to(directions::update)),
        )
        .service(
            at("/dashboard/setup/directions/{id}/bot", "POST")
                .route(web::post().to(directions::bot)),
        )
        .service(
            at(
                "/dashboard/setup/directions/{id}/qualification-prompt",
                "POST",
            )
            .route(web::post().to(directions::qualification_prompt)),
        )
        .service(
            at("/dashboard/setup/directions/{id}/dataset", "POST")
                .route(web::post().to(directions::dataset)),
        )
        .service(at("/dashboard/setup/directions/{id}/crm", "GET").route(web::get().to(crm::page)))
        .service(
            at("/dashboard/setup/directions/{id}/crm-rules", "POST")
                .route(web::post().to(crm::set_rules)),
        )
        .service(
            at("/dashboard/setup/directions/{id}/crm-purchase", "POST")
                .route(web::post().to(crm::set_purchase)),
        )
        .service(
            at("/dashboard/setup/directions/{id}/crm-test", "POST")
                .route(web::post().to(crm::test_deal)),
        )
        .service(
            at("/dashboard/setup/crm/oauth/{crm}/start", "POST")
                .route(web::post().to(crm_connect::start)),
        )
        .service(
            at("/dashboard/setup/crm/oauth/{crm}", "GET")
                .route(web::get().to(crm_connect::callback)),
        )
        .service(at("/dashboard/setup/instances", "POST").route(web::post().to(numbers::connect)))
        .service(at("/dashboard/setup/numbers", "POST").route(web::post().to(numbers::map_cloud)))
        .service(at("/dashboard/setup/audit", "GET").route(web::get().to(audit::page)));
}

/// A signed-in editor, with what its forms carry.
pub(super) struct Editor {
    pub account: UserAccountId,
    pub actor: Actor,
    pub csrf: String,
    /// The session's token hash (what an OAuth state is bound to).
    pub session_hash: String,
}

fn forbidden(text: &str) -> HttpResponse {
    message_page(StatusCode::FORBIDDEN, "Not allowed", text)
}

fn viewer_refused() -> HttpResponse {
    forbidden(
        "This sign-in is read-only (viewer). Ask for an editor's link (capi dashboard-link --role editor) to change the set-up.",
    )
}

/// The session as an editor; `None` for a viewer.
fn editor_of(state: &State, s: SignedIn) -> Option<Editor> {
    if s.session.role != Role::Editor {
        return None;
    }
    let secret = state.config.dashboard_secret.as_deref().unwrap_or_default();
    Some(Editor {
        account: s.session.account,
        actor: Actor::Link(s.session.link_id.clone()),
        csrf: domain::api_key::csrf_token(secret, &s.hash),
        session_hash: s.hash,
    })
}

/// A page's editor: 401 without a session, 403 for a viewer.
pub(super) async fn editor(req: &HttpRequest, state: &State) -> Result<Editor, HttpResponse> {
    let s = signed_in(req, state).await.map_err(Refusal::page)?;
    editor_of(state, s).ok_or_else(viewer_refused)
}

/// A form's editor: as [`editor`], and the form's CSRF token must be the
/// session's (403 otherwise: nothing is changed).
pub(super) async fn editor_posting(
    req: &HttpRequest,
    state: &State,
    form: &Form,
) -> Result<Editor, HttpResponse> {
    let s = signed_in(req, state).await.map_err(Refusal::page)?;
    let secret = state.config.dashboard_secret.as_deref().unwrap_or_default();
    let sent = form.get("csrf").unwrap_or_default();
    let valid = domain::api_key::verify_csrf(secret, &s.hash, sent);
    let e = editor_of(state, s).ok_or_else(viewer_refused)?;
    if !valid {
        return Err(forbidden(
            "The form's security token is missing or does not belong to this session: nothing was changed. Reload the page and send the form again.",
        ));
    }
    Ok(e)
}

/// A posted form's fields in order (a name may repeat: multiple choices).
#[derive(Clone)]
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The field as given, `None` when absent (an empty text is kept: the
    /// operation decides what empty means).
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    /// A `true`/`false` choice; anything else is a refusal naming the field.
    pub fn flag(&self, name: &str) -> Result<Option<bool>, SetupError> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(v) => Err(SetupError::Invalid(format!(
                "{name}: true or false, not {v:?}"
            ))),
        }
    }

    /// A whole number; anything else is a refusal naming the field.
    pub fn number(&self, name: &str) -> Result<Option<i32>, SetupError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| SetupError::Invalid(format!("{name}: a whole number, not {v:?}"))),
        }
    }

    /// A word of a closed set (`text_enum`), or a refusal naming the field.
    pub fn word<T: std::str::FromStr<Err = String>>(
        &self,
        name: &str,
    ) -> Result<Option<T>, SetupError> {
        match self.get(name).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|e| SetupError::Invalid(format!("{name}: {e}"))),
        }
    }
}

/// The hidden field every form carries.
pub(super) fn csrf_field(e: &Editor) -> Markup {
    html! { input type="hidden" name="csrf" value=(e.csrf); }
}

/// A set-up page with the set-up navigation.
pub(super) fn setup_page(title: &str, body: Markup) -> HttpResponse {
    let nav = html! {
        nav.setup {
            a href="/dashboard" { "Dashboard" } " · "
            a href="/dashboard/setup" { "Set-up" } " · "
            a href="/dashboard/setup/audit" { "Audit trail" }
        }
    };
    ok_page(page(title, nav, body))
}

/// A refused change: the operation's own message (the CLI prints the same),
/// with the status it deserves; nothing was changed.
pub(super) fn refused(e: SetupError, back: &str) -> HttpResponse {
    let status = match &e {
        SetupError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        SetupError::NotFound(_) => StatusCode::NOT_FOUND,
        SetupError::Upstream(_) => StatusCode::BAD_GATEWAY,
        SetupError::Database(_) | SetupError::Internal(_) => {
            return unavailable(&anyhow::anyhow!("{e}"), "set-up change");
        }
    };
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", crate::html::csp()))
        .body(
            page(
                "Not changed",
                html! {},
                html! {
                    section {
                        p.error { (e.to_string()) }
                        p { a href=(back) { "Back" } }
                    }
                },
            )
            .into_string(),
        )
}

/// A change made: to `to`; refused: the refusal's page.
pub(super) fn back_or(done: Result<(), HttpResponse>, to: &str) -> HttpResponse {
    match done {
        Ok(()) => see_other(to),
        Err(r) => r,
    }
}

/// After a change: to the page that shows it.
pub(super) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A set-up form, end to end: the editor and its token checked, the form
/// read into the operation's input (`read`), the operation run with a
/// database connection on the main runtime (`op`); a refusal is the page
/// naming it, with a link `back`.
pub(super) async fn submit<I, T, Fut>(
    req: &HttpRequest,
    body: &[u8],
    state: &State,
    back: &str,
    read: impl FnOnce(&Form) -> Result<I, SetupError>,
    op: impl FnOnce(Editor, Arc<SetupContext>, storage::PooledConn, I) -> Fut + Send + 'static,
) -> Result<T, HttpResponse>
where
    I: Send + 'static,
    T: Send + 'static,
    Fut: std::future::Future<Output = Result<T, SetupError>> + Send + 'static,
{
    let form = Form::parse(body);
    let e = editor_posting(req, state, &form).await?;
    let input = read(&form).map_err(|err| refused(err, back))?;
    let pool = state.pool.clone();
    let ctx = state.setup.clone();
    run(
        state,
        async move { op(e, ctx, conn(&pool).await?, input).await },
    )
    .await
    .map_err(|err| refused(err, back))
}

/// Runs database work on the main runtime (as every dashboard page does).
pub(super) async fn run<T: Send + 'static>(
    state: &State,
    work: impl std::future::Future<Output = Result<T, SetupError>> + Send + 'static,
) -> Result<T, SetupError> {
    match state.main.run(work).await {
        Ok(r) => r,
        Err(e) => Err(SetupError::Internal(e)),
    }
}

/// A database connection for the operations.
pub(super) async fn conn(pool: &storage::DbPool) -> Result<storage::PooledConn, SetupError> {
    pool.get()
        .await
        .map_err(|e| SetupError::Internal(anyhow::anyhow!("the database pool: {e}")))
}
