//! Properties of Meta's normalisation on generated text (the fuzz target
//! `normalizer` checks the same on libFuzzer's inputs): normalising twice
//! changes nothing, and what is sent is the SHA-256 of the normalised value.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::normalize::{NormalizeOptions, UserDataKey, hash_for_meta, normalize, sha256_hex};
use proptest::prelude::*;

/// Text the way customers and CRMs write it: letters of several scripts,
/// digits, punctuation, spaces of every kind, and a few combining marks.
fn messy_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        any::<char>().prop_map(String::from),
        Just("+".to_owned()),
        Just("00".to_owned()),
        Just(" ".to_owned()),
        Just("\u{00a0}".to_owned()),
        Just("-".to_owned()),
        Just("(".to_owned()),
        Just("@".to_owned()),
        Just(".".to_owned()),
        Just("é".to_owned()),
        Just("e\u{0301}".to_owned()),
        Just("Ж".to_owned()),
        Just("ß".to_owned()),
        Just("İ".to_owned()),
        (0u32..10).prop_map(|d| d.to_string()),
        (b'a'..=b'z').prop_map(|c| char::from(c).to_string()),
        (b'A'..=b'Z').prop_map(|c| char::from(c).to_string()),
    ];
    prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
}

fn key() -> impl Strategy<Value = UserDataKey> {
    (0..UserDataKey::ALL.len()).prop_map(|i| UserDataKey::ALL[i])
}

fn options() -> impl Strategy<Value = NormalizeOptions> {
    prop_oneof![
        Just(None),
        Just(Some("7".to_owned())),
        Just(Some("1".to_owned())),
        Just(Some("44".to_owned())),
    ]
    .prop_map(|default_country_code| NormalizeOptions {
        default_country_code,
    })
}

fn looks_hashed(s: &str) -> bool {
    (s.len() == 64 || s.len() == 32) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn normalising_twice_changes_nothing(key in key(), value in messy_text(), opts in options()) {
        if let Some(once) = normalize(key, &value, &opts) {
            // A normalised phone carries its country code: it is read again
            // as international, with no default country code.
            let twice = normalize(key, &once, &NormalizeOptions::default());
            prop_assert_eq!(twice.as_deref(), Some(once.as_str()), "{} of {:?}", key, value);
        }
    }

    #[test]
    fn the_hash_is_the_hash_of_the_normalised_value(key in key(), value in messy_text(), opts in options()) {
        let hashed = hash_for_meta(key, &value, &opts);
        match normalize(key, &value, &opts) {
            _ if looks_hashed(&value) => {
                prop_assert_eq!(hashed, Some(value.to_ascii_lowercase()));
            }
            Some(n) if !n.is_empty() => {
                let expected = sha256_hex(&n);
                prop_assert_eq!(hashed.as_deref(), Some(expected.as_str()));
                let h = hashed.unwrap();
                prop_assert!(h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            }
            // Rejected or nothing left: nothing is sent.
            _ => prop_assert_eq!(hashed, None),
        }
    }

    #[test]
    fn a_phone_never_leaves_as_anything_but_digits(value in messy_text(), opts in options()) {
        if looks_hashed(&value) {
            return Ok(());
        }
        if let Some(n) = normalize(UserDataKey::Phone, &value, &opts) {
            prop_assert!(n.bytes().all(|b| b.is_ascii_digit()), "{:?} -> {:?}", value, n);
            prop_assert!(!n.starts_with('0'), "{:?} -> {:?}", value, n);
        }
    }
}

/// Found by the `normalizer` fuzz target: "0001" with a default country
/// code is international ("00" prefix), so it normalises to "1"; read again
/// as a national number it would gain the default code ("71"). A normalised
/// phone is international: normalised again it stays "1".
#[test]
fn fuzz_regression_an_international_00_prefix_is_not_prefixed_again() {
    let seven = NormalizeOptions {
        default_country_code: Some("7".to_owned()),
    };
    let once = normalize(UserDataKey::Phone, "0001", &seven);
    assert_eq!(once.as_deref(), Some("1"));
    assert_eq!(
        normalize(UserDataKey::Phone, "1", &NormalizeOptions::default()).as_deref(),
        Some("1")
    );
    assert_eq!(
        hash_for_meta(UserDataKey::Phone, "0001", &seven),
        Some(sha256_hex("1"))
    );
}

/// Found by the `normalizer` fuzz target: removing the punctuation between
/// two combining marks left them out of canonical order, so a second
/// normalisation reordered them (and the name would hash differently).
#[test]
fn fuzz_regression_marks_brought_together_are_put_in_canonical_order() {
    let value = "{.\u{367}\u{367}:{{{{{{{.\u{367}\u{327}:{{{{";
    let opts = NormalizeOptions::default();
    let once = normalize(UserDataKey::FirstName, value, &opts).expect("a name");
    assert_eq!(once, "\u{327}\u{367}\u{367}\u{367}");
    assert_eq!(
        normalize(UserDataKey::FirstName, &once, &opts).as_deref(),
        Some(once.as_str())
    );
}
