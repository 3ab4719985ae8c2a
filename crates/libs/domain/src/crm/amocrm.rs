//! amoCRM/Kommo account webhooks (amocrm.ru crm_platform/webhooks-format, Kommo
//! docs/webhooks-general): form bodies whose top-level
//! keys are `account[…]` and `<entities>[<action>][<i>][…]`. Every id and
//! value stays text; the body is only a trigger (the entity is read again
//! through the API before any decision).

use super::form::{self, FormError, Node};
use serde::Serialize;

/// The account a webhook says it is from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Account {
    pub subdomain: Option<String>,
    pub id: Option<String>,
    /// `account[_links][self]`, e.g. `https://x.amocrm.ru` (absent in old bodies).
    #[serde(skip)]
    pub base_url: Option<String>,
}

/// One changed entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `lead`, `contact`, `company` (also for `contacts[…][type]=company`),
    /// or the key's own singular.
    pub entity: String,
    /// The action key: `add`, `update`, `delete`, `status`, `restore`, …
    pub action: String,
    pub id: Option<String>,
    pub status_id: Option<String>,
    pub pipeline_id: Option<String>,
    pub fields: Vec<Field>,
    /// `last_modified` (or `updated_at`): two reports of one change share it.
    #[serde(skip)]
    pub modified_at: Option<String>,
}

impl Change {
    /// The same for every delivery of this change (amoCRM retries), and
    /// different for a later change of the entity.
    pub fn key(&self) -> String {
        let text = serde_json::json!([self, self.modified_at]).to_string();
        crate::normalize::sha256_hex(&text)
    }
}

/// A custom field as the webhook carries it (positions are not stable:
/// match by `id`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Field {
    pub id: Option<String>,
    pub code: Option<String>,
    pub values: Vec<FieldValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldValue {
    pub value: Option<String>,
    /// The webhook's `[enum]` (the API calls it `enum_id`).
    pub enum_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Webhook {
    pub account: Account,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("not an amoCRM webhook: no entity changes (leads[…], contacts[…], …) in the body")]
    NoChanges,
}

/// Reads a webhook body (form-urlencoded; a JSON object of the same shape
/// is read too).
pub fn parse_webhook(body: &str) -> Result<Webhook, WebhookError> {
    let root = form::parse(body)?;
    let account = Account {
        subdomain: root.text_at(&["account", "subdomain"]),
        id: root.text_at(&["account", "id"]),
        base_url: root.text_at(&["account", "_links", "self"]),
    };
    let mut changes = Vec::new();
    for (key, actions) in root.children() {
        if key == "account" {
            continue;
        }
        for (action, items) in actions.children() {
            for (_, item) in items.indexed() {
                if let Node::Branch(_) = item {
                    changes.push(change(key, action, item));
                }
            }
        }
    }
    if changes.is_empty() {
        return Err(WebhookError::NoChanges);
    }
    Ok(Webhook { account, changes })
}

fn change(key: &str, action: &str, item: &Node) -> Change {
    let entity = if item.text_at(&["type"]).as_deref() == Some("company") {
        "company".to_owned()
    } else {
        singular(key)
    };
    let fields = item
        .at(&["custom_fields"])
        .map(|fields| {
            fields
                .indexed()
                .into_iter()
                .map(|(_, f)| field(f))
                .collect()
        })
        .unwrap_or_default();
    Change {
        entity,
        action: action.to_owned(),
        id: item.text_at(&["id"]),
        status_id: item.text_at(&["status_id"]),
        pipeline_id: item.text_at(&["pipeline_id"]),
        fields,
        modified_at: item
            .text_at(&["last_modified"])
            .or_else(|| item.text_at(&["updated_at"])),
    }
}

fn field(f: &Node) -> Field {
    let values = match f.at(&["values"]) {
        None | Some(Node::Leaf(_)) => Vec::new(),
        // The object form: `values[value]=…&values[enum]=…`.
        Some(v) if v.get("value").is_some() || v.get("enum").is_some() => vec![value(v)],
        Some(v) => v.indexed().into_iter().map(|(_, n)| value(n)).collect(),
    };
    Field {
        id: f.text_at(&["id"]),
        code: f.text_at(&["code"]),
        values,
    }
}

fn value(n: &Node) -> FieldValue {
    match n {
        // A date: `values[0]=1542067200`, no `[value]`.
        Node::Leaf(v) => FieldValue {
            value: Some(v.clone()),
            enum_id: None,
        },
        Node::Branch(_) => FieldValue {
            value: n.text_at(&["value"]),
            enum_id: n.text_at(&["enum"]).or_else(|| n.text_at(&["enum_id"])),
        },
    }
}

