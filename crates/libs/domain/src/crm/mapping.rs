//! A direction's CRM rules per level (`capi_interest_fields`,
//! `capi_qualified_fields`, `capi_scheduled_fields`: OR within a level) and
//! how an entity, as the CRM's API returns it, is matched against them.
//!
//! A rule matches when, for its field:
//! - it has an `enum_id`: some value has that enum id (amoCRM `enum_id`;
//!   Bitrix24 list fields hold the list item ID, in arrays too), compared
//!   as text whatever the JSON type;
//! - else it has an `enum_value`: some value equals it, trimmed and
//!   case-insensitive;
//! - else: the field is set (some value not null, "", "0", false or "N").
//!
//! `field_id` may also name a built-in field: amoCRM `status_id`,
//! `pipeline_id`; Bitrix24 any top-level key (`STAGE_ID`, `OPPORTUNITY`, …).
//! A rule with an `entity_type` applies only to entities of that type.
//! Levels are cumulative: the highest matched level and every one below.

use crate::level::{CrmType, Level};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// One field condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    #[serde(deserialize_with = "id_text")]
    pub field_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_type: Option<String>,
    #[serde(
        default,
        deserialize_with = "optional_id_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub enum_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enum_value: Option<String>,
    /// Bitrix24: `deal`, `lead` or `contact`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
}

/// The three levels' rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelMapping {
    #[serde(default)]
    pub interest: Vec<FieldRule>,
    #[serde(default)]
    pub qualified: Vec<FieldRule>,
    #[serde(default)]
    pub scheduled: Vec<FieldRule>,
}

impl LevelMapping {
    /// A level's rules; a purchase has its own rule ([`PurchaseRule`]).
    pub fn rules(&self, level: Level) -> &[FieldRule] {
        match level {
            Level::Interest => &self.interest,
            Level::Qualified => &self.qualified,
            Level::Scheduled => &self.scheduled,
            Level::Purchase => &[],
        }
    }
}

/// Ids arrive as strings or numbers; they compare as text.
fn id_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    optional_id_text(d)?.ok_or_else(|| serde::de::Error::custom("field_id is missing or empty"))
}

fn optional_id_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(scalar_text(&Value::deserialize(d)?).filter(|s| !s.is_empty()))
}

/// A scalar as trimmed text; `None` for null, arrays and objects.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One value of a field: its text and, for list fields, its enum id.
#[derive(Debug, Clone, PartialEq)]
struct FieldValue {
    value: Value,
    enum_id: Option<String>,
}

/// The values of `field_id` in an entity as the CRM's API returns it.
fn values(crm: CrmType, entity: &Value, field_id: &str) -> Vec<FieldValue> {
    match crm {
        CrmType::AmoCrm => amocrm_values(entity, field_id),
        CrmType::Bitrix24 => bitrix24_values(entity, field_id),
    }
}

fn amocrm_values(entity: &Value, field_id: &str) -> Vec<FieldValue> {
    if matches!(field_id, "status_id" | "pipeline_id") {
        return entity
            .get(field_id)
            .map(|v| {
                vec![FieldValue {
                    value: v.clone(),
                    enum_id: scalar_text(v),
                }]
            })
            .unwrap_or_default();
    }
    let fields = entity
        .get("custom_fields_values")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    fields
        .iter()
        .filter(|f| f.get("field_id").and_then(scalar_text).as_deref() == Some(field_id))
        .flat_map(|f| {
            f.get("values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| FieldValue {
            enum_id: v.get("enum_id").and_then(scalar_text),
            value: v.get("value").cloned().unwrap_or(Value::Null),
        })
        .collect()
}

fn bitrix24_values(entity: &Value, field_id: &str) -> Vec<FieldValue> {
    let entity = entity.get("result").unwrap_or(entity);
    let one = |v: &Value| {
        // Multi-fields (PHONE, …) hold objects: their VALUE is the value.
        let v = v.get("VALUE").unwrap_or(v);
        FieldValue {
            value: v.clone(),
            enum_id: scalar_text(v),
        }
    };
    match entity.get(field_id) {
        None => Vec::new(),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(v) => vec![one(v)],
    }
}

fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Array(items) => items.iter().any(is_set),
        Value::Object(_) => true,
        other => scalar_text(other).is_some_and(|s| !matches!(s.as_str(), "" | "0" | "N")),
    }
}

fn same_type(rule: Option<&str>, entity_type: &str) -> bool {
    let norm = |s: &str| {
        let s = s.trim().to_ascii_lowercase();
        s.strip_prefix("crm_").map(str::to_owned).unwrap_or(s)
    };
    rule.is_none_or(|r| r.trim().is_empty() || norm(r) == norm(entity_type))
}

/// Whether `rule` matches the entity.
pub fn matches(crm: CrmType, entity_type: &str, entity: &Value, rule: &FieldRule) -> bool {
    if !same_type(rule.entity_type.as_deref(), entity_type) {
        return false;
    }
    let values = values(crm, entity, &rule.field_id);
    if let Some(enum_id) = &rule.enum_id {
        return values
            .iter()
            .any(|v| v.enum_id.as_deref() == Some(enum_id.as_str()));
    }
    if let Some(wanted) = rule
        .enum_value
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        let wanted = wanted.to_lowercase();
        return values
            .iter()
            .any(|v| scalar_text(&v.value).is_some_and(|s| s.to_lowercase() == wanted));
    }
    values.iter().any(|v| is_set(&v.value))
}

