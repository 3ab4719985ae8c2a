//! Meta's normalisation and hashing of every user_data key, on any text:
//! no panic, normalising twice changes nothing, and the hash is the hash of
//! the normalised value. (A normalised phone is international, so it is
//! normalised again without a default country code.)
#![no_main]
use domain::normalize::{NormalizeOptions, UserDataKey, hash_for_meta, normalize, sha256_hex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [selector, rest @ ..] = data else {
        return;
    };
    let Ok(value) = std::str::from_utf8(rest) else {
        return;
    };
    let key = UserDataKey::ALL[usize::from(*selector) % UserDataKey::ALL.len()];
    let opts = NormalizeOptions {
        default_country_code: (selector & 0x80 != 0).then(|| "7".to_owned()),
    };
    let once = normalize(key, value, &opts);
    let hashed = hash_for_meta(key, value, &opts);
    if let Some(n) = &once {
        let again = normalize(key, n, &NormalizeOptions::default());
        assert_eq!(again.as_ref(), Some(n), "{key}: normalising twice changed {value:?}");
        if !n.is_empty() && n.len() != 64 && n.len() != 32 {
            assert_eq!(hashed.as_deref(), Some(sha256_hex(n).as_str()), "{key}: {value:?}");
        }
    }
});
