//! Meta's normalization and hashing of `user_data` keys.
//!
//! The rules follow Meta's reference normalizer (capi-param-builder), which is
//! the conformance suite in `shared/fixtures/meta-capi/normalization-vectors.tsv`:
//! a value that already looks like a SHA-256/MD5 hex digest is passed through,
//! everything else is normalized and then hashed as lowercase SHA-256 hex of
//! the NFC form.

mod regions;

use sha2::{Digest, Sha256};
use std::{fmt, str::FromStr};
use unicode_normalization::UnicodeNormalization;

/// A `user_data` key that Meta wants normalized (and, except where noted, hashed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDataKey {
    Email,
    Phone,
    FirstName,
    LastName,
    City,
    State,
    Zip,
    Country,
    ExternalId,
    Gender,
    DateOfBirth,
}

impl UserDataKey {
    pub const ALL: [UserDataKey; 11] = [
        Self::Email,
        Self::Phone,
        Self::FirstName,
        Self::LastName,
        Self::City,
        Self::State,
        Self::Zip,
        Self::Country,
        Self::ExternalId,
        Self::Gender,
        Self::DateOfBirth,
    ];

    /// The key's name in Meta's `user_data` object.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "em",
            Self::Phone => "ph",
            Self::FirstName => "fn",
            Self::LastName => "ln",
            Self::City => "ct",
            Self::State => "st",
            Self::Zip => "zp",
            Self::Country => "country",
            Self::ExternalId => "external_id",
            Self::Gender => "ge",
            Self::DateOfBirth => "db",
        }
    }
}

impl fmt::Display for UserDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "unknown user_data key '{0}' (expected one of em, ph, fn, ln, ct, st, zp, country, external_id, ge, db)"
)]
pub struct UnknownKey(pub String);

impl FromStr for UserDataKey {
    type Err = UnknownKey;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownKey(s.to_owned()))
    }
}

/// Options that change how a value is normalized.
#[derive(Debug, Clone, Default)]
pub struct NormalizeOptions {
    /// Country calling code (digits, e.g. "1" or "7") prepended to phone
    /// numbers written without an international prefix.
    pub default_country_code: Option<String>,
}

/// Normalizes `value` for `key`. `None` means Meta's rules reject the value;
/// `Some("")` means nothing is left (the key is not sent either).
pub fn normalize(key: UserDataKey, value: &str, opts: &NormalizeOptions) -> Option<String> {
    if looks_hashed(value) {
        return Some(value.to_owned());
    }
    let value: String = value.nfc().collect();
    let normalized = match key {
        UserDataKey::Email => email(&value),
        UserDataKey::Phone => Some(phone(&value, opts.default_country_code.as_deref())),
        UserDataKey::FirstName | UserDataKey::LastName => Some(name(&value)),
        UserDataKey::City => city(&value),
        UserDataKey::State => two_letter(&value, regions::STATES),
        UserDataKey::Country => two_letter(&value, regions::COUNTRIES),
        UserDataKey::Zip => zip(&value),
        UserDataKey::ExternalId => Some(
            value
                .chars()
                .filter(|c| !is_js_space(*c))
                .collect::<String>()
                .to_lowercase(),
        ),
        UserDataKey::Gender => gender(&value),
        UserDataKey::DateOfBirth => date_of_birth(&value, current_year()),
    };
    // Stripping characters can bring combining marks together out of their
    // canonical order (found by fuzzing): the result is NFC again, so that
    // normalising it once more changes nothing.
    normalized.map(|s| s.nfc().collect())
}

/// The value to put in `user_data` for `key`: the SHA-256 of the normalized
/// value, an already-hashed input unchanged (lowercased), or `None` when
/// nothing should be sent.
pub fn hash_for_meta(key: UserDataKey, value: &str, opts: &NormalizeOptions) -> Option<String> {
    if looks_hashed(value) {
        return Some(value.to_ascii_lowercase());
    }
    let normalized = normalize(key, value, opts)?;
    (!normalized.is_empty()).then(|| sha256_hex(&normalized))
}

/// Lowercase hex SHA-256 of the NFC form of `s`.
pub fn sha256_hex(s: &str) -> String {
    let nfc: String = s.nfc().collect();
    hex::encode(Sha256::digest(nfc.as_bytes()))
}

fn looks_hashed(value: &str) -> bool {
    let hex = |n: usize| value.len() == n && value.bytes().all(|b| b.is_ascii_hexdigit());
    hex(64) || hex(32)
}

/// JavaScript's `\s`: Unicode white space plus the byte-order mark.
fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

fn email(value: &str) -> Option<String> {
    let e = value.trim_matches(is_js_space).to_lowercase();
    valid_email(&e).then_some(e)
}

/// The RFC 2822-style check Meta's normalizer applies: dot-separated atoms of
/// ASCII letters, digits and `!#$%&'*+/=?^_`{|}~-` before the `@`, and two or
/// more dot-separated labels of letters, digits and inner hyphens after it.
fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    let atom_char = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c);
    let local_ok = local
        .split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(atom_char));
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    local_ok && labels.len() >= 2 && labels.iter().all(label_ok)
}

