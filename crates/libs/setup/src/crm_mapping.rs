//! A direction's CRM mapping: the CRM's own fields to choose from (read
//! through the shared pace), and each level's rules, checked before they
//! are stored and audited.

use crate::{Actor, Result, SetupError, audit, directions};
use ::crm::session::{CrmPolicy, Session};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use domain::crm::{mapping::FieldRule, purchase::PurchaseSetting};
use domain::ids::{ConnectionId, DirectionId, UserAccountId};
use domain::level::{CrmType, Level};
use serde_json::{Value, json};

/// The most rules one level takes.
pub const RULES_MAX: usize = 50;
const ENTITY_TYPES: &[&str] = &["leads", "contacts", "companies", "deal", "lead", "contact"];

/// A level's rules from their JSON (a file's for the CLI, the chosen
/// values' for the page): the one reading both go through.
pub fn parse_rules(value: Value) -> Result<Vec<FieldRule>> {
    serde_json::from_value(value).map_err(|e| {
        SetupError::invalid(format!(
            "not a list of rules (field_id, enum_id or enum_value, entity_type): {e}"
        ))
    })
}

/// Rules as the matcher will read them, or why not.
pub fn check_rules(level: Level, rules: &[FieldRule]) -> Result<()> {
    if level == Level::Purchase {
        return Err(SetupError::invalid(
            "a purchase has one rule with its value source, not a list of rules",
        ));
    }
    if rules.len() > RULES_MAX {
        return Err(SetupError::invalid(format!(
            "a level takes at most {RULES_MAX} rules"
        )));
    }
    for r in rules {
        if r.field_id.trim().is_empty() {
            return Err(SetupError::invalid(
                "a rule needs the CRM field it reads (field_id)",
            ));
        }
        if r.enum_id.is_some() && r.enum_value.is_some() {
            return Err(SetupError::invalid(format!(
                "field {}: a rule has enum_id or enum_value, not both (enum_value would be ignored)",
                r.field_id
            )));
        }
        if let Some(t) = &r.entity_type
            && !ENTITY_TYPES.contains(&t.as_str())
        {
            return Err(SetupError::invalid(format!(
                "field {}: entity_type is one of {}",
                r.field_id,
                ENTITY_TYPES.join(", ")
            )));
        }
    }
    Ok(())
}

/// Replaces one level's rules (an empty list clears them).
pub async fn set_level(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    account: Option<UserAccountId>,
    direction: DirectionId,
    level: Level,
    rules: &[FieldRule],
) -> Result<()> {
    check_rules(level, rules)?;
    conn.transaction(async |conn| {
        let d = directions::find(conn, account, direction).await?;
        let before = storage::directions::crm_fields(conn, direction)
            .await?
            .map(|m| json!({level.as_str(): m.rules(level)}));
        storage::directions::set_crm_fields(conn, direction, level, rules).await?;
        let after = json!({level.as_str(): rules});
        let target = format!("direction {direction}");
        audit::record(
            conn,
            actor,
            Some(d.user_account_id),
            "direction.crm_rules",
            &target,
            before.as_ref(),
            Some(&after),
        )
        .await?;
        Ok(())
    })
    .await
}

/// The account's CRM connection (`account`: only that account's).
async fn session(
    store: storage::Store,
    policy: CrmPolicy,
    account: Option<UserAccountId>,
    connection: ConnectionId,
) -> Result<Session<storage::Store>> {
    let missing = || SetupError::NotFound(format!("no CRM connection {connection}"));
    let session = Session::open(store, policy, connection)
        .await
        .map_err(crm_failure)?
        .ok_or_else(missing)?;
    if account.is_some_and(|a| a != session.access().user_account_id) {
        return Err(missing());
    }
    Ok(session)
}

fn crm_failure(e: ::crm::CrmError) -> SetupError {
    SetupError::Upstream(format!("the CRM: {e}"))
}

/// The CRM's own fields, one value each with its enum ids, to pick rules
/// from (amoCRM: custom fields page by page, and for leads the pipelines'
/// statuses as `status_id`; Bitrix24: `crm.{entity}.fields`).
pub async fn fields(
    store: storage::Store,
    policy: CrmPolicy,
    account: Option<UserAccountId>,
    connection: ConnectionId,
    entity_type: Option<&str>,
) -> Result<Vec<Value>> {
    let mut session = session(store, policy, account, connection).await?;
    match session.access().crm_type {
        CrmType::AmoCrm => {
            let entity = entity_type.unwrap_or("leads");
            if !matches!(entity, "leads" | "contacts" | "companies") {
                return Err(SetupError::invalid(
                    "the entity type for amoCRM: leads, contacts or companies",
                ));
            }
            let mut lines = Vec::new();
            if entity == "leads" {
                let pipelines = session.amo_pipelines().await.or_else(|e| match e {
                    ::crm::CrmError::NotFound => Ok(json!({})),
                    e => Err(e),
                });
                lines.extend(amo_statuses(&pipelines.map_err(crm_failure)?));
            }
            let fields = session
                .amo_custom_fields(entity)
                .await
                .map_err(crm_failure)?;
            lines.extend(fields.iter().map(amo_field));
            Ok(lines)
        }
        CrmType::Bitrix24 => {
            let entity = entity_type.unwrap_or("deal");
            if !matches!(entity, "deal" | "lead" | "contact") {
                return Err(SetupError::invalid(
                    "the entity type for Bitrix24: deal, lead or contact",
                ));
            }
            let fields = session.bitrix24_fields(entity).await.map_err(crm_failure)?;
            Ok(bitrix24_fields(&fields))
        }
    }
}

