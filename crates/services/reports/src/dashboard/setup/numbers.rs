//! Connecting a WhatsApp number from the browser: an Evolution API
//! instance, its webhook set at Evolution and read back
//! (`setup::instances::connect`, the same as `capi instance connect`), or a
//! Cloud API number with the app subscribed to its WABA
//! (`setup::cloud::map`, the same as `capi number map --subscribe-app`).

use super::{Form, conn, editor_posting, refused, run, see_other};
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
    let form = Form::parse(&body);
    let e = match editor_posting(&req, &state, &form).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let c = match connect_input(&form) {
        Ok(c) => c,
        Err(err) => return refused(err, "/dashboard/setup"),
    };
    let pool = state.pool.clone();
    let ctx = state.setup.clone();
    match run(&state, async move {
        let mut db = conn(&pool).await?;
        setup::instances::connect(
            &mut db,
            ctx.store.keys(),
            ctx.evolution.as_ref(),
            &ctx.gateway_url,
            &e.actor,
            Some(e.account),
            &c,
        )
        .await
    })
    .await
    {
        Ok(_) => see_other("/dashboard/setup#numbers"),
        Err(err) => refused(err, "/dashboard/setup"),
    }
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
    let form = Form::parse(&body);
    let e = match editor_posting(&req, &state, &form).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let n = match cloud_input(&form) {
        Ok(n) => n,
        Err(err) => return refused(err, "/dashboard/setup"),
    };
    let pool = state.pool.clone();
    let ctx = state.setup.clone();
    match run(&state, async move {
        let mut db = conn(&pool).await?;
        setup::cloud::map(
            &mut db,
            ctx.store.keys(),
            &ctx.graph,
            &e.actor,
            Some(e.account),
            &n,
        )
        .await
    })
    .await
    {
        Ok(_) => see_other("/dashboard/setup#numbers"),
        Err(err) => refused(err, "/dashboard/setup"),
    }
}
