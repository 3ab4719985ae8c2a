//! The purchase level from a CRM: when an entity counts as paid, and where
//! its amount and currency are read (`account_directions.capi_purchase_rule`).
//!
//! Defaults (the column is NULL):
//! - amoCRM: a lead in the won status (`status_id` 142, the same id in every
//!   pipeline) with its `price`, in the account's currency
//!   (`GET /api/v4/account` → `currency`);
//! - Bitrix24: a deal whose `STAGE_SEMANTIC_ID` is `S` (a success stage of
//!   any category) with `OPPORTUNITY` in `CURRENCY_ID`.
//!
//! The order reference is the entity itself (`amocrm:lead:5765922`), so a
//! deal is one Purchase however often it is edited or its webhook is
//! redelivered, and a customer's second won deal is a second one.

use super::mapping::{FieldRule, matches, scalar_text};
use crate::level::CrmType;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A direction's purchase rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseRule {
    /// When the entity counts as paid (the level rules' matching).
    pub when: FieldRule,
    /// The field with the amount: amoCRM `price` or a custom field id;
    /// Bitrix24 `OPPORTUNITY` or any other key.
    pub value_field: String,
    /// The field with the ISO 4217 code (Bitrix24 `CURRENCY_ID`)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency_field: Option<String>,
    /// …else this code, else the CRM account's currency (amoCRM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl PurchaseRule {
    /// The rule a direction of this CRM has unless it sets its own.
    pub fn default_for(crm: CrmType) -> PurchaseRule {
        let when =
            |field_id: &str, enum_id: Option<&str>, enum_value: Option<&str>, entity: &str| {
                FieldRule {
                    field_id: field_id.to_owned(),
                    field_name: None,
                    field_type: None,
                    enum_id: enum_id.map(str::to_owned),
                    enum_value: enum_value.map(str::to_owned),
                    entity_type: Some(entity.to_owned()),
                }
            };
        match crm {
            CrmType::AmoCrm => PurchaseRule {
                when: when("status_id", Some(AMOCRM_WON_STATUS), None, "lead"),
                value_field: "price".into(),
                currency_field: None,
                currency: None,
            },
            CrmType::Bitrix24 => PurchaseRule {
                when: when("STAGE_SEMANTIC_ID", None, Some("S"), "deal"),
                value_field: "OPPORTUNITY".into(),
                currency_field: Some("CURRENCY_ID".into()),
                currency: None,
            },
        }
    }
}

/// amoCRM's "successfully realised" status: 142 in every pipeline.
pub const AMOCRM_WON_STATUS: &str = "142";

/// What a direction does about purchases, as stored: NULL = the CRM's
/// default rule, `false` = no purchases from the CRM, an object = its rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseSetting {
    Default,
    Off,
    Rule(Box<PurchaseRule>),
}

impl PurchaseSetting {
    /// Reads the stored column.
    pub fn from_stored(v: Option<&Value>) -> Result<PurchaseSetting, String> {
        match v {
            None | Some(Value::Null) => Ok(PurchaseSetting::Default),
            Some(Value::Bool(false)) => Ok(PurchaseSetting::Off),
            Some(v) => serde_json::from_value(v.clone())
                .map(PurchaseSetting::Rule)
                .map_err(|e| {
                    format!(
                        "not a purchase rule (when, value_field, currency_field or currency), nor false: {e}"
                    )
                }),
        }
    }

    /// The column's value.
    pub fn to_stored(&self) -> Option<Value> {
        match self {
            PurchaseSetting::Default => None,
            PurchaseSetting::Off => Some(Value::Bool(false)),
            PurchaseSetting::Rule(r) => serde_json::to_value(r).ok(),
        }
    }

    /// The rule in force for a direction of `crm`, if any.
    pub fn rule(&self, crm: CrmType) -> Option<PurchaseRule> {
        match self {
            PurchaseSetting::Default => Some(PurchaseRule::default_for(crm)),
            PurchaseSetting::Off => None,
            PurchaseSetting::Rule(r) => Some((**r).clone()),
        }
    }
}

/// An amount as the CRM wrote it, checked: at most 15 integer and 6
/// fraction digits, `.` or `,` as the decimal point, no sign.
#[derive(Debug, Clone, PartialEq)]
pub struct Amount {
    /// Canonical decimal text (`1500.50`), for a NUMERIC column.
    pub text: String,
    pub value: f64,
}

