//! Claiming a level for a dialog and queuing its CAPI event, in the
//! caller's transaction: the qualification agent (the model, the CRM) and
//! `capi lead purchase` all come here, so a level is queued exactly when
//! its claim row is written. The outbox relay publishes the message.

use bus::messages::{BusMessage, CapiEventQueued, encode};
use chrono::{DateTime, Utc};
use domain::ids::DialogId;
use domain::ids::EventId;
use domain::{
    capi_event::{event_id, purchase_event_id},
    crm::purchase::Purchase,
    level::Level,
};
use storage::{AsyncPgConnection, DbError, deliveries};

/// Claims each of `levels` (once per dialog ever) and queues their events;
/// returns those claimed now. A purchase is claimed with [`claim_purchase`].
pub async fn claim_levels(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
    levels: &[Level],
    reached_at: DateTime<Utc>,
) -> Result<Vec<Level>, DbError> {
    let mut claimed = Vec::new();
    for &level in levels.iter().filter(|l| **l != Level::Purchase) {
        let event_id = event_id(dialog_id, level);
        if deliveries::claim_level(conn, dialog_id, level, &event_id, reached_at).await? {
            queue(conn, dialog_id, level, event_id).await?;
            claimed.push(level);
        }
    }
    Ok(claimed)
}

/// Claims a purchase (once per dialog and order reference) and queues its
/// event; false when this order was claimed before.
pub async fn claim_purchase(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
    purchase: &Purchase,
    reached_at: DateTime<Utc>,
) -> Result<bool, DbError> {
    let event_id = purchase_event_id(dialog_id, &purchase.order_ref);
    let claimed =
        deliveries::claim_purchase(conn, dialog_id, purchase, &event_id, reached_at).await?;
    if claimed {
        queue(conn, dialog_id, Level::Purchase, event_id).await?;
    }
    Ok(claimed)
}

async fn queue(
    conn: &mut AsyncPgConnection,
    dialog_id: DialogId,
    level: Level,
    event_id: EventId,
) -> Result<(), DbError> {
    let queued = CapiEventQueued {
        dialog_id,
        level,
        event_id,
    };
    storage::outbox::enqueue(conn, CapiEventQueued::ROUTING_KEY, &encode(&queued), 0).await?;
    Ok(())
}