fn text(v: &Value) -> Value {
    domain::crm::mapping::scalar_text(v).map_or(Value::Null, Value::String)
}

/// amoCRM's pipelines as one `status_id` field whose enums are the statuses.
fn amo_statuses(pipelines: &Value) -> Option<Value> {
    let statuses: Vec<Value> = pipelines["_embedded"]["pipelines"]
        .as_array()?
        .iter()
        .flat_map(|p| {
            let pipeline = p["name"].as_str().unwrap_or_default().to_owned();
            p["_embedded"]["statuses"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |s| {
                    json!({"id": text(&s["id"]),
                           "value": format!("{pipeline} / {}", s["name"].as_str().unwrap_or_default())})
                })
        })
        .collect();
    Some(
        json!({"id": "status_id", "name": "Lead status (pipeline / status)",
                "code": null, "type": "status", "enums": statuses}),
    )
}

fn amo_field(f: &Value) -> Value {
    let enums: Vec<Value> = f["enums"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|o| json!({"id": text(&o["id"]), "value": text(&o["value"])}))
                .collect()
        })
        .unwrap_or_default();
    json!({"id": text(&f["id"]), "name": text(&f["name"]), "code": text(&f["code"]),
           "type": text(&f["type"]), "enums": enums})
}

/// `crm.{entity}.fields`: a line per field key, list items as enums.
fn bitrix24_fields(fields: &Value) -> Vec<Value> {
    let Some(map) = fields.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(key, f)| {
            let name = ["listLabel", "formLabel", "title"]
                .iter()
                .find_map(|k| f[*k].as_str().filter(|s| !s.is_empty()))
                .unwrap_or(key);
            let items: Vec<Value> = f["items"]
                .as_array()
                .map(|i| {
                    i.iter()
                        .map(|o| json!({"id": text(&o["ID"]), "value": text(&o["VALUE"])}))
                        .collect()
                })
                .unwrap_or_default();
            json!({"id": key, "name": name, "type": text(&f["type"]),
                   "multiple": f["isMultiple"].as_bool().unwrap_or(false), "enums": items})
        })
        .collect()
}

/// "Test with a real deal": reads one entity (amoCRM lead, Bitrix24 deal)
/// from the CRM and answers the levels the direction's rules give it,
/// changing nothing.
pub async fn try_entity(
    conn: &mut AsyncPgConnection,
    store: storage::Store,
    policy: CrmPolicy,
    account: Option<UserAccountId>,
    direction: DirectionId,
    connection: ConnectionId,
    entity_id: &str,
) -> Result<Vec<Level>> {
    let entity_id = entity_id.trim();
    if entity_id.is_empty()
        || entity_id.len() > 20
        || !entity_id.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(SetupError::invalid("a deal's id is digits only"));
    }
    directions::find(conn, account, direction).await?;
    let mapping = storage::directions::crm_fields(conn, direction)
        .await?
        .ok_or_else(|| SetupError::NotFound(format!("no direction {direction}")))?;
    let mut session = session(store, policy, account, connection).await?;
    let crm_type = session.access().crm_type;
    let (entity_type, entity) = match crm_type {
        CrmType::AmoCrm => ("lead", session.amo_lead(entity_id).await),
        CrmType::Bitrix24 => ("deal", session.bitrix24_entity("deal", entity_id).await),
    };
    let entity = entity.map_err(|e| match e {
        ::crm::CrmError::NotFound => {
            SetupError::NotFound(format!("the CRM has no deal {entity_id}"))
        }
        e => crm_failure(e),
    })?;
    Ok(domain::crm::mapping::matched_levels(
        crm_type,
        entity_type,
        &entity,
        &mapping,
    ))
}

/// The purchase setting from its JSON (a rule, or `false` for none; `null`
/// is refused: clearing restores the default), checked before it is stored.
pub fn parse_purchase(value: &Value) -> Result<PurchaseSetting> {
    if value.is_null() {
        return Err(SetupError::invalid(
            "a purchase rule or false (clear restores the default)",
        ));
    }
    let setting = PurchaseSetting::from_stored(Some(value)).map_err(SetupError::Invalid)?;
    if let PurchaseSetting::Rule(r) = &setting {
        check_rules(Level::Interest, std::slice::from_ref(&r.when))?;
        if r.value_field.trim().is_empty() {
            return Err(SetupError::invalid(
                "a purchase rule needs the field with the amount (value_field)",
            ));
        }
        if let Some(c) = &r.currency {
            domain::capi_event::check_purchase(0.0, c)
                .map_err(|e| SetupError::Invalid(e.to_string()))?;
        }
    }
    Ok(setting)
}

/// Sets the direction's purchase setting (`Default` restores the CRM's).
pub async fn set_purchase(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    account: Option<UserAccountId>,
    direction: DirectionId,
    setting: &PurchaseSetting,
) -> Result<()> {
    conn.transaction(async |conn| {
        let d = directions::find(conn, account, direction).await?;
        let shown = |s: &PurchaseSetting| json!({"purchase": s.to_stored().unwrap_or(Value::from("default"))});
        let before = storage::directions::purchase_rule(conn, direction).await?.map(|s| shown(&s));
        storage::directions::set_purchase_rule(conn, direction, setting).await?;
        let target = format!("direction {direction}");
        audit::record(conn, actor, Some(d.user_account_id), "direction.purchase_rule", &target, before.as_ref(), Some(&shown(setting))).await
    })
    .await
}
