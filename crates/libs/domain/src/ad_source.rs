//! The ad a conversation started from, as WhatsApp names it: Evolution's
//! `externalAdReply.sourceId` (`sourceID` in whatsmeow-based providers) and
//! the Cloud API's `referral.source_id`, each beside a `source_type`
//! (`ad`, or `post` for a boosted post, whose id is not an ad's).

use serde_json::Value;

/// Meta's object ids are decimal digits; anything else (or longer) is not
/// an ad id and is not kept.
const MAX_ID_DIGITS: usize = 32;

/// The ad id in `source` (an `externalAdReply` or a `referral` object):
/// the first of `id_keys` holding an id, unless `type_keys` name a source
/// type other than `ad`. A number is read as its digits.
pub fn ad_id(source: &Value, id_keys: &[&str], type_keys: &[&str]) -> Option<String> {
    let not_an_ad = type_keys
        .iter()
        .filter_map(|k| source.get(*k))
        .filter_map(Value::as_str)
        .map(str::trim)
        .find(|t| !t.is_empty())
        .is_some_and(|t| !t.eq_ignore_ascii_case("ad"));
    if not_an_ad {
        return None;
    }
    id_keys.iter().find_map(|k| match source.get(*k)? {
        Value::String(s) => digits(s.trim()),
        Value::Number(n) => n.as_u64().and_then(|n| digits(&n.to_string())),
        _ => None,
    })
}

fn digits(s: &str) -> Option<String> {
    (!s.is_empty() && s.len() <= MAX_ID_DIGITS && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const IDS: &[&str] = &["sourceId", "sourceID"];
    const TYPES: &[&str] = &["sourceType"];

    #[test]
    fn an_ads_id_is_read_in_either_spelling_and_as_a_number() {
        let id = |v: Value| ad_id(&v, IDS, TYPES);
        assert_eq!(
            id(json!({"sourceId": "120226305854810726"})).as_deref(),
            Some("120226305854810726")
        );
        assert_eq!(
            id(json!({"sourceID": " 42 ", "sourceType": "AD"})).as_deref(),
            Some("42")
        );
        assert_eq!(
            id(json!({"sourceId": 120226305854810726u64})).as_deref(),
            Some("120226305854810726")
        );
        assert_eq!(
            id(json!({"sourceId": "", "sourceID": "7"})).as_deref(),
            Some("7")
        );
    }

    #[test]
    fn a_posts_id_and_what_is_not_an_id_are_not_kept() {
        let id = |v: Value| ad_id(&v, IDS, TYPES);
        assert_eq!(id(json!({"sourceId": "42", "sourceType": "post"})), None);
        assert_eq!(id(json!({"sourceId": "<script>"})), None);
        assert_eq!(id(json!({"sourceId": "1".repeat(33)})), None);
        assert_eq!(id(json!({"sourceId": -5})), None);
        assert_eq!(id(json!({"sourceId": {"a": 1}})), None);
        assert_eq!(id(json!({})), None);
        // A megabyte of digits is refused by its length, not parsed.
        assert_eq!(id(json!({"sourceId": "9".repeat(1 << 20)})), None);
    }
}
