//! Every input a fuzzer found a crash, a hang or a stack overflow with
//! (`scripts/fuzz` copies them to `crates/fuzz/regressions/<target>/`),
//! replayed through the parser that target drives: each must now be read
//! or refused without a panic.

use domain::{
    crm::{amocrm, bitrix24},
    evolution, meta_errors,
    normalize::{NormalizeOptions, UserDataKey, normalize},
    whatsapp_cloud,
};
use std::path::Path;

fn replay(target: &str, data: &[u8]) {
    let text = std::str::from_utf8(data).ok();
    let json = || serde_json::from_slice::<serde_json::Value>(data).ok();
    match target {
        "amocrm_form" => {
            let _ = text.map(amocrm::parse_webhook);
        }
        "bitrix24_form" => {
            let _ = text.map(bitrix24::parse_event);
        }
        "evolution_webhook" => {
            let _ = json().map(|v| evolution::parse_messages_upsert(&v));
        }
        "whatsapp_cloud_webhook" => {
            let body = data.splitn(2, |b| *b == b'\n').last().unwrap_or(data);
            let _ = serde_json::from_slice::<serde_json::Value>(body)
                .map(|v| whatsapp_cloud::parse(&v));
        }
        "meta_error_body" => {
            let _ = json().map(|v| meta_errors::MetaError::from_body(&v));
        }
        "normalizer" => {
            if let [selector, rest @ ..] = data
                && let Ok(value) = std::str::from_utf8(rest)
            {
                let key = UserDataKey::ALL[usize::from(*selector) % UserDataKey::ALL.len()];
                let _ = normalize(key, value, &NormalizeOptions::default());
            }
        }
        other => panic!("regressions/{other}: no such fuzz target"),
    }
}

#[test]
fn every_kept_fuzz_finding_is_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/regressions");
    let mut replayed = 0;
    for target in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        let name = target.file_name().to_string_lossy().into_owned();
        for input in std::fs::read_dir(target.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let data = std::fs::read(input.path()).unwrap_or_default();
            replay(&name, &data);
            replayed += 1;
        }
    }
    assert!(
        replayed >= 2,
        "the kept findings are read from {}",
        root.display()
    );
}

/// The finding that stopped the gateway: 200,000 nested `[]`. Refused now.
#[test]
fn the_deep_bracket_body_is_refused_by_both_crm_readers() {
    let body = format!("a{}=1", "[]".repeat(200_000));
    assert!(matches!(
        amocrm::parse_webhook(&body),
        Err(amocrm::WebhookError::Form(
            domain::crm::form::FormError::Limit(_)
        ))
    ));
    assert!(matches!(
        bitrix24::parse_event(&body),
        Err(bitrix24::EventError::Form(
            domain::crm::form::FormError::Limit(_)
        ))
    ));
}
