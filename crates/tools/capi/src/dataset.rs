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
    let graph = graph().map_err(Failure::input)?;
    let (dataset, waba, was) = setup::directions::use_waba_dataset(
        &mut conn,
        keys,
        &graph,
        &setup::Actor::cli(),
        None,
        id,
    )
    .await?;
    out!(
        "{}",
        json!({"id": id, "waba": waba, "dataset": dataset, "pixel_was": was})
    );
    Ok(())
}