impl Amount {
    pub fn parse(raw: &str) -> Result<Amount, String> {
        let s = raw.trim();
        let bad = || format!("{raw:?} is not an amount (digits, one decimal point, no sign)");
        if s.is_empty() || s.len() > 24 {
            return Err(bad());
        }
        let (int, frac) = match s.find(['.', ',']) {
            Some(i) => (&s[..i], &s[i + 1..]),
            None => (s, ""),
        };
        let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if int.is_empty() || int.len() > 15 || frac.len() > 6 || !digits(int) || !digits(frac) {
            return Err(bad());
        }
        let text = if frac.is_empty() {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        };
        let value = text.parse::<f64>().map_err(|_| bad())?;
        Ok(Amount { text, value })
    }

    /// A JSON number or string.
    pub fn from_json(v: &Value) -> Result<Amount, String> {
        match v {
            Value::Number(n) => Amount::parse(&n.to_string()),
            Value::String(s) => Amount::parse(s),
            Value::Null => Err("no amount".into()),
            other => Err(format!("{other} is not an amount")),
        }
    }
}

/// A paid entity, ready to be claimed.
#[derive(Debug, Clone, PartialEq)]
pub struct Purchase {
    /// `{crm}:{entity}:{id}` for a CRM entity; the operator's for one by hand.
    pub order_ref: String,
    pub amount: Amount,
    /// ISO 4217, upper case.
    pub currency: String,
}

/// Whether the entity is paid under `rule`, and for how much. `Ok(None)`:
/// not paid; `Err`: paid, but its amount or currency cannot be read (the
/// change's outcome says why; nothing is sent).
pub fn purchase_of(
    crm: CrmType,
    entity_type: &str,
    entity_id: &str,
    entity: &Value,
    rule: &PurchaseRule,
    account_currency: Option<&str>,
) -> Result<Option<Purchase>, String> {
    if !matches(crm, entity_type, entity, &rule.when) {
        return Ok(None);
    }
    let raw = field(crm, entity, &rule.value_field);
    let amount = Amount::from_json(&raw).map_err(|e| format!("{} ({e})", rule.value_field))?;
    let currency = rule
        .currency_field
        .as_deref()
        .and_then(|f| scalar_text(&field(crm, entity, f)))
        .filter(|c| !c.is_empty())
        .or_else(|| rule.currency.clone())
        .or_else(|| account_currency.map(str::to_owned))
        .ok_or_else(|| "no currency: the entity, the rule and the account name none".to_owned())?;
    let currency =
        crate::capi_event::check_purchase(amount.value, &currency).map_err(|e| e.to_string())?;
    Ok(Some(Purchase {
        order_ref: format!("{}:{entity_type}:{entity_id}", crm.as_str()),
        amount,
        currency,
    }))
}

/// Whether [`purchase_of`] needs the CRM account's currency for this
/// entity: it is paid, its amount readable, and neither the entity nor the
/// rule names a currency (so the account is asked only when it matters).
pub fn needs_account_currency(
    crm: CrmType,
    entity_type: &str,
    entity: &Value,
    rule: &PurchaseRule,
) -> bool {
    let named = rule
        .currency_field
        .as_deref()
        .and_then(|f| scalar_text(&field(crm, entity, f)))
        .is_some_and(|c| !c.is_empty())
        || rule.currency.is_some();
    !named
        && matches(crm, entity_type, entity, &rule.when)
        && Amount::from_json(&field(crm, entity, &rule.value_field)).is_ok()
}

