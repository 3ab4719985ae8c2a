//! The CRM mapping editor: the CRM's own fields and statuses (read through
//! the shared pace), one form per level to choose the value(s) that mean
//! it, and "test with a real deal", which reads one deal and shows the
//! levels the rules give it. The same operations as `capi crm fields`,
//! `capi direction crm-fields set` and `capi crm-match`.

use super::{Editor, Form, back_or, conn, csrf_field, refused, run, see_other, setup_page, submit};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::crm::mapping::{FieldRule, LevelMapping};
use domain::crm::purchase::PurchaseSetting;
use domain::ids::{ConnectionId, DirectionId};
use domain::level::Level;
use maud::{Markup, html};
use serde_json::Value;
use setup::SetupError;
use std::collections::HashMap;

const LEVELS: [Level; 3] = [Level::Interest, Level::Qualified, Level::Scheduled];

struct Editing {
    name: String,
    mapping: LevelMapping,
    connections: Vec<storage::crm::ConnectionSummary>,
    /// The chosen connection's fields, or why they could not be read.
    fields: Option<Result<Vec<Value>, String>>,
    connection: Option<ConnectionId>,
    entity: Option<String>,
    /// A tried deal: its id and the levels it reached.
    tried: Option<(String, Vec<Level>)>,
    /// The purchase setting, as text.
    purchase: String,
}

fn ids(
    path: &str,
    q: &HashMap<String, String>,
) -> Result<(DirectionId, Option<ConnectionId>), SetupError> {
    let id = path
        .parse()
        .map_err(|_| SetupError::NotFound(format!("no direction {path}")))?;
    let connection = match q.get("connection").map(String::as_str) {
        None | Some("") => None,
        Some(c) => Some(
            c.parse()
                .map_err(|_| SetupError::NotFound(format!("no CRM connection {c}")))?,
        ),
    };
    Ok((id, connection))
}

pub async fn page(
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<HashMap<String, String>>,
    state: web::Data<State>,
) -> HttpResponse {
    let e = match super::editor(&req, &state).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let (id, chosen) = match ids(&path, &q) {
        Ok(x) => x,
        Err(err) => return refused(err, "/dashboard/setup"),
    };
    let entity = q.get("entity").filter(|s| !s.is_empty()).cloned();
    let pool = state.pool.clone();
    let ctx = state.setup.clone();
    let account = e.account;
    let tried = q.get("deal").map(|deal| {
        let levels = q
            .get("levels")
            .map(|l| l.split(',').filter_map(|x| x.parse().ok()).collect())
            .unwrap_or_default();
        (deal.clone(), levels)
    });
    let data = run(&state, async move {
        let mut c = conn(&pool).await?;
        let d = setup::directions::find(&mut c, Some(account), id).await?;
        let mapping = storage::directions::crm_fields(&mut c, id)
            .await?
            .unwrap_or_default();
        let purchase = match storage::directions::purchase_rule(&mut c, id).await? {
            Some(PurchaseSetting::Rule(r)) => serde_json::to_string(&r).unwrap_or_default(),
            Some(PurchaseSetting::Off) => "none".to_owned(),
            _ => "the CRM's default rule".to_owned(),
        };
        let connections = storage::crm::list_connections(&mut c, ctx.store.keys(), account).await?;
        drop(c);
        let connection = chosen.or_else(|| (connections.len() == 1).then(|| connections[0].id));
        let fields = match connection {
            Some(conn_id) => Some(
                setup::crm_mapping::fields(
                    ctx.store.clone(),
                    ctx.crm.clone(),
                    Some(account),
                    conn_id,
                    entity.as_deref(),
                )
                .await
                .map_err(|e| e.to_string()),
            ),
            None => None,
        };
        Ok(Editing {
            name: d.name,
            mapping,
            connections,
            fields,
            connection,
            entity,
            tried,
            purchase,
        })
    })
    .await;
    match data {
        Ok(ed) => setup_page(&format!("CRM mapping: {}", ed.name), render(&e, id, &ed)),
        Err(err) => refused(err, "/dashboard/setup"),
    }
}

/// Whether `value` (`field_id|enum_id`) is one of the level's rules now, so
/// the form shows the current choice and saving it unchanged keeps it.
fn picked(rules: &[FieldRule], value: &str) -> bool {
    rules.iter().any(|r| {
        r.enum_id
            .as_deref()
            .is_some_and(|e| value == format!("{}|{e}", r.field_id))
    })
}

