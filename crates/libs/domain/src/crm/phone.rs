//! Joining a CRM contact to a WhatsApp dialog by phone. CRMs store phones
//! as people typed them (`89031453455`, `+7 999 123-45-67`, `24981558600`
//! without the country code); WhatsApp names a contact by its digits with
//! the country code, and a Brazilian mobile may be known with or without
//! its extra 9. Each CRM phone gives the digit strings a dialog's
//! `contact_phone` may hold.

use crate::normalize::{NormalizeOptions, UserDataKey, normalize};
use serde_json::Value;

/// The contact whose phones join an entity to a dialog: the one `is_chosen`
/// marks, else the first; its id as text.
fn chosen_contact(
    items: Option<&Value>,
    is_chosen: impl Fn(&Value) -> bool,
    id_key: &str,
) -> Option<String> {
    let items = items?.as_array()?;
    items
        .iter()
        .find(|c| is_chosen(c))
        .or(items.first())
        .and_then(|c| c.get(id_key))
        .and_then(super::mapping::scalar_text)
        .filter(|id| !id.is_empty())
}

/// An amoCRM lead's main contact (`_embedded.contacts[].is_main`).
pub fn amocrm_main_contact(lead: &Value) -> Option<String> {
    chosen_contact(
        lead.pointer("/_embedded/contacts"),
        |c| c.get("is_main").and_then(Value::as_bool) == Some(true),
        "id",
    )
}

/// A Bitrix24 deal's primary contact, from `crm.deal.contact.items.get`.
pub fn bitrix24_primary_contact(items: &Value) -> Option<String> {
    chosen_contact(
        Some(items.get("result").unwrap_or(items)),
        |c| c.get("IS_PRIMARY").and_then(Value::as_str) == Some("Y"),
        "CONTACT_ID",
    )
}

