//! Connecting a WhatsApp number from the browser: an Evolution API
//! instance, its webhook set at Evolution and read back
//! (`setup::instances::connect`, the same as `capi instance connect`), or a
//! Cloud API number with the app subscribed to its WABA
//! (`setup::cloud::map`, the same as `capi number map --subscribe-app`).

use super::{Form, back_or, submit};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, web};
use setup::SetupError;
use setup::cloud::CloudNumber;
use setup::instances::ConnectInstance;

fn connect_input(f: &Form) -> Result<ConnectInstance, SetupError> {
    let direction = f.get("direction").unwrap_or_default();
    Ok(ConnectInstance {
        instance: f.text("instance").unwrap_or_default().trim().to_owned(),
        direction: direction
            .parse()
            .map_err(|_| SetupError::NotFound(format!("no direction {direction}")))?,
        phone: f.text("phone"),
        api_key: f.text("evolution_api_key"),
        version: f.word("evolution_api_version")?,
        secret: None,
    })
}

pub async fn connect(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let done = submit(
        &req,
        &body,
        &state,
        "/dashboard/setup",
        connect_input,
        |e, ctx, mut db, c| async move {
            let (keys, evolution) = (ctx.store.keys(), ctx.evolution.as_ref());
            let (gateway, owner) = (&ctx.gateway_url, Some(e.account));
            setup::instances::connect(&mut db, keys, evolution, gateway, &e.actor, owner, &c)
                .await
                .map(|_| ())
        },
    )
    .await;
    back_or(done, "/dashboard/setup#numbers")
}

fn cloud_input(f: &Form) -> Result<CloudNumber, SetupError> {
    let direction = f.get("direction").unwrap_or_default();
    Ok(CloudNumber {
        phone_number_id: f.text("phone_number_id").unwrap_or_default(),
        direction: Some(
            direction
                .parse()
                .map_err(|_| SetupError::NotFound(format!("no direction {direction}")))?,
        ),
        waba_id: f.text("waba_id"),
        phone: f.text("phone"),
        access_token: f.text("access_token"),
        app: f.text("app"),
        subscribe: f.flag("subscribe_app")?.unwrap_or(false),
    })
}

pub async fn map_cloud(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<State>,
) -> HttpResponse {
    let done = submit(
        &req,
        &body,
        &state,
        "/dashboard/setup",
        cloud_input,
        |e, ctx, mut db, n| async move {
            let keys = ctx.store.keys();
            setup::cloud::map(&mut db, keys, &ctx.graph, &e.actor, Some(e.account), &n)
                .await
                .map(|_| ())
        },
    )
    .await;
    back_or(done, "/dashboard/setup#numbers")
}
