//! Levels from a CRM (directions whose source is `crm`): each `crm.changed`
//! reads the entity again through the CRM's API (the webhook is only a
//! trigger), matches it against every such direction's rules, finds the
//! direction's WhatsApp dialog by the contact's phone, and claims the
//! reached levels exactly as the WhatsApp path does (each level once per
//! dialog, with its outbox message, in one transaction). A CRM that is
//! rate limiting or down delays the change through the broker; nothing is
//! dropped.

use crate::agent::backoff;
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
use domain::ids::{DialogId, EventId, UserAccountId};
use domain::{
    crm::{
        mapping::matched_levels,
        phone,
        purchase::{Purchase, needs_account_currency, purchase_of},
    },
    delivery::AttemptStatus,
    event_names::ActionSource,
    level::{CrmType, Level, NoDialog},
};
use runtime::claims::{claim_levels, claim_purchase};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use storage::{
    Store,
    crm::{CrmDirection, StoredChange},
    deliveries::LogEntry,
};
use tokio::sync::Notify;

const RETRY_AFTER: Duration = Duration::from_secs(5);
/// How long an amoCRM account's currency is trusted before it is read again.
const CURRENCY_TTL: Duration = Duration::from_secs(3600);

pub(crate) struct CrmEvaluator {
    pub store: Store,
    pub outbox_wake: Arc<Notify>,
    /// How each CRM is called (pace, OAuth, timeout).
    pub policy: CrmPolicy,
    /// Waits while the CRM is unavailable; the last one repeats.
    pub retry_schedule: Vec<Duration>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Each amoCRM connection's account currency, read at most hourly.
    pub currencies: Mutex<HashMap<domain::ids::ConnectionId, (String, Instant)>>,
}

