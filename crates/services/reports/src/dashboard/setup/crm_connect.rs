//! Connecting amoCRM or Bitrix24 by OAuth from the browser: the form starts
//! the authorisation and links the browser to the CRM's consent page; the
//! CRM sends it back here with a code and the state, and the connection is
//! made (tokens sealed at once). The page then shows the webhook address to
//! give the CRM, once.

use super::{Editor, conn, editor, refused, run, setup_page, submit};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::level::CrmType;
use maud::{Markup, html};
use setup::SetupError;
use setup::crm_oauth::{Callback, Endpoints, Start};
use std::collections::HashMap;

/// The redirect URI to register in the CRM's integration (app).
pub(super) fn redirect_uri(state: &State, crm: CrmType) -> String {
    format!(
        "{}/dashboard/setup/crm/oauth/{crm}",
        state.config.public_url
    )
}

fn endpoints(state: &State) -> Endpoints<'_> {
    Endpoints {
        amocrm_authorize: &state.setup.amocrm_authorize_url,
        bitrix24_token: &state.setup.bitrix24_token_url,
    }
}

/// The start forms (on the set-up index).
pub(super) fn forms(e: &Editor, state: &State) -> Markup {
    html! {
        h3 { "Connect amoCRM / Kommo" }
        p.muted { "In amoCRM, create an integration with the redirect URI " code { (redirect_uri(state, CrmType::AmoCrm)) }
            ", then give its id and secret key here; amoCRM asks you to allow access and sends you back." }
        form id="connect-amocrm" method="post" action="/dashboard/setup/crm/oauth/amocrm/start" {
            (super::csrf_field(e))
            label { "Account address " input type="url" name="base_url" placeholder="https://clinic.amocrm.ru" required; }
            label { " Integration id " input type="text" name="client_id" required; }
            label { " Secret key " input type="password" name="client_secret" autocomplete="off" required; }
            label { " Phones without a country code are from " input type="text" name="default_region" value="RU" size="3"; }
            " " button type="submit" { "Connect" }
        }
        h3 { "Connect Bitrix24" }
        p.muted { "In Bitrix24, register a local application with the handler " code { (redirect_uri(state, CrmType::Bitrix24)) }
            " (scope crm), then give its client id, client secret and application token here." }
        form id="connect-bitrix24" method="post" action="/dashboard/setup/crm/oauth/bitrix24/start" {
            (super::csrf_field(e))
            label { "Portal address " input type="url" name="base_url" placeholder="https://clinic.bitrix24.ru" required; }
            label { " Client id " input type="text" name="client_id" required; }
            label { " Client secret " input type="password" name="client_secret" autocomplete="off" required; }
            label { " Application token " input type="password" name="application_token" autocomplete="off" required; }
            label { " Phones without a country code are from " input type="text" name="default_region" value="RU" size="3"; }
            " " button type="submit" { "Connect" }
        }
    }
}

fn crm_of(path: &str) -> Result<CrmType, SetupError> {
    path.parse()
        .map_err(|_| SetupError::NotFound(format!("no CRM {path:?}: amocrm or bitrix24")))
}

pub async fn start(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let crm = crm_of(&path);
    let name = match crm {
        Ok(CrmType::Bitrix24) => "Bitrix24",
        _ => "amoCRM",
    };
    let redirect = crm
        .as_ref()
        .map(|c| redirect_uri(&state, *c))
        .unwrap_or_default();
    let st = state.clone();
    let consent = submit(
        &req,
        &body,
        &state,
        "/dashboard/setup#crm",
        |f| {
            Ok(Start {
                crm: crm?,
                base_url: f.text("base_url").unwrap_or_default(),
                client_id: f.text("client_id").unwrap_or_default(),
                client_secret: f.text("client_secret").unwrap_or_default(),
                application_token: f.text("application_token"),
                default_region: f
                    .text("default_region")
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or_else(|| "RU".into()),
            })
        },
        |e, ctx, mut c, s| async move {
            let keys = ctx.store.keys();
            let (account, session) = (e.account, &e.session_hash);
            setup::crm_oauth::start(
                &mut c,
                keys,
                account,
                session,
                &endpoints(&st),
                &redirect,
                &s,
            )
            .await
        },
    )
    .await;
    // A page with a link, not a redirect: the pages' CSP allows forms to
    // post only here (`form-action 'self'`), and browsers hold a form's
    // redirect to that too, so a 303 to the CRM would be blocked.
    match consent {
        Ok(url) => setup_page(
            &format!("Connect {name}"),
            html! {
                section id="consent" {
                    p { (name) " asks you to allow access, then sends you back here." }
                    p { a id="consent-link" href=(url) { "Continue to " (name) " →" } }
                }
            },
        ),
        Err(r) => r,
    }
}

pub async fn callback(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> HttpResponse {
    let e = match editor(&req, &state).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let crm = match crm_of(&path) {
        Ok(c) => c,
        Err(err) => return refused(err, "/dashboard/setup#crm"),
    };
    let q = q.into_inner();
    let pool = state.pool.clone();
    let st = state.clone();
    let done = run(&state, async move {
        let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let cb = Callback {
            state: get("state"),
            code: get("code"),
            host: match crm {
                CrmType::AmoCrm => get("referer"),
                CrmType::Bitrix24 => get("domain"),
            },
            member_id: q.get("member_id").map(String::as_str),
        };
        let mut c = conn(&pool).await?;
        setup::crm_oauth::finish(
            &mut c,
            st.setup.store.keys(),
            &st.setup.http,
            &endpoints(&st),
            &e.actor,
            e.account,
            &e.session_hash,
            crm,
            &cb,
        )
        .await
    })
    .await;
    let (name, where_to) = match crm {
        CrmType::AmoCrm => (
            "amoCRM",
            "in amoCRM (Settings → Integrations → Web hooks, lead status changes). It holds the webhook's secret and is shown once",
        ),
        CrmType::Bitrix24 => (
            "Bitrix24",
            "as the application's event handler (ONCRMDEALUPDATE, ONCRMLEADUPDATE)",
        ),
    };
    match done {
        Ok((id, hook_path)) => setup_page(
            &format!("{name} connected"),
            html! {
                section id="connected" {
                    h2 { "Connected" }
                    p { "The connection " code { (id) } " holds the tokens (sealed); they are refreshed before they expire." }
                    p { "Give this address " (where_to) ":" }
                    p { code.hook { (state.setup.gateway_url) (hook_path) } }
                    p { a href="/dashboard/setup" { "Back to the set-up" } }
                }
            },
        ),
        Err(err) => refused(err, "/dashboard/setup#crm"),
    }
}