/// The phones of an amoCRM contact (API v4): the values of its field
/// whose `field_code` is `PHONE`.
pub fn amocrm_phones(contact: &Value) -> Vec<String> {
    contact
        .get("custom_fields_values")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| f.get("field_code").and_then(Value::as_str) == Some("PHONE"))
        .flat_map(|f| {
            f.get("values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| v.get("value").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The phones of a Bitrix24 lead or contact (`PHONE: [{VALUE, VALUE_TYPE}]`),
/// from the method's `{"result": …}` or the object.
pub fn bitrix24_phones(entity: &Value) -> Vec<String> {
    let entity = entity.get("result").unwrap_or(entity);
    entity
        .get("PHONE")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("VALUE").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// The country calling code of a region (ISO 3166 alpha-2) a CRM account
/// names as its default: for phones written without one.
pub fn calling_code(region: &str) -> Option<&'static str> {
    const CODES: &[(&str, &str)] = &[
        ("RU", "7"),
        ("KZ", "7"),
        ("BY", "375"),
        ("UA", "380"),
        ("UZ", "998"),
        ("KG", "996"),
        ("AM", "374"),
        ("GE", "995"),
        ("AZ", "994"),
        ("BR", "55"),
        ("MX", "52"),
        ("AR", "54"),
        ("CO", "57"),
        ("CL", "56"),
        ("PE", "51"),
        ("US", "1"),
        ("CA", "1"),
        ("GB", "44"),
        ("DE", "49"),
        ("FR", "33"),
        ("ES", "34"),
        ("IT", "39"),
        ("PT", "351"),
        ("TR", "90"),
        ("IN", "91"),
        ("ID", "62"),
        ("AE", "971"),
        ("IL", "972"),
        ("PL", "48"),
    ];
    let region = region.trim().to_ascii_uppercase();
    CODES.iter().find(|(r, _)| *r == region).map(|(_, c)| *c)
}

/// Fewer digits than this with the country code is no phone (`333`).
const MIN_DIGITS: usize = 10;

/// The dialog phones `raw` may stand for, the most likely first; none for
/// junk. `default_cc` is the CRM account's country calling code ("7", "55").
pub fn candidates(raw: &str, default_cc: Option<&str>) -> Vec<String> {
    let opts = NormalizeOptions {
        default_country_code: default_cc.map(str::to_owned),
    };
    let Some(digits) = normalize(UserDataKey::Phone, raw, &opts) else {
        return Vec::new();
    };
    if digits.len() < MIN_DIGITS || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Vec::new();
    }
    let mut out = vec![digits.clone()];
    if let Some(rest) = digits.strip_prefix("55") {
        // 55 + 2-digit area code + 9 + 8 digits ⇄ the older 8-digit mobile.
        let (area, number) = rest.split_at(rest.len().min(2));
        match number.len() {
            9 if number.starts_with('9') => out.push(format!("55{area}{}", &number[1..])),
            8 if number.starts_with(['6', '7', '8', '9']) => out.push(format!("55{area}9{number}")),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_contact_to_read_phones_from() {
        let lead = json!({"_embedded": {"contacts": [{"id": 1, "is_main": false}, {"id": 7140816, "is_main": true}]}});
        assert_eq!(amocrm_main_contact(&lead).as_deref(), Some("7140816"));
        let lead = json!({"_embedded": {"contacts": [{"id": 3, "is_main": false}]}});
        assert_eq!(amocrm_main_contact(&lead).as_deref(), Some("3"));
        assert_eq!(
            amocrm_main_contact(&json!({"_embedded": {"contacts": []}})),
            None
        );
        let items =
            json!([{"CONTACT_ID": 84, "IS_PRIMARY": "N"}, {"CONTACT_ID": "85", "IS_PRIMARY": "Y"}]);
        assert_eq!(bitrix24_primary_contact(&items).as_deref(), Some("85"));
        assert_eq!(
            bitrix24_primary_contact(&json!({"result": [{"CONTACT_ID": 84}]})).as_deref(),
            Some("84")
        );
    }

    #[test]
    fn regions_name_their_calling_codes() {
        assert_eq!(calling_code("RU"), Some("7"));
        assert_eq!(calling_code(" br "), Some("55"));
        assert_eq!(calling_code("XX"), None);
    }

    #[test]
    fn phones_are_read_from_each_crms_contact() {
        let amo = json!({"custom_fields_values": [
            {"field_id": 1859198, "field_code": "PHONE", "field_type": "multitext",
             "values": [{"value": "5531987424967", "enum_id": 1325512, "enum_code": "WORK"}, {"value": "+7 999 000-11-22"}]},
            {"field_id": 7, "field_code": "EMAIL", "values": [{"value": "a@b.c"}]}]});
        assert_eq!(amocrm_phones(&amo), ["5531987424967", "+7 999 000-11-22"]);
        assert!(amocrm_phones(&json!({"custom_fields_values": null})).is_empty());
        let b24 = json!({"result": {"PHONE": [{"ID": "1", "VALUE_TYPE": "WORK", "VALUE": "+13333333555", "TYPE_ID": "PHONE"}]}});
        assert_eq!(bitrix24_phones(&b24), ["+13333333555"]);
        assert!(bitrix24_phones(&json!({"ID": "1"})).is_empty());
    }

    #[test]
    fn the_formats_crms_really_hold() {
        assert_eq!(candidates("89031453455", Some("7")), ["79031453455"]);
        assert_eq!(candidates("+7 999 123-45-67", Some("55")), ["79991234567"]);
        assert_eq!(candidates("9991234567", Some("7")), ["79991234567"]);
        assert_eq!(
            candidates("5531987424967", Some("55")),
            ["5531987424967", "553187424967"]
        );
        assert_eq!(
            candidates("24981558600", Some("55")),
            ["5524981558600", "552481558600"]
        );
        assert_eq!(
            candidates("553187424967", None),
            ["553187424967", "5531987424967"]
        );
        assert!(candidates("333", Some("7")).is_empty());
        assert!(candidates("", Some("7")).is_empty());
        assert!(candidates("no phone", Some("7")).is_empty());
    }
}
