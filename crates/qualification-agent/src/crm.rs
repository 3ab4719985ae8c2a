//! Levels from a CRM (directions whose source is `crm`): each `crm.changed`
//! reads the entity again through the CRM's API (the webhook is only a
//! trigger), matches it against every such direction's rules, finds the
//! direction's WhatsApp dialog by the contact's phone, and claims the
//! reached levels exactly as the WhatsApp path does (each level once per
//! dialog, with its outbox message, in one transaction). A CRM that is
//! rate limiting or down delays the change through the broker; nothing is
//! dropped.

use crate::agent::{backoff, claim};
use bus::{
    Incoming, Outcome,
    messages::{CrmChanged, decode},
};
use chrono::Utc;
use crm::{
    CrmError,
    session::{CrmPolicy, Session},
};
use diesel_async::AsyncConnection;
use domain::{
    crm::{mapping::matched_levels, phone},
    delivery::AttemptStatus,
    event_names::ActionSource,
    level::{CrmType, Level, NoDialog},
};
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};
use storage::{
    DbPool,
    crm::{CrmDirection, StoredChange},
    deliveries::LogEntry,
};
use tokio::sync::Notify;
use uuid::Uuid;

const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(crate) struct CrmEvaluator {
    pub pool: DbPool,
    pub outbox_wake: Arc<Notify>,
    /// How each CRM is called (pace, OAuth, timeout).
    pub policy: CrmPolicy,
    /// Waits while the CRM is unavailable; the last one repeats.
    pub retry_schedule: Vec<Duration>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The entity as the CRM has it now, and its contact's phones.
struct Read {
    entity: Value,
    phones: Vec<String>,
}

impl CrmEvaluator {
    pub async fn handle(&self, m: Incoming) -> Outcome {
        let changed: CrmChanged = match decode(&m.payload) {
            Ok(c) => c,
            Err(e) => return Outcome::DeadLetter(e.to_string()),
        };
        match self.evaluate(changed.change_id, m.attempt).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(
                    change_id = changed.change_id,
                    error = format!("{e:#}"),
                    "CRM change evaluation failed; retrying"
                );
                Outcome::Retry(RETRY_AFTER)
            }
        }
    }

    async fn evaluate(&self, change_id: i64, attempt: u32) -> anyhow::Result<Outcome> {
        let mut conn = self.pool.get().await?;
        let Some(ch) = storage::crm::change(&mut conn, change_id).await? else {
            return Ok(Outcome::DeadLetter(format!("no CRM change {change_id}")));
        };
        if ch.evaluated_at.is_some() {
            return Ok(Outcome::Ack);
        }
        drop(conn);
        let Some(mut session) =
            Session::open(self.pool.clone(), self.policy.clone(), ch.connection_id).await?
        else {
            return Ok(Outcome::DeadLetter(format!(
                "no CRM connection {}",
                ch.connection_id
            )));
        };
        let (user_account_id, crm_type) =
            (session.access().user_account_id, session.access().crm_type);
        let mut conn = self.pool.get().await?;
        let directions = storage::crm::crm_directions(&mut conn, user_account_id, crm_type).await?;
        drop(conn);
        if directions.is_empty() {
            tracing::info!(change_id, connection = %ch.connection_id, "no direction takes its levels from this CRM");
            return self
                .done(change_id, json!({"result": "no_crm_direction"}))
                .await;
        }
        let read = match read(&mut session, &ch).await {
            Ok(Some(read)) => read,
            Ok(None) => {
                tracing::debug!(change_id, entity = %ch.entity, "not an entity levels come from");
                return self
                    .done(change_id, json!({"result": "ignored_entity"}))
                    .await;
            }
            Err(CrmError::Throttled { retry_after }) => {
                tracing::warn!(change_id, connection = %ch.connection_id, retry_in_s = retry_after.as_secs(), "the CRM is rate limiting; the change waits");
                return Ok(Outcome::Retry(retry_after));
            }
            Err(e @ (CrmError::Unavailable(_) | CrmError::Auth(_))) => {
                let wait = backoff(&self.retry_schedule, attempt);
                tracing::warn!(change_id, connection = %ch.connection_id, error = %e, retry_in_s = wait.as_secs(), "the CRM cannot be read now; the change waits");
                return Ok(Outcome::Retry(wait));
            }
            Err(e @ (CrmError::NotFound | CrmError::Rejected { .. })) => {
                tracing::warn!(change_id, connection = %ch.connection_id, entity = %ch.entity, error = %e, "the entity cannot be read; nothing to evaluate");
                return self
                    .done(
                        change_id,
                        json!({"result": "unreadable", "error": e.to_string()}),
                    )
                    .await;
            }
        };
        let cc = phone::calling_code(&session.access().default_region);
        let candidates: Vec<String> = read
            .phones
            .iter()
            .flat_map(|p| phone::candidates(p, cc))
            .collect();
        let mut conn = self.pool.get().await?;
        let mut found = Vec::with_capacity(directions.len());
        // Levels reached that nothing will be sent for: audit rows.
        let mut skipped: Vec<(&CrmDirection, Level)> = Vec::new();
        for d in &directions {
            let levels = matched_levels(crm_type, &ch.entity, &read.entity, &d.mapping);
            if levels.is_empty() {
                found.push(json!({"direction_id": d.id, "levels": [], "reason": "no_levels"}));
                continue;
            }
            let Some((dialog_id, phone_only)) = join(&mut conn, d, &candidates).await? else {
                tracing::info!(change_id, direction_id = %d.id, entity = %ch.entity, reason = NO_DIALOG,
                    "levels reached in the CRM, but no WhatsApp dialog of the direction has the contact's phone");
                skipped.extend(levels.iter().map(|l| (d, *l)));
                let mut outcome = json!({"direction_id": d.id, "levels": levels,
                                         "reason": NO_DIALOG, "phones": read.phones.len()});
                if d.no_dialog == NoDialog::PhoneOnly && !candidates.is_empty() {
                    outcome["note"] = json!("the direction has no WhatsApp instance");
                }
                found.push(outcome);
                continue;
            };
            let now = Utc::now();
            let claimed = conn
                .transaction::<_, storage::DbError, _>(async |c| {
                    claim(c, dialog_id, &levels, now).await
                })
                .await?;
            if !claimed.is_empty() {
                self.outbox_wake.notify_one();
            }
            self.metrics.claimed(&claimed, "crm");
            for level in &claimed {
                tracing::info!(%dialog_id, direction_id = %d.id, %level, by = "crm", "level reached; event queued");
            }
            let mut outcome = json!({"direction_id": d.id, "levels": levels,
                                     "dialog_id": dialog_id, "claimed": claimed});
            if phone_only {
                // No click id: the events go with the hashed phone only.
                outcome["reason"] = json!(NO_DIALOG);
                outcome["sent"] = json!("phone_only");
            }
            found.push(outcome);
        }
        drop(conn);
        let outcome = json!({"result": "evaluated", "directions": found});
        self.close(change_id, outcome, user_account_id, &skipped)
            .await
    }

    /// Closes a change whose evaluation reached no direction's levels.
    async fn done(&self, change_id: i64, outcome: Value) -> anyhow::Result<Outcome> {
        let mut conn = self.pool.get().await?;
        storage::crm::mark_evaluated(&mut conn, change_id, &outcome).await?;
        Ok(Outcome::Ack)
    }

    /// Marks the change evaluated with its outcome and, in the same
    /// transaction, writes a `skipped`/`no_dialog` audit row per level
    /// nothing is sent for: a redelivered change finds it evaluated and
    /// logs nothing twice.
    async fn close(
        &self,
        change_id: i64,
        outcome: Value,
        user_account_id: Uuid,
        skipped: &[(&CrmDirection, Level)],
    ) -> anyhow::Result<Outcome> {
        // No event was built: the row names the change and the level.
        let event_ids: Vec<String> = skipped
            .iter()
            .map(|(_, level)| format!("crm:{change_id}:{}", level.number()))
            .collect();
        let logs: Vec<LogEntry<'_>> = skipped
            .iter()
            .zip(&event_ids)
            .map(|((d, level), event_id)| LogEntry {
                dialog_id: None,
                direction_id: Some(d.id),
                user_account_id: Some(user_account_id),
                level: *level,
                // No dialog, so no click id: the name without one.
                event_name: d.event_names.get(*level, ActionSource::Other),
                event_id,
                pixel_id: d.pixel_id.as_deref(),
                status: AttemptStatus::Skipped,
                attempt: 0,
                reason: Some(NO_DIALOG),
                request: None,
                response: None,
                http_status: None,
                error_message: None,
                duration_ms: None,
                batch_id: None,
                batch_size: None,
                fbtrace_id: None,
            })
            .collect();
        let mut conn = self.pool.get().await?;
        conn.transaction::<_, storage::DbError, _>(async |c| {
            if storage::crm::mark_evaluated(c, change_id, &outcome).await? {
                storage::deliveries::insert_logs(c, &logs).await?;
            }
            Ok(())
        })
        .await?;
        Ok(Outcome::Ack)
    }
}

