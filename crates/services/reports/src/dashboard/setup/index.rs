//! The set-up index: the account's directions (and a new one), its
//! WhatsApp numbers (connect an Evolution instance, map a Cloud API number)
//! and its CRM connections (connect one by OAuth).

use super::{Editor, conn, csrf_field, editor, refused, run, setup_page};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, web};
use domain::level::CapiSource;
use maud::{Markup, html};
use storage::directions::{DirectionSettings, InstanceRow};

struct Index {
    directions: Vec<DirectionSettings>,
    instances: Vec<InstanceRow>,
    connections: Vec<storage::crm::ConnectionSummary>,
}

pub async fn index(req: HttpRequest, state: web::Data<State>) -> HttpResponse {
    let e = match editor(&req, &state).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let pool = state.pool.clone();
    let store = state.setup.store.clone();
    let account = e.account;
    let data = run(&state, async move {
        let mut c = conn(&pool).await?;
        let directions: Vec<DirectionSettings> = storage::directions::list_directions(&mut c)
            .await?
            .into_iter()
            .map(|d| d.settings)
            .filter(|d| d.user_account_id == account)
            .collect();
        let instances = storage::directions::list_instances(&mut c)
            .await?
            .into_iter()
            .filter(|i| {
                i.direction_id
                    .is_some_and(|d| directions.iter().any(|x| x.id == d))
            })
            .collect();
        let connections = storage::crm::list_connections(&mut c, store.keys(), account).await?;
        Ok(Index {
            directions,
            instances,
            connections,
        })
    })
    .await;
    match data {
        Ok(d) => setup_page("Set-up", render_index(&e, &state, &d)),
        Err(err) => refused(err, "/dashboard"),
    }
}

fn on_off(v: bool) -> &'static str {
    if v { "on" } else { "off" }
}

fn render_index(e: &Editor, state: &State, d: &Index) -> Markup {
    html! {
        section id="directions" {
            h2 { "Directions" }
            table {
                tr { th { "Name" } th { "CAPI" } th { "Source" } th { "Dataset (pixel)" } th {} }
                @for x in &d.directions {
                    tr {
                        td { (x.name) }
                        td { (on_off(x.capi_enabled)) }
                        td { (x.capi_source.as_str()) }
                        td { (x.pixel_id.as_deref().unwrap_or("—")) }
                        td { a href={ "/dashboard/setup/directions/" (x.id) } { "Edit" } }
                    }
                }
            }
            h3 { "New direction" }
            form id="new-direction" method="post" action="/dashboard/setup/directions" {
                (csrf_field(e))
                label { "Name " input type="text" name="name" required; }
                label { " CAPI " select name="capi_enabled" { option value="true" { "on" } option value="false" { "off" } } }
                label { " Source " select name="source" {
                    @for s in CapiSource::ALL { option value=(s.as_str()) { (s.as_str()) } }
                } }
                " " button type="submit" { "Create" }
            }
        }
        section id="numbers" {
            h2 { "WhatsApp numbers" }
            table {
                tr { th { "Instance" } th { "Channel" } th { "Number" } th { "Direction" } }
                @for i in &d.instances {
                    tr {
                        td { (i.instance_name) }
                        td { (i.channel.as_str()) }
                        td { (i.phone_number.as_deref().unwrap_or("—")) }
                        td { (d.directions.iter().find(|x| Some(x.id) == i.direction_id).map_or("—", |x| x.name.as_str())) }
                    }
                }
            }
            h3 { "Connect an Evolution API instance" }
            p.muted { "Sets the instance's webhook at Evolution API (the gateway's address, MESSAGES_UPSERT, a secret header) and reads it back." }
            form id="connect-instance" method="post" action="/dashboard/setup/instances" {
                (csrf_field(e))
                label { "Instance " input type="text" name="instance" required; }
                label { " Direction " select name="direction" {
                    @for x in &d.directions { option value=(x.id) { (x.name) } }
                } }
                label { " Number " input type="text" name="phone"; }
                label { " Evolution API key " input type="password" name="evolution_api_key" autocomplete="off"; }
                label { " API " select name="evolution_api_version" { option value="v2" { "v2" } option value="v1" { "v1" } } }
                " " button type="submit" { "Connect" }
            }
            h3 { "Map a WhatsApp Cloud API number" }
            p.muted { "Meta sends a number's messages only to apps subscribed to its WhatsApp Business Account: subscribing uses the number's token." }
            form id="map-cloud" method="post" action="/dashboard/setup/numbers" {
                (csrf_field(e))
                label { "Phone number id " input type="text" name="phone_number_id" inputmode="numeric" required; }
                label { " Direction " select name="direction" {
                    @for x in &d.directions { option value=(x.id) { (x.name) } }
                } }
                label { " WABA id " input type="text" name="waba_id" inputmode="numeric"; }
                label { " Number " input type="text" name="phone"; }
                label { " Access token " input type="password" name="access_token" autocomplete="off"; }
                label { " App id " input type="text" name="app" inputmode="numeric"; }
                label { " Subscribe the app " select name="subscribe_app" { option value="true" { "yes" } option value="false" { "no" } } }
                " " button type="submit" { "Map" }
            }
        }
        section id="crm" {
            h2 { "CRM connections" }
            @if d.connections.is_empty() {
                p.muted { "None yet." }
            }
            table {
                @for c in &d.connections {
                    tr { td { (c.crm_type.as_str()) } td { (c.host) } td.muted { (c.id) } }
                }
            }
            (super::crm_connect::forms(e, state))
            p.muted { "A long-lived amoCRM token or a Bitrix24 incoming webhook: capi crm connect (see the README)." }
        }
    }
}
