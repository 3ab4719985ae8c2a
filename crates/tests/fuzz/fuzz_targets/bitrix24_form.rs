//! A Bitrix24 event's form body.
#![no_main]
use domain::crm::bitrix24;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(event) = bitrix24::parse_event(body) {
        let _ = event.key();
    }
});
