//! Connecting amoCRM by OAuth from the browser: the form starts the
//! authorisation and sends the browser to amoCRM's consent page; amoCRM
//! sends it back here with a code and the state, and the connection is made
//! (tokens sealed at once). The page then shows the webhook address to
//! paste into amoCRM, once.

use super::{Editor, Form, conn, editor, editor_posting, refused, run, setup_page};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, http::header, web};
use maud::{Markup, html};
use setup::crm_oauth::{AmoStart, Callback};
use std::collections::HashMap;

/// The redirect URI to register in the amoCRM integration.
pub(super) fn redirect_uri(state: &State) -> String {
    format!(
        "{}/dashboard/setup/crm/oauth/amocrm",
        state.config.public_url
    )
}

/// The start form (on the set-up index).
pub(super) fn form(e: &Editor, state: &State) -> Markup {
    html! {
        h3 { "Connect amoCRM / Kommo" }
        p.muted { "In amoCRM, create an integration with the redirect URI " code { (redirect_uri(state)) }
            ", then give its id and secret key here; amoCRM asks you to allow access and sends you back." }
        form id="connect-amocrm" method="post" action="/dashboard/setup/crm/oauth/amocrm/start" {
            (super::csrf_field(e))
            label { "Account address " input type="url" name="base_url" placeholder="https://clinic.amocrm.ru" required; }
            label { " Integration id " input type="text" name="client_id" required; }
            label { " Secret key " input type="password" name="client_secret" autocomplete="off" required; }
            label { " Phones without a country code are from " input type="text" name="default_region" value="RU" size="3"; }
            " " button type="submit" { "Connect" }
        }
    }
}

pub async fn start(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let form = Form::parse(&body);
    let e = match editor_posting(&req, &state, &form).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let s = AmoStart {
        base_url: form.text("base_url").unwrap_or_default(),
        client_id: form.text("client_id").unwrap_or_default(),
        client_secret: form.text("client_secret").unwrap_or_default(),
        default_region: form
            .text("default_region")
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| "RU".into()),
    };
    let pool = state.pool.clone();
    let ctx = state.setup.clone();
    let redirect = redirect_uri(&state);
    match run(&state, async move {
        let mut c = conn(&pool).await?;
        setup::crm_oauth::start_amocrm(
            &mut c,
            ctx.store.keys(),
            e.account,
            &e.session_hash,
            &ctx.amocrm_authorize_url,
            &redirect,
            &s,
        )
        .await
    })
    .await
    {
        Ok(url) => HttpResponse::SeeOther()
            .insert_header((header::LOCATION, url))
            .finish(),
        Err(err) => refused(err, "/dashboard/setup#crm"),
    }
}

pub async fn callback(
    req: HttpRequest,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> HttpResponse {
    let e = match editor(&req, &state).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let q = q.into_inner();
    let pool = state.pool.clone();
    let ctx = state.setup.clone();
    let actor = e.actor.clone();
    let (account, session) = (e.account, e.session_hash.clone());
    let done = run(&state, async move {
        let get = |k: &str| q.get(k).map(String::as_str).unwrap_or_default();
        let cb = Callback {
            state: get("state"),
            code: get("code"),
            referer: get("referer"),
        };
        let mut c = conn(&pool).await?;
        setup::crm_oauth::finish_amocrm(
            &mut c,
            ctx.store.keys(),
            &ctx.http,
            &actor,
            account,
            &session,
            &cb,
        )
        .await
    })
    .await;
    match done {
        Ok((id, hook_path)) => setup_page(
            "amoCRM connected",
            html! {
                section id="connected" {
                    h2 { "Connected" }
                    p { "The connection " code { (id) } " holds the tokens (sealed); they are refreshed before they expire." }
                    p { "Paste this address in amoCRM (Settings → Integrations → Web hooks, lead status changes). It is shown once:" }
                    p { code.hook { (state.setup.gateway_url) (hook_path) } }
                    p { a href={ "/dashboard/setup" } { "Back to the set-up" } }
                }
            },
        ),
        Err(err) => refused(err, "/dashboard/setup#crm"),
    }
}
