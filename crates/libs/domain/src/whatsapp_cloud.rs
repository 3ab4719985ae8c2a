//! Meta's WhatsApp Cloud API webhooks (shared/research/evolution-api-and-whatsapp-webhooks.md §4):
//! the signature over the raw body, and the inbound messages of a
//! `whatsapp_business_account` payload with their click-to-WhatsApp referral.
//!
//! `entry[].id` is the WABA; `entry[].changes[]` with `field == "messages"`
//! carry `value.metadata.phone_number_id`, `value.contacts[]` (`wa_id`,
//! `user_id` — a business-scoped user id, present for users with a username,
//! whose phone may then be absent) and `value.messages[]`. Statuses and other
//! fields are not messages.

use crate::limits::{LimitExceeded, WEBHOOK_MAX_CHANGES, WEBHOOK_MAX_MESSAGES};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::Value;
use sha2::Sha256;

crate::text_enum! {
    /// How a WhatsApp number reaches us (`whatsapp_phone_numbers.channel`):
    /// an Evolution API instance, or a number on Meta's Cloud API.
    pub enum Channel {
        Evolution = "evolution",
        CloudApi = "cloud_api",
    }
}

/// The instance name a Cloud API number's dialogs are recorded under.
pub fn instance_name(phone_number_id: &str) -> String {
    format!("cloud-{phone_number_id}")
}

/// How long after the customer's last message a free-form reply may be
/// sent (Meta's customer service window); later only templates may.
pub const SERVICE_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Whether a free-form message may still go to a customer whose last
/// message was sent at `last_customer_message`.
pub fn within_service_window(
    last_customer_message: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    now - last_customer_message < SERVICE_WINDOW
}

/// Whom a reply goes to: the phone (`to`) when known, else the
/// business-scoped user id (`recipient`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Phone(String),
    UserId(String),
}

/// `POST /{version}/{phone_number_id}/messages`: a free-form text.
pub fn text_message_body(to: &Recipient, text: &str) -> Value {
    let mut body = serde_json::json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "type": "text",
        "text": { "preview_url": false, "body": text },
    });
    let (key, id) = match to {
        Recipient::Phone(p) => ("to", p),
        Recipient::UserId(u) => ("recipient", u),
    };
    body[key] = Value::String(id.clone());
    body
}

/// One inbound message, in the order of the payload. Keys in the order of
/// `capi parse-webhook whatsapp-cloud`'s contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CloudMessage {
    pub phone_number_id: String,
    /// `entry[].id`: the event's `whatsapp_business_account_id`.
    pub waba_id: String,
    /// The wamid: the key for deduplication (Meta retries for days).
    pub message_id: String,
    /// Digits only; `None` for a user known only by `user_id`.
    pub phone: Option<String>,
    /// The business-scoped user id (`contacts[].user_id`), when given.
    pub user_id: Option<String>,
    /// Always false: the `messages` field carries what customers send.
    pub from_me: bool,
    /// Text, a media caption, or a button/interactive reply's title;
    /// `None` for types without text (location, sticker, …).
    pub text: Option<String>,
    pub ctwa_clid: Option<String>,
    /// A referral from an ad, also without `ctwa_clid` (Status ad placements).
    pub from_ad: bool,
    /// Unix seconds.
    pub timestamp: i64,
    /// The ad's id (`referral.source_id` when `source_type` is `ad`).
    pub ad_id: Option<String>,
    /// `contacts[].profile.name`.
    #[serde(skip)]
    pub push_name: Option<String>,
    /// `messages[].type`: text, image, button, interactive, location, …
    #[serde(skip)]
    pub message_type: Option<String>,
    /// `{"referral": …}` as Meta sent it, for the dialog's ad context.
    #[serde(skip)]
    pub ad_context: Option<Value>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CloudParseError {
    #[error("not a WhatsApp Business Account webhook (object is {0:?})")]
    NotWhatsApp(String),
    #[error("{0} is missing or not {1}")]
    Field(String, &'static str),
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitExceeded),
}

