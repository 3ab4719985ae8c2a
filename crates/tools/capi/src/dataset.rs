//! The WhatsApp Business Account's dataset: Meta ties business-messaging
//! events to it (one per WABA), so a direction's pixel should be it.
//! `capi direction dataset` reads or creates it through `meta_graph`.

use crate::Failure;
use meta_graph::{Graph, GraphSettings};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// The Graph API client for the CLI's calls, from `[meta]` (`CAPI_CONFIG`,
/// `CAPI_META__GRAPH_BASE_URL`, `CAPI_META__GRAPH_VERSION`).
pub(crate) fn graph() -> Result<Graph, String> {
    #[derive(Deserialize)]
    struct Own {
        #[serde(default)]
        meta: GraphSettings,
    }
    let settings = runtime::settings::load_section::<Own>("")
        .map(|o| o.meta)
        .map_err(|e| e.to_string())?;
    Graph::new(&settings, Duration::from_secs(10)).map_err(|e| e.to_string())
}

/// `capi direction dataset ID`: the WABA's dataset (made if missing) set
/// as the direction's pixel.
pub(crate) async fn set_direction_dataset(
    url: &str,
    keys: &storage::secrets::Keys,
    id: domain::ids::DirectionId,
) -> Result<(), Failure> {
    let mut conn = crate::connect(url).await?;
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
        .open(keys, storage::secrets::AD_ACCESS_TOKEN)
        .map_err(|e| Failure::input(format!("the direction's access token cannot be read: {e}")))?
        .ok_or_else(|| {
            Failure::input("no access token on the direction's ad account or user account")
        })?;
    let graph = graph().map_err(Failure::input)?;
    let token = secrecy::ExposeSecret::expose_secret(&token);
    let dataset = graph
        .waba_dataset(waba, token, true)
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
