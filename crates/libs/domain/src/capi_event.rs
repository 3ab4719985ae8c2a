//! The Meta Conversions API event for one (dialog, level).

use crate::event_names::{ActionSource, AllowedNames, NameRefused, default_event_name};
use crate::ids::{DialogId, EventId};
use crate::level::Level;
use crate::normalize::{NormalizeOptions, UserDataKey, hash_for_meta};
use serde_json::{Value, json};
use uuid::Uuid;

/// Namespace for deterministic event ids (UUID v5).
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6a1f_4c2e_9b3d_4e58_a7c1_2d9e_8f0b_3c41);

/// The same (dialog, level) always gets the same `event_id`.
pub fn event_id(dialog_id: DialogId, level: Level) -> EventId {
    Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        format!("{dialog_id}:{}", level.number()).as_bytes(),
    )
    .to_string()
    .into()
}

/// A purchase's event id: one per (dialog, order reference), so a second
/// paid order of the same customer is a second Purchase and a redelivered
/// one is the same event.
pub fn purchase_event_id(dialog_id: DialogId, order_ref: &str) -> EventId {
    Uuid::new_v5(
        &EVENT_ID_NAMESPACE,
        format!("{dialog_id}:purchase:{order_ref}").as_bytes(),
    )
    .to_string()
    .into()
}

/// `custom_data.event_level` of a Purchase (after the three levels).
pub const PURCHASE_EVENT_LEVEL: i16 = 4;
const _: () = assert!(PURCHASE_EVENT_LEVEL == 4, "Level::Purchase.number()");

/// What the event reports: a level the conversation reached, or a purchase.
#[derive(Debug, Clone, Copy)]
pub enum Conversion<'a> {
    Level(Level),
    Purchase(PurchaseFacts<'a>),
}

/// A paid order: its amount in `currency` (ISO 4217) and the CRM deal or
/// order it came from.
#[derive(Debug, Clone, Copy)]
pub struct PurchaseFacts<'a> {
    pub value: f64,
    pub currency: &'a str,
    pub order_ref: &'a str,
}

impl Conversion<'_> {
    /// The default event name on `source`.
    pub fn default_event_name(&self, source: ActionSource) -> &'static str {
        match self {
            Conversion::Level(l) => default_event_name(*l, source),
            Conversion::Purchase(_) => crate::event_names::PURCHASE_EVENT_NAME,
        }
    }
}

/// Everything the event is built from.
#[derive(Debug, Clone)]
pub struct EventFacts<'a> {
    pub dialog_id: DialogId,
    pub conversion: Conversion<'a>,
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

/// Why an event is not sent: each is something Meta would refuse (or could
/// not match), so it is recorded as skipped with [`NotSendable::reason`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NotSendable {
    #[error("the dialog has neither a click id nor a phone to match on")]
    NoUserData,
    #[error(transparent)]
    EventName(#[from] NameRefused),
    #[error(
        "an event with a click id needs the WhatsApp Business Account id (capi direction set … --waba)"
    )]
    NoWaba,
    #[error("a Purchase needs {0}")]
    Purchase(String),
}

impl NotSendable {
    /// The audit log's `reason`.
    pub fn reason(&self) -> &'static str {
        match self {
            NotSendable::NoUserData => "no_user_data",
            NotSendable::EventName(_) => "event_name_not_allowed",
            NotSendable::NoWaba => "no_waba",
            NotSendable::Purchase(_) => "invalid_purchase",
        }
    }
}

/// A purchase's value as Meta takes it: a finite amount ≥ 0 and an ISO
/// 4217 code (returned upper case).
pub fn check_purchase(value: f64, currency: &str) -> Result<String, NotSendable> {
    if !value.is_finite() || value < 0.0 {
        return Err(NotSendable::Purchase(format!(
            "a value of 0 or more, got {value}"
        )));
    }
    let code = currency.trim().to_ascii_uppercase();
    if iso_currency::Currency::from_code(&code).is_none() {
        return Err(NotSendable::Purchase(format!(
            "an ISO 4217 currency code, got {currency:?}"
        )));
    }
    Ok(code)
}