/// The entity as the CRM has it now, and its contact's phones.
struct Read {
    entity: Value,
    phones: Vec<String>,
    /// The CRM account's currency, when a purchase rule needs it.
    account_currency: Option<String>,
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
        let mut conn = self.store.pool().get().await?;
        let Some(ch) = storage::crm::change(&mut conn, change_id).await? else {
            return Ok(Outcome::DeadLetter(format!("no CRM change {change_id}")));
        };
        if ch.evaluated_at.is_some() {
            return Ok(Outcome::Ack);
        }
        drop(conn);
        let Some(mut session) =
            Session::open(self.store.clone(), self.policy.clone(), ch.connection_id).await?
        else {
            return Ok(Outcome::DeadLetter(format!(
                "no CRM connection {}",
                ch.connection_id
            )));
        };
        let (user_account_id, crm_type) =
            (session.access().user_account_id, session.access().crm_type);
        let mut conn = self.store.pool().get().await?;
        let directions = storage::crm::crm_directions(&mut conn, user_account_id, crm_type).await?;
        drop(conn);
        if directions.is_empty() {
            tracing::info!(change_id, connection = %ch.connection_id, "no direction takes its levels from this CRM");
            return self
                .done(change_id, json!({"result": "no_crm_direction"}))
                .await;
        }
        let read = match self.read(&mut session, &ch, &directions).await {
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
        let mut conn = self.store.pool().get().await?;
        let mut found = Vec::with_capacity(directions.len());
        // Levels reached that nothing will be sent for: audit rows.
        let mut skipped: Vec<(&CrmDirection, Level)> = Vec::new();
        for d in &directions {
            let mut levels = matched_levels(crm_type, &ch.entity, &read.entity, &d.mapping);
            let purchase = match d.purchase.rule(crm_type).map(|rule| {
                purchase_of(
                    crm_type,
                    &ch.entity,
                    &ch.entity_id,
                    &read.entity,
                    &rule,
                    read.account_currency.as_deref(),
                )
            }) {
                Some(Ok(p)) => p,
                None => None,
                Some(Err(e)) => {
                    tracing::warn!(change_id, direction_id = %d.id, entity = %ch.entity, error = %e,
                        "the entity is paid under the purchase rule, but its amount or currency cannot be read; no Purchase");
                    found.push(json!({"direction_id": d.id, "purchase_error": e}));
                    None
                }
            };
            if purchase.is_some() {
                // A purchase implies every level below it.
                levels = Level::CONVERSATION.to_vec();
            }
            if levels.is_empty() {
                found.push(json!({"direction_id": d.id, "levels": [], "reason": "no_levels"}));
                continue;
            }
            let Some((dialog_id, phone_only)) = join(&mut conn, d, &candidates).await? else {
                tracing::info!(change_id, direction_id = %d.id, entity = %ch.entity, reason = NO_DIALOG,
                    "levels reached in the CRM, but no WhatsApp dialog of the direction has the contact's phone");
                skipped.extend(levels.iter().map(|l| (d, *l)));
                if purchase.is_some() {
                    skipped.push((d, Level::Purchase));
                }
                let mut outcome = json!({"direction_id": d.id, "levels": levels,
                                         "reason": NO_DIALOG, "phones": read.phones.len()});
                if d.no_dialog == NoDialog::PhoneOnly && !candidates.is_empty() {
                    outcome["note"] = json!("the direction has no WhatsApp instance");
                }
                found.push(outcome);
                continue;
            };
            let now = Utc::now();
            let (mut claimed, purchased) = conn
                .transaction::<_, storage::DbError, _>(async |c| {
                    let claimed = claim_levels(c, dialog_id, &levels, now).await?;
                    let purchased = match &purchase {
                        Some(p) => claim_purchase(c, dialog_id, p, now).await?,
                        None => false,
                    };
                    Ok((claimed, purchased))
                })
                .await?;
            if purchased {
                claimed.push(Level::Purchase);
            }
            if !claimed.is_empty() {
                self.outbox_wake.notify_one();
            }
            self.metrics.claimed(&claimed, "crm");
            for level in &claimed {
                tracing::info!(%dialog_id, direction_id = %d.id, %level, by = "crm", "level reached; event queued");
            }
            let mut outcome = json!({"direction_id": d.id, "levels": levels,
                                     "dialog_id": dialog_id, "claimed": claimed});
            if let Some(p) = &purchase {
                outcome["purchase"] = purchase_json(p, purchased);
            }
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
        let mut conn = self.store.pool().get().await?;
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
        user_account_id: UserAccountId,
        skipped: &[(&CrmDirection, Level)],
    ) -> anyhow::Result<Outcome> {
        // No event was built: the row names the change and the level.
        let event_ids: Vec<EventId> = skipped
            .iter()
            .map(|(_, level)| format!("crm:{change_id}:{}", level.number()).into())
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
        let mut conn = self.store.pool().get().await?;
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

/// A change outcome's purchase: the order, amount and whether it was new.
fn purchase_json(p: &Purchase, claimed: bool) -> Value {
    json!({"order_ref": p.order_ref, "value": p.amount.value,
           "currency": p.currency, "claimed": claimed})
}

impl CrmEvaluator {
    /// The entity, its phones and — when a direction's purchase rule takes
    /// the amount in the account's currency and the entity is paid — the
    /// amoCRM account's currency (cached per connection).
    async fn read(
        &self,
        session: &mut Session<Store>,
        ch: &StoredChange,
        directions: &[CrmDirection],
    ) -> Result<Option<Read>, CrmError> {
        let Some(mut read) = read_entity(session, ch).await? else {
            return Ok(None);
        };
        let crm_type = session.access().crm_type;
        let needs_currency = crm_type == CrmType::AmoCrm
            && directions.iter().any(|d| {
                d.purchase
                    .rule(crm_type)
                    .is_some_and(|r| needs_account_currency(crm_type, &ch.entity, &read.entity, &r))
            });
        if needs_currency {
            read.account_currency = self.account_currency(session).await?;
        }
        Ok(Some(read))
    }

    async fn account_currency(
        &self,
        session: &mut Session<Store>,
    ) -> Result<Option<String>, CrmError> {
        let connection = session.access().connection_id;
        let cached = self.currencies.lock().ok().and_then(|m| {
            m.get(&connection)
                .filter(|(_, at)| at.elapsed() < CURRENCY_TTL)
                .map(|(c, _)| c.clone())
        });
        if cached.is_some() {
            return Ok(cached);
        }
        let currency = session.amo_currency().await?;
        if let (Some(c), Ok(mut m)) = (&currency, self.currencies.lock()) {
            m.insert(connection, (c.clone(), Instant::now()));
        }
        Ok(currency)
    }
}

/// The direction's dialog for the contact's phones, and whether it is one
/// made for a `phone_only` direction (no click id); `None`: no dialog.
async fn join(
    conn: &mut storage::AsyncPgConnection,
    d: &CrmDirection,
    candidates: &[String],
) -> Result<Option<(DialogId, bool)>, storage::DbError> {
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
async fn read_entity(
    session: &mut Session<Store>,
    ch: &StoredChange,
) -> Result<Option<Read>, CrmError> {
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
                account_currency: None,
            }
        }
        (CrmType::AmoCrm, "contact") => {
            let contact = session.amo_contact(id).await?;
            let phones = phone::amocrm_phones(&contact);
            Read {
                entity: contact,
                phones,
                account_currency: None,
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
                account_currency: None,
            }
        }
        (CrmType::Bitrix24, entity @ ("lead" | "contact")) => {
            let entity = session.bitrix24_entity(entity, id).await?;
            let phones = phone::bitrix24_phones(&entity);
            Read {
                entity,
                phones,
                account_currency: None,
            }
        }
        _ => return Ok(None),
    };
    Ok(Some(read))
}
