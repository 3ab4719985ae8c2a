//! An answer from Meta (Conversions API or Cloud API): its status and body.
#![no_main]
use domain::meta_errors;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [a, b, rest @ ..] => (Some(u16::from_le_bytes([*a, *b]) % 600), rest),
        _ => (None, data),
    };
    let value = serde_json::from_slice::<serde_json::Value>(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()));
    let error = meta_errors::MetaError::from_body(&value);
    let _ = meta_errors::verdict(status, error.as_ref());
    let _ = meta_errors::send_verdict(status.unwrap_or(0), error.as_ref().and_then(|e| e.code));
});
