//! Meta events as the CLI sees them: the event-name rules (`direction
//! set`, `doctor`: Meta's Business Messaging list, or the operator's
//! `meta.business_messaging_event_names`) and `capi event preview`, the
//! offline contract of what capi-sender sends.

use crate::Failure;
use domain::{
    capi_event::{Conversion, EventFacts, PurchaseFacts, build_event},
    event_names::{ActionSource, AllowedNames},
    level::Level,
};
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

#[derive(clap::Subcommand)]
pub(crate) enum EventCommand {
    /// Print the event exactly as capi-sender puts it in `data[]` for a
    /// direction with default settings (no database, nothing sent); exit 2
    /// for what Meta would refuse.
    Preview {
        /// interest, qualified, scheduled or purchase.
        #[arg(long, value_parser = |s: &str| s.parse::<Level>())]
        level: Level,
        /// The click id from the ad (makes it a business_messaging event).
        #[arg(long)]
        ctwa_clid: Option<String>,
        /// WhatsApp Business Account id (needed with a click id).
        #[arg(long)]
        waba: Option<String>,
        /// The customer's phone (hashed as `ph`).
        #[arg(long)]
        phone: Option<String>,
        /// Purchase amount (a number).
        #[arg(long)]
        value: Option<f64>,
        /// Purchase currency, ISO 4217.
        #[arg(long)]
        currency: Option<String>,
        /// The CRM deal or order the purchase comes from.
        #[arg(long, default_value = "preview")]
        order_ref: String,
        /// Instead of the direction's default name.
        #[arg(long)]
        event_name: Option<String>,
        /// The dialog the event belongs to (its id feeds `event_id`).
        #[arg(long, default_value = "00000000-0000-0000-0000-000000000000")]
        dialog: uuid::Uuid,
    },
}

pub(crate) fn event(c: EventCommand) -> Result<(), Failure> {
    let EventCommand::Preview {
        level,
        ctwa_clid,
        waba,
        phone,
        value,
        currency,
        order_ref,
        event_name,
        dialog,
    } = c;
    let conversion = match level {
        Level::Purchase => {
            let (Some(value), Some(currency)) = (value, currency.as_deref()) else {
                return Err(Failure::input(
                    "a Purchase needs --value and --currency (Meta refuses one without: 2804009)",
                ));
            };
            Conversion::Purchase(PurchaseFacts {
                value,
                currency,
                order_ref: &order_ref,
            })
        }
        level => Conversion::Level(level),
    };
    let source = ActionSource::for_click(ctwa_clid.as_deref());
    let facts = EventFacts {
        dialog_id: dialog.into(),
        conversion,
        event_name: event_name
            .as_deref()
            .unwrap_or(conversion.default_event_name(source)),
        event_time: chrono::Utc::now().timestamp(),
        phone: phone.as_deref(),
        ctwa_clid: ctwa_clid.as_deref(),
        waba_id: waba.as_deref(),
        ldu: None,
    };
    let event = build_event(&facts, &allowed()?).map_err(|e| Failure::input(e.to_string()))?;
    out!("{event}");
    Ok(())
}
