//! A direction: made from the set-up index, and its page — its CAPI
//! settings, the WABA's dataset, its bot and qualification prompt.

use super::{
    Editor, Form, back_or, conn, csrf_field, editor, refused, run, see_other, setup_page, submit,
};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::event_names::{ActionSource, default_event_name};
use domain::ids::DirectionId;
use domain::level::{CapiSource, CrmType, Level, NoDialog};
use maud::{Markup, html};
use setup::SetupError;
use setup::directions::{DirectionChange, NewDirection};
use storage::directions::DirectionSettings;

pub async fn create(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let made = submit(
        &req,
        &body,
        &state,
        "/dashboard/setup",
        |f| Ok(f.clone()),
        |e, _, mut c, f: Form| async move {
            let d = new_direction(&e, &f)?;
            setup::directions::create(&mut c, &e.actor, &d).await
        },
    )
    .await;
    match made {
        Ok(id) => see_other(&format!("/dashboard/setup/directions/{id}")),
        Err(r) => r,
    }
}

fn new_direction(e: &Editor, f: &Form) -> Result<NewDirection, SetupError> {
    Ok(NewDirection {
        account: e.account,
        name: f.text("name").unwrap_or_default(),
        ad_account: None,
        capi_enabled: f.flag("capi_enabled")?.unwrap_or(false),
        source: f.word("source")?.unwrap_or(CapiSource::Whatsapp),
        pixel: f.text("pixel"),
        waba: f.text("waba"),
    })
}

struct DirectionPage {
    d: DirectionSettings,
    bot: (bool, Option<String>),
    /// The direction's own qualification prompt (`None`: the generic one).
    qualification: Option<String>,
}

pub async fn edit(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<State>,
) -> HttpResponse {
    let e = match editor(&req, &state).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let Ok(id) = path.parse::<DirectionId>() else {
        return refused(
            SetupError::NotFound(format!("no direction {path}")),
            "/dashboard/setup",
        );
    };
    let pool = state.pool.clone();
    let account = e.account;
    let data = run(&state, async move {
        let mut c = conn(&pool).await?;
        let d = setup::directions::find(&mut c, Some(account), id).await?;
        let bot = storage::directions::direction_bot(&mut c, id)
            .await?
            .unwrap_or((false, None));
        let qualification = storage::qualification::prompt(&mut c, id)
            .await?
            .and_then(|(_, p)| p)
            .filter(|p| !p.trim().is_empty());
        Ok(DirectionPage {
            d,
            bot,
            qualification,
        })
    })
    .await;
    match data {
        Ok(p) => setup_page(
            &format!("Direction: {}", p.d.name),
            render_direction(&e, &state, &p),
        ),
        Err(err) => refused(err, "/dashboard/setup"),
    }
}

fn select_name(name: &str, current: &str, allowed: &[String]) -> Markup {
    html! {
        select name=(name) {
            @if !allowed.iter().any(|a| a == current) {
                option value=(current) selected { (current) " (not on Meta's list)" }
            }
            @for a in allowed {
                option value=(a) selected[a == current] { (a) }
            }
        }
    }
}