/// `X-Hub-Signature-256: sha256=<hex>` over the exact bytes received, checked
/// in constant time against each configured app secret (one per Meta app).
pub fn signature_valid(app_secrets: &[&[u8]], body: &[u8], header: Option<&str>) -> bool {
    let Some(signature) = header
        .and_then(|h| h.trim().strip_prefix("sha256="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
    else {
        return false;
    };
    app_secrets.iter().any(|secret| {
        Hmac::<Sha256>::new_from_slice(secret).is_ok_and(|mut m| {
            m.update(body);
            m.verify_slice(&signature).is_ok()
        })
    })
}

/// The header value Meta would send for `body` signed with `app_secret`
/// (the sandbox and tests sign with it).
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    let hex_sig = Hmac::<Sha256>::new_from_slice(app_secret)
        .map(|mut m| {
            m.update(body);
            hex::encode(m.finalize().into_bytes())
        })
        .unwrap_or_default();
    format!("sha256={hex_sig}")
}

/// Every inbound message of every entry and change, in payload order.
pub fn parse(body: &Value) -> Result<Vec<CloudMessage>, CloudParseError> {
    let object = body.get("object").and_then(Value::as_str).unwrap_or("");
    if object != "whatsapp_business_account" {
        return Err(CloudParseError::NotWhatsApp(object.to_owned()));
    }
    let entries = body
        .get("entry")
        .and_then(Value::as_array)
        .ok_or_else(|| CloudParseError::Field("entry".into(), "an array"))?;
    let mut out = Vec::new();
    let mut changes_seen = 0;
    for (e, entry) in entries.iter().enumerate() {
        let waba_id = text_field(entry, "id")
            .ok_or_else(|| CloudParseError::Field(format!("entry[{e}].id"), "a string"))?;
        let changes = entry
            .get("changes")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        changes_seen += changes.len().max(1);
        if changes_seen > WEBHOOK_MAX_CHANGES {
            return Err(LimitExceeded::new("entries and changes", WEBHOOK_MAX_CHANGES).into());
        }
        for (c, change) in changes.iter().enumerate() {
            if change.get("field").and_then(Value::as_str) != Some("messages") {
                continue;
            }
            let value = &change["value"];
            let Some(messages) = value.get("messages").and_then(Value::as_array) else {
                continue; // statuses only
            };
            let at = format!("entry[{e}].changes[{c}].value");
            let phone_number_id = value
                .pointer("/metadata/phone_number_id")
                .and_then(as_text)
                .ok_or_else(|| {
                    CloudParseError::Field(format!("{at}.metadata.phone_number_id"), "a string")
                })?;
            let contacts = value
                .get("contacts")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            if out.len() + messages.len() > WEBHOOK_MAX_MESSAGES {
                return Err(LimitExceeded::new("messages", WEBHOOK_MAX_MESSAGES).into());
            }
            for (m, message) in messages.iter().enumerate() {
                let at = format!("{at}.messages[{m}]");
                out.push(parse_message(
                    message,
                    &at,
                    &phone_number_id,
                    &waba_id,
                    contacts,
                )?);
            }
        }
    }
    Ok(out)
}

fn parse_message(
    message: &Value,
    at: &str,
    phone_number_id: &str,
    waba_id: &str,
    contacts: &[Value],
) -> Result<CloudMessage, CloudParseError> {
    let message_id = text_field(message, "id")
        .ok_or_else(|| CloudParseError::Field(format!("{at}.id"), "a string"))?;
    let timestamp = message
        .get("timestamp")
        .and_then(|t| {
            t.as_i64()
                .or_else(|| t.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .ok_or_else(|| CloudParseError::Field(format!("{at}.timestamp"), "Unix seconds"))?;
    let from = text_field(message, "from");
    let user_id_of_message = text_field(message, "from_user_id");
    // The contact is the one whose wa_id (or user_id) is the sender; a
    // single contact is the sender when the message names no phone.
    let contact = contacts
        .iter()
        .find(|c| {
            from.is_some() && text_field(c, "wa_id") == from
                || user_id_of_message.is_some() && text_field(c, "user_id") == user_id_of_message
        })
        .or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        });
    let phone = from
        .or_else(|| contact.and_then(|c| text_field(c, "wa_id")))
        .map(|p| p.chars().filter(char::is_ascii_digit).collect::<String>())
        .filter(|p| !p.is_empty());
    let user_id = user_id_of_message.or_else(|| contact.and_then(|c| text_field(c, "user_id")));
    let referral = message.get("referral").filter(|r| r.is_object());
    let ctwa_clid = referral
        .and_then(|r| text_field(r, "ctwa_clid"))
        .filter(|c| !c.is_empty());
    let from_ad = ctwa_clid.is_some()
        || referral.is_some_and(|r| r.get("source_type").and_then(Value::as_str) == Some("ad"));
    Ok(CloudMessage {
        phone_number_id: phone_number_id.to_owned(),
        waba_id: waba_id.to_owned(),
        message_id,
        phone,
        user_id,
        from_me: false,
        text: message_text(message),
        ctwa_clid,
        from_ad,
        timestamp,
        ad_id: referral.and_then(|r| crate::ad_source::ad_id(r, &["source_id"], &["source_type"])),
        push_name: contact
            .and_then(|c| c.pointer("/profile/name"))
            .and_then(as_text),
        message_type: text_field(message, "type"),
        ad_context: referral.map(|r| serde_json::json!({ "referral": r })),
    })
}

/// Text, a media caption, or the title of a quick-reply button or an
/// interactive (button/list) reply.
fn message_text(message: &Value) -> Option<String> {
    const PLACES: &[&str] = &[
        "/text/body",
        "/image/caption",
        "/video/caption",
        "/document/caption",
        "/button/text",
        "/interactive/button_reply/title",
        "/interactive/list_reply/title",
    ];
    PLACES
        .iter()
        .find_map(|p| message.pointer(p).and_then(Value::as_str))
        .map(str::to_owned)
}

fn text_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(as_text)
}

/// A string, or a number Meta sometimes sends for an id.
fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/../../tools/capi/tests/fixtures/meta-cloud/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
        )
        .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn the_docs_referral_example_keeps_its_click_id_ad_and_waba() {
        let got = parse(&fixture(
            "meta-cloudapi_webhook_messages_text_ctwa-referral_META-DOCS-EXAMPLE.json",
        ));
        let m = &got.expect("parses")[0];
        assert_eq!(m.waba_id, "102290129340398");
        assert_eq!(m.phone_number_id, "1204727649384372");
        assert_eq!(
            m.message_id,
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUQ0N0VFMDA2MTQ0RkJFNkNDNAA="
        );
        assert_eq!(m.phone.as_deref(), Some("16505551234"));
        assert_eq!(m.user_id, None);
        assert_eq!(m.text.as_deref(), Some("Can I get more info about this?"));
        assert!(
            m.ctwa_clid
                .as_deref()
                .is_some_and(|c| c.starts_with("Aff-n8ZTODiE79d22"))
        );
        assert!(m.from_ad);
        assert_eq!(m.ad_id.as_deref(), Some("120226305854810726"));
        assert_eq!(m.timestamp, 1_750_275_992);
        assert_eq!(m.push_name.as_deref(), Some("Sheena Nelson"));
    }

    #[test]
    fn the_dashboard_test_payload_is_a_plain_message() {
        let got = parse(&fixture(
            "meta-cloudapi_webhook_messages_text_APP-DASHBOARD-TEST-payload.json",
        ))
        .expect("parses");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].waba_id, "0");
        assert_eq!(got[0].phone.as_deref(), Some("16315551181"));
        assert_eq!(got[0].ctwa_clid, None);
        assert!(!got[0].from_ad);
        assert_eq!(got[0].timestamp, 1_504_902_988);
    }

    fn payload(messages: Value, contacts: Value) -> Value {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "555", "changes": [
            {"field": "messages", "value": {"metadata": {"phone_number_id": "777"}, "contacts": contacts, "messages": messages}}
        ]}]})
    }

    #[test]
    fn a_user_known_by_user_id_alone_keeps_it_and_no_phone() {
        let body = payload(
            json!([{"id": "wamid.1", "timestamp": "10", "type": "text", "text": {"body": "hi"},
                    "referral": {"source_type": "ad", "source_id": "9"}}]),
            json!([{"profile": {"name": "A", "username": "a"}, "user_id": "US.134912"}]),
        );
        let m = &parse(&body).expect("parses")[0];
        assert_eq!(m.phone, None);
        assert_eq!(m.user_id.as_deref(), Some("US.134912"));
        // A Status ad placement: a referral without a click id is still an ad.
        assert!(m.from_ad);
        assert_eq!(m.ctwa_clid, None);
    }

    #[test]
    fn captions_and_replies_are_text_and_a_location_has_none() {
        let body = payload(
            json!([
                {"from": "+1 650", "id": "w1", "timestamp": 1, "type": "image", "image": {"caption": "this one"}},
                {"from": "1650", "id": "w2", "timestamp": 2, "type": "button", "button": {"text": "Book"}},
                {"from": "1650", "id": "w3", "timestamp": 3, "type": "interactive", "interactive": {"button_reply": {"title": "Yes"}}},
                {"from": "1650", "id": "w4", "timestamp": 4, "type": "location", "location": {"latitude": 1.0}}
            ]),
            json!([{"wa_id": "1650"}]),
        );
        let got = parse(&body).expect("parses");
        let texts: Vec<_> = got.iter().map(|m| m.text.as_deref()).collect();
        assert_eq!(
            texts,
            vec![Some("this one"), Some("Book"), Some("Yes"), None]
        );
        assert_eq!(got[0].phone.as_deref(), Some("1650"));
    }

    #[test]
    fn statuses_and_other_fields_are_no_messages_and_other_objects_are_refused() {
        let statuses = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [
            {"field": "messages", "value": {"metadata": {"phone_number_id": "2"}, "statuses": [{"id": "w", "status": "read"}]}},
            {"field": "account_update", "value": {}}
        ]}]});
        assert_eq!(parse(&statuses), Ok(vec![]));
        assert_eq!(
            parse(&json!({"object": "page"})),
            Err(CloudParseError::NotWhatsApp("page".into()))
        );
        let no_id = payload(json!([{"timestamp": "1"}]), json!([]));
        assert_eq!(
            parse(&no_id),
            Err(CloudParseError::Field(
                "entry[0].changes[0].value.messages[0].id".into(),
                "a string"
            ))
        );
    }

    #[test]
    fn signatures_hold_only_over_the_exact_bytes_with_a_configured_secret() {
        let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let header = sign(b"app-secret-2", body);
        let secrets: [&[u8]; 2] = [b"app-secret-1", b"app-secret-2"];
        assert!(signature_valid(&secrets, body, Some(&header)));
        assert!(!signature_valid(&secrets[..1], body, Some(&header)));
        let reserialised = br#"{"object": "whatsapp_business_account", "entry": []}"#;
        assert!(!signature_valid(&secrets, reserialised, Some(&header)));
        assert!(!signature_valid(&secrets, body, None));
        assert!(!signature_valid(
            &secrets,
            body,
            Some(header.trim_start_matches("sha256="))
        ));
        assert!(!signature_valid(&secrets, body, Some("sha256=zz")));
    }

    #[test]
    fn replies_go_to_the_phone_or_else_to_the_user_id() {
        let body = text_message_body(&Recipient::Phone("16505551234".into()), "Hi");
        assert_eq!(
            body,
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "16505551234",
                   "type": "text", "text": {"preview_url": false, "body": "Hi"}})
        );
        let body = text_message_body(&Recipient::UserId("US.13491208655302741918".into()), "Hi");
        assert_eq!(body["recipient"], "US.13491208655302741918");
        assert!(body.get("to").is_none());
    }

    #[test]
    fn the_window_closes_24_hours_after_the_customer_wrote() {
        let now = chrono::Utc::now();
        assert!(within_service_window(
            now - chrono::TimeDelta::hours(23),
            now
        ));
        assert!(!within_service_window(
            now - chrono::TimeDelta::hours(24),
            now
        ));
    }

    #[test]
    fn bodies_listing_more_than_the_limits_are_refused_whole() {
        let doc =
            fixture("meta-cloudapi_webhook_messages_text_ctwa-referral_META-DOCS-EXAMPLE.json");
        let message = doc["entry"][0]["changes"][0]["value"]["messages"][0].clone();
        let mut many = doc.clone();
        many["entry"][0]["changes"][0]["value"]["messages"] =
            Value::Array(vec![message; WEBHOOK_MAX_MESSAGES + 1]);
        assert_eq!(
            parse(&many).err(),
            Some(LimitExceeded::new("messages", WEBHOOK_MAX_MESSAGES).into())
        );
        let mut entries = doc.clone();
        entries["entry"] = Value::Array(vec![json!({"id": "1"}); 100_000]);
        assert_eq!(
            parse(&entries).err(),
            Some(LimitExceeded::new("entries and changes", WEBHOOK_MAX_CHANGES).into())
        );
    }
}
