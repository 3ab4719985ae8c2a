//! A WhatsApp Cloud API webhook: its signature header and its body.
#![no_main]
use domain::whatsapp_cloud;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first line is the X-Hub-Signature-256 header, the rest the body.
    let (header, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (std::str::from_utf8(&data[..i]).ok(), &data[i + 1..]),
        None => (None, data),
    };
    let _ = whatsapp_cloud::signature_valid(&[b"app-secret".as_slice()], body, header);
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let _ = whatsapp_cloud::parse(&value);
});