fn render_direction(e: &Editor, state: &State, p: &DirectionPage) -> Markup {
    let d = &p.d;
    let names = d.event_names();
    let allowed = state.setup.allowed_names.names();
    let path = format!("/dashboard/setup/directions/{}", d.id);
    let levels = [Level::Interest, Level::Qualified, Level::Scheduled];
    html! {
        section id="capi" {
            h2 { "CAPI" }
            form id="direction-capi" method="post" action=(path) {
                (csrf_field(e))
                p {
                    label { "CAPI " select name="capi_enabled" {
                        option value="true" selected[d.capi_enabled] { "on" }
                        option value="false" selected[!d.capi_enabled] { "off" }
                    } }
                    label { " Source " select name="source" {
                        @for s in CapiSource::ALL { option value=(s.as_str()) selected[*s == d.capi_source] { (s.as_str()) } }
                    } }
                    label { " CRM " select name="crm" {
                        option value="" selected[d.capi_crm_type.is_none()] { "—" }
                        @for c in CrmType::ALL { option value=(c.as_str()) selected[Some(*c) == d.capi_crm_type] { (c.as_str()) } }
                    } }
                    label { " A CRM deal with no WhatsApp dialog " select name="crm_no_dialog" {
                        @for n in NoDialog::ALL { option value=(n.as_str()) selected[*n == d.capi_crm_no_dialog] { (n.as_str()) } }
                    } }
                }
                p {
                    label { "Dataset (pixel) id " input type="text" name="pixel" value=(d.pixel_id.as_deref().unwrap_or("")); }
                    label { " WhatsApp Business Account id " input type="text" name="waba" value=(d.waba_id.as_deref().unwrap_or("")); }
                }
                table {
                    tr { th { "Level" } th { "Event with a click id (Meta's list)" } th { "Event without a click id" } }
                    @for (i, l) in levels.iter().enumerate() {
                        tr {
                            td { (l.as_str()) }
                            td { (select_name(&format!("event_name_{}", l.as_str()), names.get(*l, ActionSource::BusinessMessaging), allowed)) }
                            td { input type="text" name={ "event_name_" (l.as_str()) "_other" }
                                value=(names.get(*l, ActionSource::Other))
                                placeholder=(default_event_name(levels[i], ActionSource::Other)); }
                        }
                    }
                }
                p {
                    label { "Test event code " input type="text" name="test_event_code" value=(d.test_event_code.as_deref().unwrap_or("")); }
                    label { " Limited Data Use " select name="ldu" {
                        option value="false" selected[!d.ldu_enabled] { "off" }
                        option value="true" selected[d.ldu_enabled] { "on" }
                    } }
                    label { " LDU country " select name="ldu_country" {
                        option value="0" selected[d.ldu_country == 0] { "0 (geolocate)" }
                        option value="1" selected[d.ldu_country == 1] { "1 (US)" }
                    } }
                    label { " LDU state " select name="ldu_state" {
                        option value="0" selected[d.ldu_state == 0] { "0 (geolocate)" }
                        option value="1000" selected[d.ldu_state == 1000] { "1000 (California)" }
                    } }
                }
                button type="submit" { "Save" }
            }
            form id="direction-dataset" method="post" action={ (path) "/dataset" } {
                (csrf_field(e))
                p.muted { "Meta ties business-messaging events to the WhatsApp Business Account's dataset: read it from Meta (made there if missing) and use it as this direction's pixel." }
                button type="submit" { "Use the WABA's dataset" }
            }
        }
        section id="bot" {
            h2 { "Bot" }
            form id="direction-bot" method="post" action={ (path) "/bot" } {
                (csrf_field(e))
                p { label { "Bot " select name="bot_enabled" {
                    option value="true" selected[p.bot.0] { "on" }
                    option value="false" selected[!p.bot.0] { "off" }
                } } }
                p { label { "Prompt (business, tone, language; empty: the generic one)" br;
                    textarea name="prompt" rows="8" cols="80" { (p.bot.1.as_deref().unwrap_or("")) } } }
                button type="submit" { "Save" }
            }
        }
        section id="qualification" {
            h2 { "Qualification prompt" }
            p.muted { "What the model reads to decide levels 2 and 3. "
                @if p.qualification.is_none() { "Now: the generic one." } @else { "Now:" } }
            @if let Some(q) = &p.qualification { pre.prompt { (q) } }
            form id="direction-qualification" method="post" action={ (path) "/qualification-prompt" } {
                (csrf_field(e))
                p { label { "What the business sells " input type="text" name="sells" size="60"; } }
                p { label { "Who the good customer is " input type="text" name="good_customer" size="60"; } }
                p { label { "How booking works " input type="text" name="booking" size="60"; } }
                button type="submit" { "Write it with the model" }
            }
        }
        section id="crm-mapping" {
            h2 { "CRM mapping" }
            p { a href={ (path) "/crm" } { "Choose which CRM status or field means each level" } }
        }
    }
}