/// Builds one element of the request's `data` array, or says why Meta
/// would refuse it: the sender and `capi event preview` both come here.
///
/// With a `ctwa_clid` the event is a business-messaging event
/// (`action_source: business_messaging`, `messaging_channel: whatsapp`, the
/// click id unhashed, the WABA id; the name on `allowed`); without one the
/// spec falls back to `action_source: other`.
pub fn build_event(f: &EventFacts<'_>, allowed: &AllowedNames) -> Result<Value, NotSendable> {
    let source = ActionSource::for_click(f.ctwa_clid);
    allowed.check(f.event_name, source)?;
    let waba = f.waba_id.map(str::trim).filter(|w| !w.is_empty());
    if source == ActionSource::BusinessMessaging && waba.is_none() {
        return Err(NotSendable::NoWaba);
    }
    let (event_id, custom_data) = match f.conversion {
        Conversion::Level(level) => (
            event_id(f.dialog_id, level),
            json!({ "event_level": level.number() }),
        ),
        Conversion::Purchase(p) => {
            let currency = check_purchase(p.value, p.currency)?;
            (
                purchase_event_id(f.dialog_id, p.order_ref),
                json!({ "event_level": PURCHASE_EVENT_LEVEL, "value": p.value, "currency": currency }),
            )
        }
    };
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
    if let Some(waba) = waba {
        user_data.insert("whatsapp_business_account_id".into(), json!(waba));
    }
    let mut event = json!({
        "event_name": f.event_name,
        "event_time": f.event_time,
        "event_id": event_id,
        "event_source_url": "https://wa.me/",
        "action_source": source.as_str(),
        "user_data": user_data,
        "custom_data": custom_data,
    });
    if source == ActionSource::BusinessMessaging {
        event["messaging_channel"] = json!("whatsapp");
    }
    // Always explicit: Meta has rejected requests that left it out (subcode
    // 2804030 "Limited Data Use Selection Required",
    // github.com/facebookarchive/offline-conversion-file-uploader/issues/26).
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

    fn allowed() -> AllowedNames {
        AllowedNames::default()
    }

    #[test]
    fn what_meta_would_refuse_is_not_built() {
        let reason = |f: &EventFacts<'_>| {
            build_event(f, &allowed())
                .map(|_| ())
                .map_err(|e| e.reason())
        };
        let mut lead = facts(Some("c"), Some("1"));
        lead.event_name = "Lead";
        assert_eq!(reason(&lead), Err("event_name_not_allowed"));
        assert_eq!(reason(&facts(Some("c"), None)), Err("no_waba"));
        let purchase = |value: f64, currency: &'static str| EventFacts {
            conversion: Conversion::Purchase(PurchaseFacts {
                value,
                currency,
                order_ref: "deal-7",
            }),
            event_name: "Purchase",
            ..facts(Some("c"), Some("1"))
        };
        assert_eq!(reason(&purchase(1.0, "RUBLES")), Err("invalid_purchase"));
        assert_eq!(reason(&purchase(f64::NAN, "RUB")), Err("invalid_purchase"));
        assert_eq!(reason(&purchase(-1.0, "RUB")), Err("invalid_purchase"));
        let e = build_event(&purchase(1500.5, "usd"), &allowed()).unwrap();
        assert_eq!(
            e["custom_data"],
            json!({"event_level": 4, "value": 1500.5, "currency": "USD"})
        );
        assert_eq!(
            e["event_id"],
            purchase_event_id(DialogId::from(Uuid::nil()), "deal-7").as_str()
        );
        assert_ne!(
            purchase_event_id(DialogId::from(Uuid::nil()), "deal-7"),
            purchase_event_id(DialogId::from(Uuid::nil()), "deal-8")
        );
    }

    fn facts<'a>(clid: Option<&'a str>, waba: Option<&'a str>) -> EventFacts<'a> {
        EventFacts {
            dialog_id: DialogId::from(Uuid::nil()),
            conversion: Conversion::Level(Level::Interest),
            event_name: if clid.is_some() {
                "LeadSubmitted"
            } else {
                "Lead"
            },
            event_time: 1_703_520_000,
            phone: Some("5511999999999"),
            ctwa_clid: clid,
            waba_id: waba,
            ldu: None,
        }
    }

    #[test]
    fn business_messaging_event_matches_the_spec_example() {
        let e = build_event(
            &facts(Some("click-id-from-ad"), Some("1029384756")),
            &allowed(),
        )
        .expect("sendable");
        assert_eq!(
            e,
            json!({
                "event_name": "LeadSubmitted",
                "event_time": 1_703_520_000,
                "event_id": event_id(DialogId::from(Uuid::nil()), Level::Interest),
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
        let mut with_ldu = facts(Some("c"), Some("1"));
        with_ldu.ldu = Some(Ldu {
            country: 1,
            state: 1000,
        });
        let e = build_event(&with_ldu, &allowed()).expect("sendable");
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
        let e = build_event(&facts(None, None), &allowed()).expect("sendable");
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
        let d = DialogId::from(Uuid::new_v4());
        assert_eq!(event_id(d, Level::Interest), event_id(d, Level::Interest));
        assert_ne!(event_id(d, Level::Interest), event_id(d, Level::Qualified));
    }

    #[test]
    fn nothing_to_match_on_is_not_sendable() {
        let mut f = facts(None, None);
        f.phone = None;
        assert_eq!(build_event(&f, &allowed()), Err(NotSendable::NoUserData));
    }
}