/// `field_id|enum_id` for a choice, and its label.
fn choices(fields: &[Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in fields {
        let id = f["id"].as_str().unwrap_or_default();
        let name = f["name"].as_str().unwrap_or(id);
        for e in f["enums"].as_array().into_iter().flatten() {
            if let (Some(eid), value) = (e["id"].as_str(), e["value"].as_str().unwrap_or_default())
            {
                out.push((format!("{id}|{eid}"), format!("{name}: {value}")));
            }
        }
    }
    out
}

fn render(e: &Editor, id: DirectionId, ed: &Editing) -> Markup {
    let base = format!("/dashboard/setup/directions/{id}");
    let connection = ed.connection.map(|c| c.to_string()).unwrap_or_default();
    html! {
        section id="connection" {
            h2 { "CRM connection" }
            @if ed.connections.is_empty() {
                p { "No CRM connection yet: connect one with capi crm connect (see the README)." }
            }
            form method="get" action={ (base) "/crm" } {
                label { "Connection " select name="connection" {
                    @for c in &ed.connections {
                        option value=(c.id) selected[Some(c.id) == ed.connection] { (c.crm_type.as_str()) " · " (c.host) }
                    }
                } }
                label { " Entity " select name="entity" {
                    @for t in ["leads", "contacts", "companies", "deal", "lead", "contact"] {
                        option value=(t) selected[ed.entity.as_deref() == Some(t)] { (t) }
                    }
                } }
                " " button type="submit" { "Read its fields" }
            }
        }
        @for level in LEVELS {
            section.level id={ "level-" (level.as_str()) } {
                h2 { (level.as_str()) }
                p.muted { "Now: "
                    @if ed.mapping.rules(level).is_empty() { "no rule" }
                    @for r in ed.mapping.rules(level) {
                        span.rule { (r.field_id) " = " (r.enum_id.as_deref().or(r.enum_value.as_deref()).unwrap_or("(any value)")) } " "
                    }
                }
                @match &ed.fields {
                    Some(Ok(fields)) => {
                        form.rules method="post" action={ (base) "/crm-rules" } {
                            (csrf_field(e))
                            input type="hidden" name="level" value=(level.as_str());
                            input type="hidden" name="connection" value=(connection);
                            label { "Any of " select name="pick" multiple size="6" {
                                @for (value, label) in choices(fields) {
                                    option value=(value) selected[picked(ed.mapping.rules(level), &value)] { (label) }
                                }
                            } }
                            " " button type="submit" { "Save " (level.as_str()) }
                        }
                    }
                    Some(Err(why)) => { p.error { (why) } }
                    None => { p.muted { "Choose a connection to pick from its statuses and fields." } }
                }
            }
        }
        section id="purchase" {
            h2 { "Purchase" }
            p.muted { "Now: " (ed.purchase) }
            @if let Some(Ok(fields)) = &ed.fields {
                form method="post" action={ (base) "/crm-purchase" } {
                    (csrf_field(e))
                    input type="hidden" name="connection" value=(connection);
                    p {
                        label { "Purchases " select name="mode" {
                            option value="rule" { "by this rule" }
                            option value="default" { "the CRM's default rule" }
                            option value="off" { "none" }
                        } }
                        label { " when " select name="when" {
                            @for (value, label) in choices(fields) { option value=(value) { (label) } }
                        } }
                    }
                    p {
                        label { "Amount field " input type="text" name="value_field" placeholder="price / OPPORTUNITY"; }
                        label { " Currency field " input type="text" name="currency_field" placeholder="CURRENCY_ID"; }
                        label { " or currency " input type="text" name="currency" size="4" placeholder="RUB"; }
                    }
                    button type="submit" { "Save purchase" }
                }
            }
        }
        section id="try-deal" {
            h2 { "Test with a real deal" }
            @if let Some((deal, levels)) = &ed.tried {
                p.tried { "Deal " (deal) ": "
                    @if levels.is_empty() { "no level" }
                    @for l in levels { span.level { (l.as_str()) } " " }
                }
            }
            form method="post" action={ (base) "/crm-test" } {
                (csrf_field(e))
                input type="hidden" name="connection" value=(connection);
                label { "Deal id " input type="text" name="deal" inputmode="numeric"; }
                " " button type="submit" { "Test" }
            }
        }
    }
}

/// The rules a form's choices make (`field_id|enum_id` each), read as the
/// CLI reads a rules file.
fn picked_rules(form: &Form) -> Result<Vec<FieldRule>, SetupError> {
    let rules: Vec<Value> = form
        .all("pick")
        .into_iter()
        .map(|p| {
            let (field, value) = p.split_once('|').unwrap_or((p, ""));
            serde_json::json!({"field_id": field, "enum_id": value})
        })
        .collect();
    setup::crm_mapping::parse_rules(Value::Array(rules))
}

/// The direction of the path, and the mapping page to go back to.
fn direction_and_back(path: &str, form: &Form) -> (Result<DirectionId, SetupError>, String) {
    let connection = form.get("connection").unwrap_or_default();
    let back = format!("/dashboard/setup/directions/{path}/crm?connection={connection}");
    let id = path
        .parse()
        .map_err(|_| SetupError::NotFound(format!("no direction {path}")));
    (id, back)
}

pub async fn set_rules(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (id, back) = direction_and_back(&path, &Form::parse(&body));
    let done = submit(
        &req,
        &body,
        &state,
        &back,
        |f| {
            let level = f.word::<Level>("level")?.ok_or_else(|| {
                SetupError::Invalid("level: which level the rules are for".into())
            })?;
            Ok((id?, level, picked_rules(f)?))
        },
        |e, _, mut c, (id, level, rules)| async move {
            setup::crm_mapping::set_level(&mut c, &e.actor, Some(e.account), id, level, &rules)
                .await
        },
    )
    .await;
    back_or(done, &back)
}

pub async fn test_deal(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (id, back) = direction_and_back(&path, &Form::parse(&body));
    let tried = submit(
        &req,
        &body,
        &state,
        &back,
        |f| {
            let connection = f
                .get("connection")
                .filter(|c| !c.is_empty())
                .ok_or_else(|| SetupError::Invalid("choose a CRM connection first".into()))?;
            let connection: ConnectionId = connection
                .parse()
                .map_err(|_| SetupError::NotFound(format!("no CRM connection {connection}")))?;
            Ok((id?, connection, f.text("deal").unwrap_or_default()))
        },
        |e, ctx, mut c, (id, connection, deal)| async move {
            let (store, policy) = (ctx.store.clone(), ctx.crm.clone());
            let levels = setup::crm_mapping::try_entity(
                &mut c,
                store,
                policy,
                Some(e.account),
                id,
                connection,
                &deal,
            )
            .await?;
            Ok((deal, levels))
        },
    )
    .await;
    match tried {
        Ok((deal, levels)) => {
            let levels: Vec<&str> = levels.iter().map(|l| l.as_str()).collect();
            see_other(&format!(
                "{back}&deal={}&levels={}",
                deal.trim(),
                levels.join(",")
            ))
        }
        Err(r) => r,
    }
}

/// The purchase setting a form gives, read as the CLI reads its JSON.
fn purchase_of(form: &Form) -> Result<PurchaseSetting, SetupError> {
    match form.get("mode").unwrap_or_default() {
        "default" => return Ok(PurchaseSetting::Default),
        "off" => return setup::crm_mapping::parse_purchase(&Value::Bool(false)),
        _ => {}
    }
    let when = form.get("when").unwrap_or_default();
    let (field, value) = when.split_once('|').unwrap_or((when, ""));
    let mut rule = serde_json::json!({
        "when": {"field_id": field, "enum_id": value},
        "value_field": form.get("value_field").unwrap_or_default().trim(),
    });
    for key in ["currency_field", "currency"] {
        if let Some(v) = form.get(key).map(str::trim).filter(|v| !v.is_empty()) {
            rule[key] = Value::from(v);
        }
    }
    setup::crm_mapping::parse_purchase(&rule)
}

pub async fn set_purchase(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let (id, back) = direction_and_back(&path, &Form::parse(&body));
    let done = submit(
        &req,
        &body,
        &state,
        &back,
        |f| Ok((id?, purchase_of(f)?)),
        |e, _, mut c, (id, setting)| async move {
            setup::crm_mapping::set_purchase(&mut c, &e.actor, Some(e.account), id, &setting).await
        },
    )
    .await;
    back_or(done, &back)
}
