//! Commands that need no database: `normalize`, `parse-webhook`,
//! `crm-match` and `topology`.

use crate::Failure;
use domain::{
    crm::{amocrm, bitrix24, mapping},
    evolution::{self, ParseError, Parsed},
    level::CrmType,
    normalize::{NormalizeOptions, UserDataKey, normalize as normalize_value, sha256_hex},
};
use serde_json::{Value, json};
use std::io::Read;

pub fn normalize(
    key: &str,
    value: &str,
    default_country_code: Option<String>,
) -> Result<(), Failure> {
    let key: UserDataKey = key
        .parse()
        .map_err(|e: domain::normalize::UnknownKey| Failure::input(e.to_string()))?;
    if let Some(cc) = &default_country_code
        && (cc.is_empty() || !cc.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(Failure::input(
            "--default-country-code takes digits, e.g. 1 or 7",
        ));
    }
    let opts = NormalizeOptions {
        default_country_code,
    };
    let line = match normalize_value(key, value, &opts) {
        Some(n) => json!({"normalized": n, "sha256": sha256_hex(&n)}),
        None => json!({"normalized": null}),
    };
    out!("{line}");
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WebhookSource {
    /// Evolution API `messages.upsert`.
    Evolution,
    /// An amoCRM/Kommo account webhook (form-urlencoded).
    Amocrm,
    /// A Bitrix24 event call (form-urlencoded, or the JSON its docs show).
    Bitrix24,
    /// A WhatsApp Cloud API webhook (Meta's `whatsapp_business_account`).
    WhatsappCloud,
}

/// A file's text, or standard input's for `-`.
pub(crate) fn read_input(file: &str) -> Result<String, Failure> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::input(format!("reading standard input: {e}")))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| Failure::input(format!("reading {file}: {e}")))?;
    }
    Ok(text)
}

/// One JSON line from a serializable value (its keys in declared order).
fn print_line<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let line = serde_json::to_string(value).map_err(|e| Failure::from(anyhow::Error::from(e)))?;
    out!("{line}");
    Ok(())
}

pub fn parse_webhook(source: WebhookSource, file: &str) -> Result<(), Failure> {
    let text = read_input(file)?;
    match source {
        WebhookSource::Evolution => parse_evolution(file, &text),
        WebhookSource::Amocrm => print_line(
            &amocrm::parse_webhook(&text).map_err(|e| Failure::input(format!("{file}: {e}")))?,
        ),
        WebhookSource::Bitrix24 => print_line(
            &bitrix24::parse_event(&text).map_err(|e| Failure::input(format!("{file}: {e}")))?,
        ),
        WebhookSource::WhatsappCloud => {
            let body: Value = serde_json::from_str(&text)
                .map_err(|e| Failure::input(format!("{file}: not valid JSON: {e}")))?;
            let messages = domain::whatsapp_cloud::parse(&body)
                .map_err(|e| Failure::input(format!("{file}: {e}")))?;
            // A struct, not json!, so each message keeps the contract's key order.
            #[derive(serde::Serialize)]
            struct Answer {
                messages: Vec<domain::whatsapp_cloud::CloudMessage>,
            }
            print_line(&Answer { messages })
        }
    }
}

fn parse_evolution(file: &str, text: &str) -> Result<(), Failure> {
    let body: Value = serde_json::from_str(text)
        .map_err(|e| Failure::input(format!("{file}: not valid JSON: {e}")))?;
    let parsed = match evolution::parse_messages_upsert(&body) {
        Ok(p) => p,
        Err(ParseError::OtherEvent(event)) => {
            out!("{}", json!({"ignored": format!("event {event}")}));
            return Ok(());
        }
        Err(e) => return Err(Failure::input(format!("{file}: {e}"))),
    };
    for p in parsed {
        // Serialized from the struct so the keys keep their documented order.
        let line = match p {
            Parsed::Message(m) => {
                serde_json::to_string(&*m).map_err(|e| Failure::from(anyhow::Error::from(e)))?
            }
            Parsed::Ignored(reason) => json!({"ignored": reason.as_str()}).to_string(),
        };
        out!("{line}");
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Crm {
    Amocrm,
    Bitrix24,
}

impl From<Crm> for CrmType {
    fn from(c: Crm) -> Self {
        match c {
            Crm::Amocrm => CrmType::AmoCrm,
            Crm::Bitrix24 => CrmType::Bitrix24,
        }
    }
}

fn read_json(file: &str, what: &str) -> Result<Value, Failure> {
    serde_json::from_str(&read_input(file)?)
        .map_err(|e| Failure::input(format!("{file}: not a JSON {what}: {e}")))
}

/// `capi crm-match`: the levels an entity (the CRM API's answer) reaches
/// under a mapping `{"interest":[…],"qualified":[…],"scheduled":[…]}`.
pub fn crm_match(
    crm: Crm,
    entity_type: &str,
    entity_file: &str,
    mapping_file: &str,
) -> Result<(), Failure> {
    let entity = read_json(entity_file, "entity")?;
    if !entity.is_object() {
        return Err(Failure::input(format!(
            "{entity_file}: the entity must be a JSON object"
        )));
    }
    let mapping: mapping::LevelMapping =
        serde_json::from_value(read_json(mapping_file, "mapping")?)
            .map_err(|e| Failure::input(format!("{mapping_file}: not a mapping: {e}")))?;
    let levels = mapping::matched_levels(crm.into(), entity_type, &entity, &mapping);
    print_line(&json!({ "levels": levels }))
}

/// `capi topology`: the exchange and every queue with its dead-letter queue
/// and consumer, as one JSON object.
pub fn topology(prefix: &str) -> Result<(), Failure> {
    let names = bus::topology::Names::new(prefix);
    let queues: Vec<_> = bus::topology::Queue::ALL
        .into_iter()
        .map(|q| {
            serde_json::json!({
                "name": names.queue(q),
                "dead_letter": names.dead_letter(q),
                "routing_key": q.routing_key(),
                "consumer": q.consumer(),
            })
        })
        .collect();
    out!(
        "{}",
        serde_json::json!({"exchange": names.exchange(), "queues": queues})
    );
    Ok(())
}
