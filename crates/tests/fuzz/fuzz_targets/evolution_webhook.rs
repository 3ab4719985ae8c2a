//! An Evolution API webhook body, as the gateway reads it.
#![no_main]
use domain::evolution::{self, Parsed};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = evolution::event_name(&value);
    if let Ok(parsed) = evolution::parse_messages_upsert(&value) {
        for p in parsed {
            if let Parsed::Message(m) = p {
                let _ = m.contact_key();
            }
        }
    }
});
