use bus::{
    Incoming, Outcome,
    messages::{BusMessage, CapiEventQueued, DialogReady, decode, encode},
};
use chrono::Utc;
use diesel_async::AsyncConnection;
use domain::{
    capi::event_id,
    level::{CapiSource, Level, reaches_interest},
};
use std::{sync::Arc, time::Duration};
use storage::{
    DbPool, capi,
    conversations::{self, DialogForQualification},
};
use tokio::sync::Notify;

const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(crate) struct Agent {
    pub pool: DbPool,
    pub outbox_wake: Arc<Notify>,
}

/// Why a dialog gets no event (logged, so an operator can see it).
fn not_eligible(d: &DialogForQualification) -> Option<&'static str> {
    if d.direction_id.is_none() {
        return Some("dialog has no direction (instance not mapped)");
    }
    if d.capi_enabled != Some(true) {
        return Some("CAPI is disabled for the direction");
    }
    if d.capi_source
        .as_deref()
        .and_then(|s| s.parse::<CapiSource>().ok())
        != Some(CapiSource::Whatsapp)
    {
        return Some("the direction's CAPI source is not whatsapp");
    }
    if d.pixel_id.as_deref().is_none_or(|p| p.trim().is_empty()) {
        return Some("the direction has no pixel");
    }
    None
}

impl Agent {
    pub async fn handle(&self, m: Incoming) -> Outcome {
        let ready: DialogReady = match decode(&m.payload) {
            Ok(r) => r,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        match self.qualify(&ready).await {
            Ok(()) => Outcome::Ack,
            Err(e) => {
                tracing::warn!(dialog_id = %ready.dialog_id, error = format!("{e:#}"), "qualification failed; retrying");
                Outcome::Retry(RETRY_AFTER)
            }
        }
    }

    async fn qualify(&self, ready: &DialogReady) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        let Some(dialog) =
            conversations::dialog_for_qualification(&mut conn, ready.dialog_id).await?
        else {
            tracing::warn!(dialog_id = %ready.dialog_id, "dialog not found; nothing to qualify");
            return Ok(());
        };
        if let Some(reason) = not_eligible(&dialog) {
            tracing::info!(dialog_id = %dialog.dialog_id, direction_id = ?dialog.direction_id, reason, "no CAPI event");
            return Ok(());
        }
        if !reaches_interest(dialog.customer_messages) {
            tracing::debug!(dialog_id = %dialog.dialog_id, customer_messages = dialog.customer_messages, "level 1 not reached yet");
            return Ok(());
        }
        let level = Level::Interest;
        let reached_at = dialog
            .second_customer_message_at
            .unwrap_or_else(Utc::now)
            .min(Utc::now());
        let event_id = event_id(dialog.dialog_id, level);
        let claimed = conn
            .transaction::<_, storage::DbError, _>(async |conn| {
                let claimed =
                    capi::claim_level(conn, dialog.dialog_id, level, &event_id, reached_at).await?;
                if claimed {
                    let queued = CapiEventQueued {
                        dialog_id: dialog.dialog_id,
                        level,
                        event_id: event_id.clone(),
                    };
                    storage::outbox::enqueue(
                        conn,
                        CapiEventQueued::ROUTING_KEY,
                        &encode(&queued),
                        0,
                    )
                    .await?;
                }
                Ok(claimed)
            })
            .await?;
        if claimed {
            self.outbox_wake.notify_one();
            tracing::info!(dialog_id = %dialog.dialog_id, direction_id = ?dialog.direction_id, %level, %event_id, "level reached; event queued");
        } else {
            tracing::debug!(dialog_id = %dialog.dialog_id, %level, "level already claimed");
        }
        Ok(())
    }
}
