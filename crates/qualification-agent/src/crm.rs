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
use crm::{CrmError, amocrm::AmoClient, bitrix24::Bitrix24Client};
use diesel_async::AsyncConnection;
use domain::{
    crm::{mapping::matched_levels, phone},
    level::CrmType,
};
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};
use storage::{DbPool, crm::ChangeToEvaluate};
use tokio::sync::Notify;

const RETRY_AFTER: Duration = Duration::from_secs(5);

pub(crate) struct CrmEvaluator {
    pub pool: DbPool,
    pub outbox_wake: Arc<Notify>,
    /// Each CRM request ends after this long.
    pub timeout: Duration,
    /// Waits while the CRM is unavailable; the last one repeats.
    pub retry_schedule: Vec<Duration>,
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
        let Some(ch) = storage::crm::change_to_evaluate(&mut conn, change_id).await? else {
            return Ok(Outcome::DeadLetter(format!("no CRM change {change_id}")));
        };
        if ch.evaluated {
            return Ok(Outcome::Ack);
        }
        let directions =
            storage::crm::crm_directions(&mut conn, ch.user_account_id, ch.crm_type).await?;
        drop(conn);
        if directions.is_empty() {
            tracing::info!(change_id, connection = %ch.connection_id, "no direction takes its levels from this CRM");
            return self
                .done(change_id, json!({"result": "no_crm_direction"}))
                .await;
        }
        let read = match self.read(&ch).await {
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
        let cc = phone::calling_code(&ch.default_region);
        let candidates: Vec<String> = read
            .phones
            .iter()
            .flat_map(|p| phone::candidates(p, cc))
            .collect();
        let mut conn = self.pool.get().await?;
        let mut found = Vec::with_capacity(directions.len());
        for d in &directions {
            let levels = matched_levels(ch.crm_type, &ch.entity, &read.entity, &d.mapping);
            if levels.is_empty() {
                found.push(json!({"direction_id": d.id, "levels": [], "reason": "no_levels"}));
                continue;
            }
            let Some(dialog_id) =
                storage::conversations::dialog_by_phones(&mut conn, d.id, &candidates).await?
            else {
                tracing::info!(change_id, direction_id = %d.id, entity = %ch.entity, reason = "no_dialog",
                    "levels reached in the CRM, but no WhatsApp dialog of the direction has the contact's phone");
                found.push(
                    json!({"direction_id": d.id, "levels": levels, "reason": "no_dialog",
                                  "phones": read.phones.len()}),
                );
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
            for level in &claimed {
                tracing::info!(%dialog_id, direction_id = %d.id, %level, by = "crm", "level reached; event queued");
            }
            found.push(
                json!({"direction_id": d.id, "levels": levels, "dialog_id": dialog_id,
                              "claimed": claimed}),
            );
        }
        drop(conn);
        self.done(
            change_id,
            json!({"result": "evaluated", "directions": found}),
        )
        .await
    }

    async fn done(&self, change_id: i64, outcome: Value) -> anyhow::Result<Outcome> {
        let mut conn = self.pool.get().await?;
        storage::crm::mark_evaluated(&mut conn, change_id, &outcome).await?;
        Ok(Outcome::Ack)
    }

    /// The entity and its phones, or `None` for entities levels do not come from.
    async fn read(&self, ch: &ChangeToEvaluate) -> Result<Option<Read>, CrmError> {
        let build = |e: reqwest::Error| CrmError::Unavailable(e.to_string());
        match ch.crm_type {
            CrmType::AmoCrm => {
                let token = ch
                    .access_token
                    .clone()
                    .ok_or_else(|| CrmError::Auth("the connection has no API token".into()))?;
                let client = AmoClient::new(
                    secrecy::ExposeSecret::expose_secret(&ch.base_url),
                    token,
                    self.timeout,
                )
                .map_err(build)?;
                match ch.entity.as_str() {
                    "lead" => {
                        let lead = client.lead(&ch.entity_id).await?;
                        let phones = match phone::amocrm_main_contact(&lead) {
                            Some(id) => phone::amocrm_phones(&client.contact(&id).await?),
                            None => Vec::new(),
                        };
                        Ok(Some(Read {
                            entity: lead,
                            phones,
                        }))
                    }
                    "contact" => {
                        let contact = client.contact(&ch.entity_id).await?;
                        let phones = phone::amocrm_phones(&contact);
                        Ok(Some(Read {
                            entity: contact,
                            phones,
                        }))
                    }
                    _ => Ok(None),
                }
            }
            CrmType::Bitrix24 => {
                let client =
                    Bitrix24Client::new(ch.base_url.clone(), self.timeout).map_err(build)?;
                match ch.entity.as_str() {
                    "deal" => {
                        let deal = client.entity("deal", &ch.entity_id).await?;
                        let items = client.deal_contacts(&ch.entity_id).await?;
                        let phones = match phone::bitrix24_primary_contact(&items) {
                            Some(id) => {
                                phone::bitrix24_phones(&client.entity("contact", &id).await?)
                            }
                            None => Vec::new(),
                        };
                        Ok(Some(Read {
                            entity: deal,
                            phones,
                        }))
                    }
                    "lead" | "contact" => {
                        let entity = client.entity(&ch.entity, &ch.entity_id).await?;
                        let phones = phone::bitrix24_phones(&entity);
                        Ok(Some(Read { entity, phones }))
                    }
                    _ => Ok(None),
                }
            }
        }
    }
}