/// The levels the entity reached, lowest first: the highest level with a
/// matching rule, and every level below it.
pub fn matched_levels(
    crm: CrmType,
    entity_type: &str,
    entity: &Value,
    mapping: &LevelMapping,
) -> Vec<Level> {
    Level::CONVERSATION
        .into_iter()
        .rev()
        .find(|l| {
            mapping
                .rules(*l)
                .iter()
                .any(|r| matches(crm, entity_type, entity, r))
        })
        .map(|highest| highest.with_lower().collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(v: Value) -> FieldRule {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("rule: {e}"))
    }

    fn amo_lead() -> Value {
        json!({"id": 5765922, "status_id": 143, "pipeline_id": 7810667, "custom_fields_values": [
            {"field_id": 926914, "field_type": "text", "values": [{"value": "TRUE"}]},
            {"field_id": 747664, "field_type": "select", "values": [{"value": "Diplomado en Creación Digital", "enum_id": 656296}]},
            {"field_id": 1, "field_type": "checkbox", "values": [{"value": false}]},
            {"field_id": 2, "field_type": "multiselect", "values": [{"value": "a", "enum_id": 10}, {"value": "b", "enum_id": 11}]}
        ]})
    }

    #[test]
    fn amocrm_rules_by_enum_id_enum_value_or_set() {
        let lead = amo_lead();
        let m = |r: Value| matches(CrmType::AmoCrm, "lead", &lead, &rule(r));
        assert!(m(json!({"field_id": "747664", "enum_id": "656296"})));
        assert!(m(
            json!({"field_id": 747664, "enum_id": 656296, "enum_value": "ignored when enum_id is set"})
        ));
        assert!(!m(json!({"field_id": "747664", "enum_id": "1"})));
        assert!(m(
            json!({"field_id": "747664", "enum_value": "  diplomado en creación digital "})
        ));
        assert!(m(json!({"field_id": "926914"})));
        assert!(!m(json!({"field_id": "1"})), "a false checkbox is not set");
        assert!(!m(json!({"field_id": "404"})));
        assert!(
            m(json!({"field_id": "2", "enum_id": "11"})),
            "any value of a multiselect"
        );
        assert!(m(json!({"field_id": "status_id", "enum_id": 143})));
        assert!(m(
            json!({"field_id": "pipeline_id", "enum_value": "7810667"})
        ));
        assert!(!m(json!({"field_id": "status_id", "enum_id": "142"})));
    }

    #[test]
    fn bitrix24_list_ids_arrays_top_level_keys_and_entity_types() {
        let deal = json!({"result": {"ID": "756", "STAGE_ID": "WON", "OPPORTUNITY": "0.00", "UF_CRM_LIST": "81",
            "UF_CRM_MULTI": [79, "82"], "UF_CRM_EMPTY": "", "UF_CRM_NO": "N", "UF_CRM_ZERO": "0"}});
        let m = |r: Value| matches(CrmType::Bitrix24, "deal", &deal, &rule(r));
        assert!(m(json!({"field_id": "UF_CRM_LIST", "enum_id": 81})));
        assert!(m(json!({"field_id": "UF_CRM_MULTI", "enum_id": "79"})));
        assert!(m(json!({"field_id": "UF_CRM_MULTI", "enum_id": 82})));
        assert!(m(json!({"field_id": "STAGE_ID", "enum_value": "won"})));
        assert!(m(json!({"field_id": "OPPORTUNITY"})), "\"0.00\" is a value");
        for unset in ["UF_CRM_EMPTY", "UF_CRM_NO", "UF_CRM_ZERO", "UF_CRM_ABSENT"] {
            assert!(!m(json!({"field_id": unset})), "{unset}");
        }
        assert!(m(json!({"field_id": "STAGE_ID", "entity_type": "deal"})));
        assert!(m(
            json!({"field_id": "STAGE_ID", "entity_type": "CRM_DEAL"})
        ));
        assert!(!m(json!({"field_id": "STAGE_ID", "entity_type": "lead"})));
    }

    #[test]
    fn levels_are_cumulative_from_the_highest_match() {
        let mapping: LevelMapping = serde_json::from_value(json!({
            "interest": [{"field_id": "404"}],
            "qualified": [{"field_id": "747664", "enum_id": "1"}, {"field_id": "926914", "enum_value": "true"}],
            "scheduled": [{"field_id": "status_id", "enum_id": "142"}]
        }))
        .unwrap_or_default();
        assert_eq!(
            matched_levels(CrmType::AmoCrm, "lead", &amo_lead(), &mapping),
            [Level::Interest, Level::Qualified]
        );
        assert!(matched_levels(CrmType::AmoCrm, "lead", &json!({}), &mapping).is_empty());
        let bad: Result<LevelMapping, _> = serde_json::from_value(json!({"intrest": []}));
        assert!(bad.is_err());
        let no_id: Result<FieldRule, _> = serde_json::from_value(json!({"field_id": ""}));
        assert!(no_id.is_err());
    }
}
