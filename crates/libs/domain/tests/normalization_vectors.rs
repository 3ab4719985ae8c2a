//! Every row of Meta's normalization conformance vectors.

#![allow(clippy::expect_used, clippy::unwrap_used)] // test code: a failed expectation is the test failing

use domain::normalize::{NormalizeOptions, UserDataKey, normalize, sha256_hex};

const VECTORS: &str = include_str!("data/normalization-vectors.tsv");

#[test]
fn every_normalization_vector_passes() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for (line_no, line) in VECTORS.lines().enumerate().skip(1) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert!(cols.len() >= 5, "line {}: malformed row", line_no + 1);
        let (key, input, expected, sha) = (cols[1], cols[2], cols[3], cols[4]);
        let input: String = serde_json::from_str(input).expect("input_json is a JSON string");
        let expected: Option<String> =
            serde_json::from_str(expected).expect("normalized_json is JSON");
        // `(650)555-1212` → `16505551212` is Meta's example with a default country code of 1.
        let opts = NormalizeOptions {
            default_country_code: (cols[0] == "meta_docs" && input == "(650)555-1212")
                .then(|| "1".into()),
        };
        let keys: Vec<UserDataKey> = if key == "fn/ln" {
            vec![UserDataKey::FirstName, UserDataKey::LastName]
        } else {
            vec![key.parse().expect("known key")]
        };
        for k in keys {
            checked += 1;
            let got = normalize(k, &input, &opts);
            if got != expected {
                failures.push(format!(
                    "line {}: {k} {input:?}: got {got:?}, want {expected:?}",
                    line_no + 1
                ));
            } else if let Some(n) = &got
                && !sha.is_empty()
                && sha256_hex(n) != sha
            {
                failures.push(format!(
                    "line {}: {k} {input:?}: sha256 mismatch",
                    line_no + 1
                ));
            }
        }
    }
    assert!(checked > 1700, "only {checked} vectors read");
    assert!(
        failures.is_empty(),
        "{} of {checked} vectors fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
