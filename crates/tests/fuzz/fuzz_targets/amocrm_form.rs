//! An amoCRM webhook's form body.
#![no_main]
use domain::crm::amocrm;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hook) = amocrm::parse_webhook(body) {
        for change in &hook.changes {
            let _ = change.key();
            let _ = serde_json::to_value(change);
        }
    }
});
