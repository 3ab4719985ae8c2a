//! `capi lead purchase`: the purchase level by hand, for businesses
//! without a CRM (a payment taken at the desk). The same claim as the CRM
//! path: once per (dialog, order reference), the lower levels with it, the
//! event queued in the same transaction.

use crate::{Failure, connect};
use chrono::Utc;
use clap::Subcommand;
use diesel_async::AsyncConnection;
use domain::ids::DirectionId;
use domain::{
    capi_event::check_purchase,
    crm::purchase::{Amount, Purchase},
    level::Level,
};
use runtime::claims::{claim_levels, claim_purchase};
use serde_json::json;

#[derive(Subcommand)]
pub enum LeadCommand {
    /// Record a paid order of a lead and send Purchase (with the lower
    /// levels not sent yet). Once per order reference: repeating the
    /// command changes nothing.
    Purchase {
        /// The lead (its id in the dashboard and the analytics API).
        #[arg(long)]
        lead: domain::ids::LeadId,
        /// The lead's direction, when it wrote to more than one.
        #[arg(long)]
        direction: Option<DirectionId>,
        /// The amount, e.g. 15000 or 1500.50.
        #[arg(long)]
        value: String,
        /// ISO 4217, e.g. RUB, USD, BRL.
        #[arg(long)]
        currency: String,
        /// The order, invoice or receipt number: one Purchase each.
        #[arg(long)]
        order_ref: String,
    },
}

pub async fn lead(url: &str, c: LeadCommand) -> Result<(), Failure> {
    let LeadCommand::Purchase {
        lead,
        direction,
        value,
        currency,
        order_ref,
    } = c;
    let amount = Amount::parse(&value).map_err(|e| Failure::input(format!("--value: {e}")))?;
    let currency = check_purchase(amount.value, &currency)
        .map_err(|e| Failure::input(format!("--currency: {e}")))?;
    let order_ref = order_ref.trim().to_owned();
    if order_ref.is_empty() || order_ref.len() > 200 {
        return Err(Failure::input("--order-ref: 1 to 200 characters"));
    }
    let mut conn = connect(url).await?;
    let dialogs = storage::conversations::lead_dialogs(&mut conn, lead).await?;
    let candidates: Vec<_> = dialogs
        .iter()
        .filter(|d| direction.is_none_or(|id| d.direction_id == id))
        .collect();
    let dialog = match candidates.as_slice() {
        [] if dialogs.is_empty() => {
            return Err(Failure::input(format!(
                "no lead {lead} with a dialog in a direction"
            )));
        }
        [] => {
            return Err(Failure::input(format!(
                "lead {lead} has no dialog in direction {}; its directions: {}",
                direction.map(|d| d.to_string()).unwrap_or_default(),
                names(&dialogs)
            )));
        }
        [one] => *one,
        [..] => {
            return Err(Failure::input(format!(
                "lead {lead} wrote to several directions; choose one with --direction: {}",
                names(&dialogs)
            )));
        }
    };
    if !dialog.capi_enabled {
        return Err(Failure::input(format!(
            "direction {} ({}) has CAPI off: nothing would be sent",
            dialog.direction_name, dialog.direction_id
        )));
    }
    let purchase = Purchase {
        order_ref,
        amount,
        currency,
    };
    let now = Utc::now();
    let dialog_id = dialog.dialog_id;
    let (claimed, purchased) = conn
        .transaction::<_, storage::DbError, _>(async |c| {
            let claimed = claim_levels(c, dialog_id, &Level::CONVERSATION, now).await?;
            let purchased = claim_purchase(c, dialog_id, &purchase, now).await?;
            Ok((claimed, purchased))
        })
        .await?;
    out!(
        "{}",
        json!({"lead_id": lead, "dialog_id": dialog_id, "direction_id": dialog.direction_id,
               "order_ref": purchase.order_ref, "value": purchase.amount.value,
               "currency": purchase.currency, "queued": purchased,
               "lower_levels_queued": claimed,
               "note": if purchased { "queued: capi-sender sends it" } else { "this order was recorded before: nothing more is sent" }})
    );
    Ok(())
}

fn names(dialogs: &[storage::conversations::LeadDialog]) -> String {
    dialogs
        .iter()
        .map(|d| format!("{} ({})", d.direction_name, d.direction_id))
        .collect::<Vec<_>>()
        .join(", ")
}
