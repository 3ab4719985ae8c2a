//! Keys we sign or encrypt with must be random enough that nobody can guess
//! them: with a guessed dashboard secret anyone could sign in as any
//! account. A key is accepted only as hex or base64 of at least 32 bytes
//! that do not repeat a few values (a placeholder such as `CHANGE-ME`, a
//! word, or 64 zeros is refused); `capi secrets generate-key` or
//! `openssl rand -hex 32` make a good one.

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD},
};

pub const MIN_BYTES: usize = 32;
/// 32 random bytes show ~30 distinct values; fewer than this is a pattern.
const MIN_DISTINCT: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{setting} ({env}) is not a strong key: it must be hex or base64 of at least {MIN_BYTES} random bytes \
     ({why}); make one with `capi secrets generate-key` or `openssl rand -hex 32`"
)]
pub struct WeakKey {
    pub setting: &'static str,
    pub env: &'static str,
    pub why: &'static str,
}

/// The key's bytes, decoded from hex or base64, when they are strong
/// enough; otherwise why not (never the value itself).
pub fn decode_strong(
    value: &str,
    setting: &'static str,
    env: &'static str,
) -> Result<Vec<u8>, WeakKey> {
    let weak = |why| WeakKey { setting, env, why };
    let value = value.trim();
    let bytes = decode(value).ok_or_else(|| weak("neither hex nor base64"))?;
    if bytes.len() < MIN_BYTES {
        return Err(weak("too short"));
    }
    if !looks_random(&bytes) {
        return Err(weak("too few distinct bytes: not random"));
    }
    Ok(bytes)
}

/// False for keys made of a few repeated values (zeros, a short pattern).
pub fn looks_random(bytes: &[u8]) -> bool {
    let mut seen = [false; 256];
    for b in bytes {
        seen[usize::from(*b)] = true;
    }
    seen.iter().filter(|s| **s).count() >= MIN_DISTINCT
}

fn decode(value: &str) -> Option<Vec<u8>> {
    if value.len().is_multiple_of(2) && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(value).ok();
    }
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: &str) -> Result<usize, &'static str> {
        decode_strong(
            v,
            "reports.dashboard_secret",
            "CAPI_REPORTS__DASHBOARD_SECRET",
        )
        .map(|b| b.len())
        .map_err(|e| e.why)
    }

    #[test]
    fn random_hex_and_base64_of_32_bytes_pass() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(check(hex), Ok(32));
        assert_eq!(check(&format!("  {hex}\n")), Ok(32));
        assert_eq!(
            check("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="),
            Ok(32)
        );
        assert_eq!(check("n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg"), Ok(32));
    }

    #[test]
    fn placeholders_words_short_and_patterned_keys_are_refused() {
        assert_eq!(check("CHANGE-ME"), Err("neither hex nor base64"));
        assert_eq!(
            check("test-dashboard-secret"),
            Err("neither hex nor base64")
        );
        assert_eq!(check("bench"), Err("neither hex nor base64"));
        assert_eq!(check("YmVuY2g="), Err("too short"));
        assert_eq!(
            check(&"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"[..62]),
            Err("too short")
        );
        assert_eq!(
            check(&"0".repeat(64)),
            Err("too few distinct bytes: not random")
        );
        assert_eq!(
            check(&"0123456789abcdef".repeat(4)),
            Err("too few distinct bytes: not random")
        );
        assert_eq!(
            check(&"QUJD".repeat(11)),
            Err("too few distinct bytes: not random")
        );
        assert_eq!(
            check(&"a".repeat(64)),
            Err("too few distinct bytes: not random")
        );
    }

    #[test]
    fn the_message_names_the_setting_and_never_the_value() {
        let e = decode_strong(
            "CHANGE-ME",
            "reports.dashboard_secret",
            "CAPI_REPORTS__DASHBOARD_SECRET",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            e.contains("reports.dashboard_secret (CAPI_REPORTS__DASHBOARD_SECRET)"),
            "{e}"
        );
        assert!(!e.contains("CHANGE-ME"), "{e}");
    }
}
