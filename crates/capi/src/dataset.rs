//! The WhatsApp Business Account's dataset: Meta ties business-messaging
//! events to it (one per WABA), so a direction's pixel should be it.
//! `GET /{version}/{waba_id}/dataset` reads it; `POST` creates it or returns
//! the existing one (idempotent).

use crate::Failure;
use domain::meta_errors::MetaError;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use uuid::Uuid;

/// `[meta]` as far as the CLI's Graph calls need it.
#[derive(Deserialize)]
pub(crate) struct MetaSection {
    pub graph_base_url: String,
    pub graph_version: String,
}

const META_DEFAULTS: &str = r#"
[meta]
graph_base_url = "https://graph.facebook.com"
graph_version = "v26.0"
"#;

pub(crate) fn meta_section() -> Result<MetaSection, String> {
    #[derive(Deserialize)]
    struct Own {
        meta: MetaSection,
    }
    runtime::settings::load_section::<Own>(META_DEFAULTS)
        .map(|o| o.meta)
        .map_err(|e| e.to_string())
}

/// Reads (`create` false: `None` when the WABA has none yet) or creates the
/// WABA's dataset; the error is Meta's message or the transport's.
pub(crate) async fn waba_dataset(
    http: &reqwest::Client,
    meta: &MetaSection,
    waba: &str,
    token: &str,
    create: bool,
) -> Result<Option<String>, String> {
    let url = format!(
        "{}/{}/{waba}/dataset",
        meta.graph_base_url.trim_end_matches('/'),
        meta.graph_version
    );
    let request = if create {
        http.post(&url)
    } else {
        http.get(&url)
    };
    let resp = request
        .bearer_auth(token)
        .send()
        .await
        .map_err(outbound::transport_error)?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if let Some(e) = MetaError::from_body(&body) {
        return Err(format!("Meta answered {status}: {}", e.message));
    }
    let id = if create {
        body.get("id")
    } else {
        body.get("data")
            .and_then(Value::as_array)
            .and_then(|d| d.first())
            .and_then(|d| d.get("id"))
    };
    match id {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        _ if !create && status == 200 => Ok(None),
        _ => Err(format!("Meta answered {status} without a dataset id")),
    }
}

/// `capi direction dataset ID`: the WABA's dataset (made if missing) set
/// as the direction's pixel.
pub(crate) async fn set_direction_dataset(url: &str, id: Uuid) -> Result<(), Failure> {
    let mut conn = crate::admin::connect(url).await?;
    let Some(d) = storage::doctor::direction_setup(&mut conn, id).await? else {
        return Err(Failure::input(format!("no direction {id}")));
    };
    let Some(waba) = d.waba_id.as_deref() else {
        return Err(Failure::input(format!(
            "direction {id} has no WhatsApp Business Account id: capi direction set {id} --waba …"
        )));
    };
    let token = d
        .token
        .open(storage::secrets::AD_ACCESS_TOKEN)
        .map_err(|e| Failure::input(format!("the direction's access token cannot be read: {e}")))?
        .ok_or_else(|| {
            Failure::input("no access token on the direction's ad account or user account")
        })?;
    let meta = meta_section().map_err(Failure::input)?;
    let http =
        outbound::client(Duration::from_secs(10)).map_err(|e| Failure::input(e.to_string()))?;
    let token = secrecy::ExposeSecret::expose_secret(&token);
    let dataset = waba_dataset(&http, &meta, waba, token, true)
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("the WABA's dataset: {e}"),
        })?
        .ok_or_else(|| Failure::from(anyhow::anyhow!("Meta returned no dataset id")))?;
    let update = storage::directions::DirectionCapiUpdate {
        pixel_id: Some(&dataset),
        ..Default::default()
    };
    storage::directions::update_direction_capi(&mut conn, id, &update).await?;
    out!(
        "{}",
        json!({"id": id, "waba": waba, "dataset": dataset, "pixel_was": d.pixel_id})
    );
    Ok(())
}
