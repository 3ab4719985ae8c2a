//! The Meta Conversions API event for one (dialog, level).

use crate::event_names::ActionSource;
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
    /// Limited Data Use; `None` sends `data_processing_options: []`.
    pub ldu: Option<Ldu>,
}

/// Meta's Limited Data Use codes (country 0 = geolocate, 1 = US; state 0 =
/// geolocate, 1000 = California). Business-messaging events carry no IP, so
/// both are always sent with LDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ldu {
    pub country: i32,
    pub state: i32,
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
    let source = ActionSource::for_click(f.ctwa_clid);
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
        "action_source": source.as_str(),
        "user_data": user_data,
        "custom_data": { "event_level": f.level.number() },
    });
    if source == ActionSource::BusinessMessaging {
        event["messaging_channel"] = json!("whatsapp");
    }
    // Always explicit: Meta has rejected requests that left it out (research §4.2).
    match f.ldu {
        None => event["data_processing_options"] = json!([]),
        Some(l) => {
            event["data_processing_options"] = json!(["LDU"]);
            event["data_processing_options_country"] = json!(l.country);
            event["data_processing_options_state"] = json!(l.state);
        }
    }
    Ok(event)
}

/// Meta rejects a whole request holding an event older than this.
pub const MAX_EVENT_AGE_SECS: i64 = 7 * 24 * 3600;

/// Whether an event may still be sent, and the `event_time` to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventTime {
    /// Send with this time (a future time is clamped to now: clock skew).
    Send(i64),
    /// Older than 7 days minus the safety margin: it would poison its batch.
    TooOld,
}

pub fn check_event_time(event_time: i64, now: i64, safety_margin_secs: i64) -> EventTime {
    if event_time < now - (MAX_EVENT_AGE_SECS - safety_margin_secs) {
        EventTime::TooOld
    } else {
        EventTime::Send(event_time.min(now))
    }
}

/// The request body for a batch of events (without the token: it is added
/// at send time and never logged).
pub fn build_request(
    events: Vec<Value>,
    test_event_code: Option<&str>,
    partner_agent: Option<&str>,
) -> Value {
    let mut body = json!({ "data": events });
    if let Some(code) = test_event_code.map(str::trim).filter(|c| !c.is_empty()) {
        body["test_event_code"] = json!(code);
    }
    if let Some(agent) = partner_agent.map(str::trim).filter(|a| !a.is_empty()) {
        body["partner_agent"] = json!(agent);
    }
    body
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256 of the token, keyed by the app secret.
pub fn appsecret_proof(app_secret: &str, access_token: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(app_secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length; unreachable
    };
    mac.update(access_token.as_bytes());
    hex::encode(mac.finalize().into_bytes())
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
            ldu: None,
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
                "custom_data": {"event_level": 1},
                "data_processing_options": []
            })
        );
        let mut with_ldu = facts(Some("c"), None);
        with_ldu.ldu = Some(Ldu {
            country: 1,
            state: 1000,
        });
        let e = build_event(&with_ldu).expect("sendable");
        assert_eq!(e["data_processing_options"], json!(["LDU"]));
        assert_eq!(
            (
                e["data_processing_options_country"].as_i64(),
                e["data_processing_options_state"].as_i64()
            ),
            (Some(1), Some(1000))
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
    fn old_events_are_refused_and_future_ones_clamped() {
        let now = 1_800_000_000;
        let margin = 3600;
        assert_eq!(
            check_event_time(now - 100, now, margin),
            EventTime::Send(now - 100)
        );
        assert_eq!(
            check_event_time(now + 500, now, margin),
            EventTime::Send(now)
        );
        assert_eq!(
            check_event_time(now - MAX_EVENT_AGE_SECS + margin + 1, now, margin),
            EventTime::Send(now - MAX_EVENT_AGE_SECS + margin + 1)
        );
        assert_eq!(
            check_event_time(now - MAX_EVENT_AGE_SECS + margin - 1, now, margin),
            EventTime::TooOld
        );
    }

    #[test]
    fn appsecret_proof_matches_metas_sdk() {
        assert_eq!(
            appsecret_proof("appsecret-123", "access-token-234"),
            "cdfcbc87edc90f8123cd3797a0d6f6f7eedf63d97038a15d1693d297f653d7f2"
        );
    }

    #[test]
    fn requests_carry_the_optional_top_level_fields() {
        assert_eq!(
            build_request(vec![json!(1)], None, None),
            json!({"data": [1]})
        );
        assert_eq!(
            build_request(vec![], Some("TEST123"), Some("acme")),
            json!({"data": [], "test_event_code": "TEST123", "partner_agent": "acme"})
        );
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
