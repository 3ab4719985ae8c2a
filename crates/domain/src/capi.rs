//! The Meta Conversions API event for one (dialog, level).

use crate::level::Level;
use crate::normalize::{NormalizeOptions, UserDataKey, hash_for_meta};
use serde_json::{Value, json};
use uuid::Uuid;

/// Namespace for deterministic event ids (UUID v5).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_4c2e_9b3d_4e58_a7c1_2d9e_8f0b_3c41);

/// The same (dialog, level) always gets the same `event_id`.
pub fn event_id(dialog_id: Uuid, level: Level) -> String {
    Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        format!("{dialog_id}:{}", level.number()).as_bytes(),
    )
    .to_string()
}

/// Everything the event is built from.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    pub dialog_id: Uuid,
    pub level: Level,
    pub event_name: &'a str,
    /// When the level was reached, unix seconds.
    pub event_time: i64,
    /// The contact's phone, digits with country code.
    pub phone: Option<&'a str>,
    pub ctwa_clid: Option<&'a str>,
    pub waba_id: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotSendable {
    #[error("the dialog has neither a click id nor a phone to match on")]
    NoUserData,
}

/// Builds one element of the request's `data` array.
///
/// With a `ctwa_clid` the event is a business-messaging event
/// (`action_source: business_messaging`, `messaging_channel: whatsapp`, the
/// click id unhashed); without one the spec falls back to `action_source: other`.
pub fn build_event(f: &EventFacts<'_>) -> Result<Value, NotSendable> {
    let mut user_data = serde_json::Map::new();
    let ph = f
        .phone
        .and_then(|p| hash_for_meta(UserDataKey::Phone, p, &NormalizeOptions::default()));
    if let Some(ph) = ph {
        user_data.insert("ph".into(), json!([ph]));
    }
    let clid = f.ctwa_clid.map(str::trim).filter(|c| !c.is_empty());
    if let Some(clid) = clid {
        user_data.insert("ctwa_clid".into(), json!(clid));
    }
    if user_data.is_empty() {
        return Err(NotSendable::NoUserData);
    }
    if let Some(waba) = f.waba_id.map(str::trim).filter(|w| !w.is_empty()) {
        user_data.insert("whatsapp_business_account_id".into(), json!(waba));
    }
    let mut event = json!({
        "event_name": f.event_name,
        "event_time": f.event_time,
        "event_id": event_id(f.dialog_id, f.level),
        "event_source_url": "https://wa.me/",
        "action_source": if clid.is_some() { "business_messaging" } else { "other" },
        "user_data": user_data,
        "custom_data": { "event_level": f.level.number() },
    });
    if clid.is_some() {
        event["messaging_channel"] = json!("whatsapp");
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::sha256_hex;

    fn facts<'a>(clid: Option<&'a str>, waba: Option<&'a str>) -> EventFacts<'a> {
        EventFacts {
            dialog_id: Uuid::nil(),
            level: Level::Interest,
            event_name: "Lead",
            event_time: 1_703_520_000,
            phone: Some("5511999999999"),
            ctwa_clid: clid,
            waba_id: waba,
        }
    }

    #[test]
    fn business_messaging_event_matches_the_spec_example() {
        let e =
            build_event(&facts(Some("click-id-from-ad"), Some("1029384756"))).expect("sendable");
        assert_eq!(
            e,
            json!({
                "event_name": "Lead",
                "event_time": 1_703_520_000,
                "event_id": event_id(Uuid::nil(), Level::Interest),
                "event_source_url": "https://wa.me/",
                "action_source": "business_messaging",
                "messaging_channel": "whatsapp",
                "user_data": {
                    "ph": [sha256_hex("5511999999999")],
                    "ctwa_clid": "click-id-from-ad",
                    "whatsapp_business_account_id": "1029384756"
                },
                "custom_data": {"event_level": 1}
            })
        );
    }

    #[test]
    fn without_click_id_the_event_falls_back_to_other() {
        let e = build_event(&facts(None, None)).expect("sendable");
        assert_eq!(e["action_source"], "other");
        assert!(e.get("messaging_channel").is_none());
        assert!(e["user_data"].get("ctwa_clid").is_none());
    }

    #[test]
    fn event_ids_are_stable_per_dialog_and_level() {
        let d = Uuid::new_v4();
        assert_eq!(event_id(d, Level::Interest), event_id(d, Level::Interest));
        assert_ne!(event_id(d, Level::Interest), event_id(d, Level::Qualified));
    }

    #[test]
    fn nothing_to_match_on_is_not_sendable() {
        let mut f = facts(None, None);
        f.phone = None;
        assert_eq!(build_event(&f), Err(NotSendable::NoUserData));
    }
}
