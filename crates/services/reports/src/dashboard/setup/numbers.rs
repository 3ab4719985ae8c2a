//! Connecting a WhatsApp number from the browser: an Evolution API
//! instance, its webhook set at Evolution and read back
//! (`setup::instances::connect`, the same as `capi instance connect`).

use super::{Form, conn, editor_posting, refused, run, see_other};
use crate::State;
use actix_web::{HttpRequest, HttpResponse, web};
use setup::SetupError;
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
