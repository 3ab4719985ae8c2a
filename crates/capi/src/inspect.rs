//! Commands that need no database: `normalize` and `parse-webhook`.

use crate::Failure;
use domain::{
    evolution::{self, ParseError, Parsed},
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
    println!("{line}");
    Ok(())
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum WebhookSource {
    /// Evolution API `messages.upsert`.
    Evolution,
}

fn read_input(file: &str) -> Result<String, Failure> {
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

pub fn parse_webhook(source: WebhookSource, file: &str) -> Result<(), Failure> {
    let WebhookSource::Evolution = source;
    let text = read_input(file)?;
    let body: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::input(format!("{file}: not valid JSON: {e}")))?;
    let parsed = match evolution::parse_messages_upsert(&body) {
        Ok(p) => p,
        Err(ParseError::OtherEvent(event)) => {
            println!("{}", json!({"ignored": format!("event {event}")}));
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
        println!("{line}");
    }
    Ok(())
}
