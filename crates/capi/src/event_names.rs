//! The event-name rules as the CLI applies them (`direction set`,
//! `doctor`, `event preview`): Meta's Business Messaging list, or the
//! operator's `meta.business_messaging_event_names`.

use crate::Failure;
use domain::event_names::{AllowedNames, DirectionNames};
use serde::Deserialize;

/// `meta.business_messaging_event_names` from `CAPI_CONFIG` and the
/// environment (Meta's list when unset).
pub(crate) fn allowed() -> Result<AllowedNames, Failure> {
    #[derive(Deserialize)]
    struct Own {
        #[serde(default)]
        meta: Meta,
    }
    #[derive(Deserialize, Default)]
    struct Meta {
        #[serde(default)]
        business_messaging_event_names: AllowedNames,
    }
    runtime::settings::load_section::<Own>("")
        .map(|o| o.meta.business_messaging_event_names)
        .map_err(|e| Failure::input(e.to_string()))
}

/// A direction's names as Meta would take them; else exit 2 naming each
/// refusal and the allowed names.
pub(crate) fn check(names: &DirectionNames) -> Result<(), Failure> {
    let refused = allowed()?.check_direction(names);
    if refused.is_empty() {
        return Ok(());
    }
    Err(Failure::input(
        refused
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}