/// `leads` → `lead`, `companies` → `company`, `unsorted` → `unsorted`.
fn singular(key: &str) -> String {
    if let Some(stem) = key.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = key.strip_suffix('s').filter(|s| !s.ends_with('s')) {
        stem.to_owned()
    } else {
        key.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_status_change_with_every_value_shape() {
        let body = "leads[status][0][id]=10701093&leads[status][0][status_id]=142&leads[status][0][pipeline_id]=9217056\
            &leads[status][0][custom_fields][0][id]=66339&leads[status][0][custom_fields][0][values][0][value]=%D0%A1%D0%B0%D0%B9%D1%82\
            &leads[status][0][custom_fields][0][values][0][enum]=139517\
            &leads[status][0][custom_fields][1][id]=72333&leads[status][0][custom_fields][1][values][0]=1542067200\
            &leads[status][0][custom_fields][2][id]=436799&leads[status][0][custom_fields][2][code]=UTM_MEDIUM\
            &leads[status][0][custom_fields][3][id]=9&leads[status][0][custom_fields][3][values][value]=2&leads[status][0][custom_fields][3][values][enum]=566642\
            &account[subdomain]=apfitness";
        let w = parse_webhook(body).ok();
        assert_eq!(
            serde_json::to_value(w).ok(),
            Some(json!({
                "account": {"subdomain": "apfitness", "id": null},
                "changes": [{"entity": "lead", "action": "status", "id": "10701093", "status_id": "142", "pipeline_id": "9217056",
                  "fields": [
                    {"id": "66339", "code": null, "values": [{"value": "Сайт", "enum_id": "139517"}]},
                    {"id": "72333", "code": null, "values": [{"value": "1542067200", "enum_id": null}]},
                    {"id": "436799", "code": "UTM_MEDIUM", "values": []},
                    {"id": "9", "code": null, "values": [{"value": "2", "enum_id": "566642"}]}
                  ]}]
            }))
        );
    }

    #[test]
    fn changes_keep_key_order_then_index_and_companies_come_under_contacts() {
        let body = "contacts[update][1][id]=3&contacts[update][1][type]=company&leads[add][0][id]=1\
            &contacts[update][0][id]=2&contacts[update][0][type]=contact&account[id]=7";
        let w = parse_webhook(body).ok();
        let got: Vec<(String, String, Option<String>)> = w
            .map(|w| {
                w.changes
                    .into_iter()
                    .map(|c| (c.entity, c.action, c.id))
                    .collect()
            })
            .unwrap_or_default();
        let want = [
            ("contact", "update", "2"),
            ("company", "update", "3"),
            ("lead", "add", "1"),
        ];
        assert_eq!(
            got,
            want.map(|(e, a, i)| (e.to_owned(), a.to_owned(), Some(i.to_owned())))
        );
        assert_eq!(singular("catalogs"), "catalog");
        assert_eq!(singular("unsorted"), "unsorted");
    }

    #[test]
    fn a_redelivered_change_has_the_same_key_and_a_later_one_another() {
        let key = |body: &str| {
            parse_webhook(body)
                .ok()
                .and_then(|w| w.changes.first().map(Change::key))
        };
        let first = key(
            "leads[update][0][id]=1&leads[update][0][status_id]=5&leads[update][0][last_modified]=100",
        );
        assert!(first.is_some());
        assert_eq!(
            first,
            key(
                "leads%5Bupdate%5D%5B0%5D%5Bid%5D=1&leads%5Bupdate%5D%5B0%5D%5Bstatus_id%5D=5&leads%5Bupdate%5D%5B0%5D%5Blast_modified%5D=100"
            )
        );
        assert_ne!(
            first,
            key(
                "leads[update][0][id]=1&leads[update][0][status_id]=5&leads[update][0][last_modified]=101"
            )
        );
        assert_ne!(
            first,
            key(
                "leads[status][0][id]=1&leads[status][0][status_id]=5&leads[status][0][last_modified]=100"
            )
        );
    }

    #[test]
    fn a_body_without_changes_is_refused() {
        assert_eq!(parse_webhook("account[id]=1"), Err(WebhookError::NoChanges));
        assert_eq!(parse_webhook("hello"), Err(WebhookError::NoChanges));
        assert!(matches!(parse_webhook(""), Err(WebhookError::Form(_))));
    }
}