fn phone(value: &str, default_cc: Option<&str>) -> String {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    let national = digits.trim_start_matches('0').to_owned();
    let Some(cc) = default_cc.filter(|cc| !cc.is_empty()) else {
        return national;
    };
    let trimmed = value.trim_start();
    let international = trimmed.starts_with('+') || trimmed.starts_with("00");
    if international || national.is_empty() || national.starts_with(cc) {
        return national;
    }
    // Russian trunk prefix: 8 916 123-45-67 is +7 916 123-45-67.
    if cc == "7" && national.len() == 11 && national.starts_with('8') {
        return format!("7{}", &national[1..]);
    }
    format!("{cc}{national}")
}

fn is_name_stripped(c: char) -> bool {
    is_js_space(c) || "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".contains(c)
}

fn name(value: &str) -> String {
    value
        .chars()
        .filter(|c| !is_name_stripped(*c))
        .collect::<String>()
        .to_lowercase()
}

fn city(value: &str) -> Option<String> {
    let s: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_ascii_lowercase();
    s.starts_with(|c: char| c.is_ascii_lowercase()).then_some(s)
}

/// `st` and `country`: letters only, mapped from a full name when one is
/// recognised, cut to two letters.
fn two_letter(value: &str, table: &[(&str, &str)]) -> Option<String> {
    let letters: String = value
        .trim_matches(is_js_space)
        .to_lowercase()
        .chars()
        .filter(char::is_ascii_lowercase)
        .collect();
    let mapped = if letters.len() == 2 {
        letters
    } else if let Some((_, code)) = table.iter().find(|(n, _)| *n == letters) {
        (*code).to_owned()
    } else if let Some((_, code)) = table.iter().find(|(n, _)| letters.contains(n)) {
        (*code).to_owned()
    } else {
        letters
    };
    let out: String = mapped.chars().take(2).collect();
    out.starts_with(|c: char| c.is_ascii_lowercase())
        .then_some(out)
}

fn zip(value: &str) -> Option<String> {
    let lower = value.to_lowercase();
    let first = lower.split('-').next().unwrap_or_default();
    let z = first.trim_matches(is_js_space);
    (z.chars().count() >= 2).then(|| z.to_owned())
}

fn gender(value: &str) -> Option<String> {
    let g = value.to_lowercase();
    let g = g.trim_matches(is_js_space);
    if regions::MALE_WORDS.contains(&g) {
        Some("m".into())
    } else if regions::FEMALE_WORDS.contains(&g) {
        Some("f".into())
    } else {
        None
    }
}

fn current_year() -> i64 {
    use chrono::Datelike;
    i64::from(chrono::Utc::now().year())
}

fn date_of_birth(value: &str, this_year: i64) -> Option<String> {
    let groups: Vec<&str> = value
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    if groups.len() >= 3 {
        let n: Vec<i64> = groups[..3]
            .iter()
            .map(|g| g.parse::<i64>().unwrap_or(i64::MAX))
            .collect();
        let (y, m, d) = if n[0] > 31 {
            (
                n[0],
                if n[1] > 12 { n[2] } else { n[1] },
                if n[1] > 12 { n[1] } else { n[2] },
            )
        } else if n[1] > 31 {
            (
                n[1],
                if n[2] > 12 { n[0] } else { n[2] },
                if n[2] > 12 { n[2] } else { n[0] },
            )
        } else {
            (
                n[2],
                if n[0] > 12 { n[1] } else { n[0] },
                if n[0] > 12 { n[0] } else { n[1] },
            )
        };
        if (1800..=this_year + 1).contains(&y) && (1..=12).contains(&m) && (1..=31).contains(&d) {
            return Some(format!("{y:04}{m:02}{d:02}"));
        }
    }
    if groups.len() == 1 && groups[0].len() == 8 {
        return Some(groups[0].to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_their_names() {
        for k in UserDataKey::ALL {
            assert_eq!(k.as_str().parse::<UserDataKey>(), Ok(k));
        }
        assert!("phone".parse::<UserDataKey>().is_err());
    }

    #[test]
    fn default_country_code_is_added_to_national_numbers_only() {
        let us = NormalizeOptions {
            default_country_code: Some("1".into()),
        };
        assert_eq!(
            normalize(UserDataKey::Phone, "(650)555-1212", &us).as_deref(),
            Some("16505551212")
        );
        assert_eq!(
            normalize(UserDataKey::Phone, "+44 20 1234 5678", &us).as_deref(),
            Some("442012345678")
        );
        let ru = NormalizeOptions {
            default_country_code: Some("7".into()),
        };
        assert_eq!(
            normalize(UserDataKey::Phone, "8 (916) 123-45-67", &ru).as_deref(),
            Some("79161234567")
        );
        assert_eq!(
            normalize(UserDataKey::Phone, "916 123-45-67", &ru).as_deref(),
            Some("79161234567")
        );
    }

    #[test]
    fn already_hashed_values_are_sent_unchanged() {
        let h = "A665A45920422F9D417E4867EFDC4FB8A04A1F3FFF1FA07E998E86F7F7A27AE3";
        let opts = NormalizeOptions::default();
        assert_eq!(
            hash_for_meta(UserDataKey::Email, h, &opts),
            Some(h.to_ascii_lowercase())
        );
        assert_eq!(hash_for_meta(UserDataKey::Phone, "---", &opts), None);
    }
}