/// A field's first value: a top-level key (amoCRM `price`, any Bitrix24
/// key), else an amoCRM custom field by id.
fn field(crm: CrmType, entity: &Value, name: &str) -> Value {
    let entity = match crm {
        CrmType::Bitrix24 => entity.get("result").unwrap_or(entity),
        CrmType::AmoCrm => entity,
    };
    if let Some(v) = entity.get(name) {
        return v.clone();
    }
    if crm != CrmType::AmoCrm {
        return Value::Null;
    }
    entity
        .get("custom_fields_values")
        .and_then(Value::as_array)
        .and_then(|fields| {
            fields
                .iter()
                .find(|f| f.get("field_id").and_then(scalar_text).as_deref() == Some(name))
        })
        .and_then(|f| f.pointer("/values/0/value"))
        .cloned()
        .unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn amo(status: u64, price: Value) -> Value {
        json!({"id": 7, "status_id": status, "pipeline_id": 1, "price": price,
               "custom_fields_values": [{"field_id": 55, "values": [{"value": "99,90"}]}]})
    }

    #[test]
    fn amocrm_won_lead_with_its_price_in_the_accounts_currency() {
        let rule = PurchaseRule::default_for(CrmType::AmoCrm);
        let p = purchase_of(
            CrmType::AmoCrm,
            "lead",
            "7",
            &amo(142, json!(15000)),
            &rule,
            Some("RUB"),
        );
        let p = p
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("not paid"));
        assert_eq!(p.order_ref, "amocrm:lead:7");
        assert_eq!((p.amount.text.as_str(), p.amount.value), ("15000", 15000.0));
        assert_eq!(p.currency, "RUB");
        let open = purchase_of(
            CrmType::AmoCrm,
            "lead",
            "7",
            &amo(143, json!(15000)),
            &rule,
            Some("RUB"),
        );
        assert_eq!(open, Ok(None), "lost (143) is not a purchase");
        let no_currency = purchase_of(
            CrmType::AmoCrm,
            "lead",
            "7",
            &amo(142, json!(1)),
            &rule,
            None,
        );
        assert!(no_currency.is_err());
        let no_price = purchase_of(
            CrmType::AmoCrm,
            "lead",
            "7",
            &amo(142, Value::Null),
            &rule,
            Some("RUB"),
        );
        assert!(no_price.unwrap_err().contains("price"));
        let custom = PurchaseRule {
            value_field: "55".into(),
            currency: Some("brl".into()),
            ..rule
        };
        let p = purchase_of(
            CrmType::AmoCrm,
            "lead",
            "7",
            &amo(142, json!(1)),
            &custom,
            Some("RUB"),
        );
        let p = p.ok().flatten().unwrap_or_else(|| panic!("custom field"));
        assert_eq!(
            (p.amount.text.as_str(), p.currency.as_str()),
            ("99.90", "BRL")
        );
    }

    #[test]
    fn bitrix24_success_stage_with_opportunity_and_currency() {
        let rule = PurchaseRule::default_for(CrmType::Bitrix24);
        let deal = |semantic: &str, currency: &str| {
            json!({"result": {"ID": "756", "STAGE_ID": "C3:WON", "STAGE_SEMANTIC_ID": semantic,
                              "OPPORTUNITY": "1500.50", "CURRENCY_ID": currency}})
        };
        let p = purchase_of(
            CrmType::Bitrix24,
            "deal",
            "756",
            &deal("S", "USD"),
            &rule,
            None,
        );
        let p = p.ok().flatten().unwrap_or_else(|| panic!("won deal"));
        assert_eq!((p.amount.value, p.currency.as_str()), (1500.5, "USD"));
        assert_eq!(p.order_ref, "bitrix24:deal:756");
        for semantic in ["P", "F"] {
            assert_eq!(
                purchase_of(
                    CrmType::Bitrix24,
                    "deal",
                    "756",
                    &deal(semantic, "USD"),
                    &rule,
                    None
                ),
                Ok(None)
            );
        }
        assert!(
            purchase_of(
                CrmType::Bitrix24,
                "deal",
                "756",
                &deal("S", "DOLLARS"),
                &rule,
                None
            )
            .is_err()
        );
        assert_eq!(
            purchase_of(
                CrmType::Bitrix24,
                "lead",
                "756",
                &deal("S", "USD"),
                &rule,
                None
            ),
            Ok(None),
            "the default rule is for deals"
        );
    }

    #[test]
    fn amounts_are_plain_decimals() {
        for (raw, text) in [
            ("1500.50", "1500.50"),
            (" 15000 ", "15000"),
            ("0,5", "0.5"),
            ("0", "0"),
        ] {
            assert_eq!(
                Amount::parse(raw).map(|a| a.text),
                Ok(text.to_owned()),
                "{raw}"
            );
        }
        for raw in [
            "",
            "-1",
            "1e5",
            "1.2.3",
            "NaN",
            "1 500",
            ".5",
            "1234567890123456",
            "1.1234567",
        ] {
            assert!(Amount::parse(raw).is_err(), "{raw}");
        }
        assert_eq!(
            Amount::from_json(&json!(1500.5)).map(|a| a.value),
            Ok(1500.5)
        );
        assert!(Amount::from_json(&json!([1])).is_err());
        assert!(
            Amount::parse(&"9".repeat(1 << 20)).is_err(),
            "a megabyte is refused at once"
        );
    }

    #[test]
    fn stored_settings_round_trip() {
        let rule = PurchaseRule::default_for(CrmType::Bitrix24);
        for s in [
            PurchaseSetting::Default,
            PurchaseSetting::Off,
            PurchaseSetting::Rule(Box::new(rule.clone())),
        ] {
            assert_eq!(PurchaseSetting::from_stored(s.to_stored().as_ref()), Ok(s));
        }
        assert_eq!(PurchaseSetting::Off.rule(CrmType::AmoCrm), None);
        assert_eq!(PurchaseSetting::Default.rule(CrmType::Bitrix24), Some(rule));
        assert!(PurchaseSetting::from_stored(Some(&json!({"value_field": "x"}))).is_err());
        assert!(PurchaseSetting::from_stored(Some(&json!(true))).is_err());
    }
}