const NO_DIALOG: &str = "no_dialog";

/// The direction's dialog for the contact's phones, and whether it is one
/// made for a `phone_only` direction (no click id); `None`: no dialog.
async fn join(
    conn: &mut storage::AsyncPgConnection,
    d: &CrmDirection,
    candidates: &[String],
) -> Result<Option<(Uuid, bool)>, storage::DbError> {
    if let Some(id) = storage::conversations::dialog_by_phones(conn, d.id, candidates).await? {
        return Ok(Some((id, false)));
    }
    match (d.no_dialog, candidates.first()) {
        (NoDialog::PhoneOnly, Some(phone)) => Ok(storage::conversations::crm_contact_dialog(
            conn, d.id, phone,
        )
        .await?
        .map(|id| (id, true))),
        _ => Ok(None),
    }
}

/// The entity and its phones, or `None` for entities levels do not come from.
async fn read(session: &mut Session, ch: &StoredChange) -> Result<Option<Read>, CrmError> {
    let id = ch.entity_id.as_str();
    let read = match (session.access().crm_type, ch.entity.as_str()) {
        (CrmType::AmoCrm, "lead") => {
            let lead = session.amo_lead(id).await?;
            let phones = match phone::amocrm_main_contact(&lead) {
                Some(contact) => phone::amocrm_phones(&session.amo_contact(&contact).await?),
                None => Vec::new(),
            };
            Read {
                entity: lead,
                phones,
            }
        }
        (CrmType::AmoCrm, "contact") => {
            let contact = session.amo_contact(id).await?;
            let phones = phone::amocrm_phones(&contact);
            Read {
                entity: contact,
                phones,
            }
        }
        (CrmType::Bitrix24, "deal") => {
            let deal = session.bitrix24_entity("deal", id).await?;
            let items = session.bitrix24_deal_contacts(id).await?;
            let phones = match phone::bitrix24_primary_contact(&items) {
                Some(contact) => {
                    phone::bitrix24_phones(&session.bitrix24_entity("contact", &contact).await?)
                }
                None => Vec::new(),
            };
            Read {
                entity: deal,
                phones,
            }
        }
        (CrmType::Bitrix24, entity @ ("lead" | "contact")) => {
            let entity = session.bitrix24_entity(entity, id).await?;
            let phones = phone::bitrix24_phones(&entity);
            Read { entity, phones }
        }
        _ => return Ok(None),
    };
    Ok(Some(read))
}