fn direction_change(f: &Form) -> Result<DirectionChange, SetupError> {
    let name = |l: &str, other: bool| {
        f.text(&format!(
            "event_name_{l}{}",
            if other { "_other" } else { "" }
        ))
    };
    let levels = ["interest", "qualified", "scheduled"];
    Ok(DirectionChange {
        capi_enabled: f.flag("capi_enabled")?,
        source: f.word("source")?,
        crm: f.word("crm")?,
        crm_no_dialog: f.word("crm_no_dialog")?,
        pixel: f.text("pixel"),
        waba: f.text("waba"),
        ad_account: None,
        event_names: levels.map(|l| name(l, false)),
        event_names_other: levels.map(|l| name(l, true)),
        test_event_code: f.text("test_event_code"),
        ldu: f.flag("ldu")?,
        ldu_country: f.number("ldu_country")?,
        ldu_state: f.number("ldu_state")?,
    })
}

fn direction_id(path: &str) -> Result<DirectionId, SetupError> {
    path.parse()
        .map_err(|_| SetupError::NotFound(format!("no direction {path}")))
}

pub async fn update(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let back = format!("/dashboard/setup/directions/{path}");
    let done = submit(
        &req,
        &body,
        &state,
        &back,
        |f| Ok((direction_id(&path)?, direction_change(f)?)),
        |e, ctx, mut c, (id, change)| async move {
            let allowed = &ctx.allowed_names;
            setup::directions::update(&mut c, &e.actor, allowed, Some(e.account), id, &change).await
        },
    )
    .await;
    back_or(done, &back)
}

pub async fn bot(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let back = format!("/dashboard/setup/directions/{path}");
    let done = submit(
        &req,
        &body,
        &state,
        &back,
        |f| {
            Ok((
                direction_id(&path)?,
                f.flag("bot_enabled")?,
                f.text("prompt"),
            ))
        },
        |e, _, mut c, (id, enabled, prompt)| async move {
            let prompt = prompt.as_deref();
            setup::directions::set_bot(&mut c, &e.actor, Some(e.account), id, enabled, prompt).await
        },
    )
    .await;
    back_or(done, &back)
}

pub async fn dataset(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let back = format!("/dashboard/setup/directions/{path}");
    let done = submit(
        &req,
        &body,
        &state,
        &back,
        |_| direction_id(&path),
        |e, ctx, mut c, id| async move {
            let keys = ctx.store.keys();
            setup::directions::use_waba_dataset(
                &mut c,
                keys,
                &ctx.graph,
                &e.actor,
                Some(e.account),
                id,
            )
            .await
            .map(|_| ())
        },
    )
    .await;
    back_or(done, &back)
}

pub async fn qualification_prompt(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let back = format!("/dashboard/setup/directions/{path}");
    let done = submit(
        &req,
        &body,
        &state,
        &back,
        |f| {
            let b = domain::qualification::BusinessDescription {
                sells: f.text("sells").unwrap_or_default(),
                good_customer: f.text("good_customer").unwrap_or_default(),
                booking: f.text("booking").unwrap_or_default(),
            };
            Ok((direction_id(&path)?, b))
        },
        |e, ctx, mut c, (id, b)| async move {
            let Some(llm) = ctx.llm.as_ref() else {
                return Err(SetupError::Invalid("no model is configured ([llm])".into()));
            };
            setup::qualification::generate(&mut c, llm, &e.actor, Some(e.account), id, &b, true)
                .await
                .map(|_| ())
        },
    )
    .await;
    back_or(done, &format!("{back}#qualification"))
}
