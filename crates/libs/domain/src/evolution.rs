//! Evolution API (Baileys) `messages.upsert` webhooks, parsed loosely.
//!
//! Evolution's payload changed shape across versions (see
//! `shared/research/evolution-api-and-whatsapp-webhooks.md`), so the body is
//! read as a `serde_json::Value` and only the needed fields are extracted,
//! each from every place a version is known to put it.

use crate::limits::{LimitExceeded, WEBHOOK_MAX_MESSAGES};
use serde::Serialize;
use serde_json::{Map, Value};

/// The event name as Evolution writes it in the payload (`messages.upsert`),
/// whatever spelling the sender used (`MESSAGES_UPSERT`, `messages-upsert`).
pub fn event_name(body: &Value) -> Option<String> {
    let raw = body.get("event")?.as_str()?;
    Some(raw.trim().to_ascii_lowercase().replace(['_', '-'], "."))
}

pub const MESSAGES_UPSERT: &str = "messages.upsert";

/// One WhatsApp message from a webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboundMessage {
    /// The instance named in the body (the URL's instance is authoritative).
    pub instance: Option<String>,
    pub message_id: String,
    /// Sent by the business (phone or WhatsApp Web), not the customer.
    pub from_me: bool,
    /// The contact's phone: digits with country code, no `+`.
    pub phone: Option<String>,
    /// The contact's `...@lid` privacy id, when WhatsApp addressed it so.
    pub lid: Option<String>,
    pub text: Option<String>,
    /// `messageTimestamp`, unix seconds.
    pub timestamp: Option<i64>,
    pub ctwa_clid: Option<String>,
    /// The ad the conversation started from (`externalAdReply.sourceId`).
    pub ad_id: Option<String>,
    /// The message carries Click-to-WhatsApp ad markers (even without a click id).
    pub from_ad: bool,
    /// The ad context as received (without thumbnails), for auditing attribution.
    #[serde(skip)]
    pub ad_context: Option<Value>,
    #[serde(skip)]
    pub push_name: Option<String>,
    /// `key.remoteJid` as received.
    #[serde(skip)]
    pub remote_jid: String,
    #[serde(skip)]
    pub message_type: Option<String>,
}

impl InboundMessage {
    /// What identifies the contact within an instance: the phone when known,
    /// otherwise the LID, otherwise the JID as received.
    pub fn contact_key(&self) -> &str {
        self.phone
            .as_deref()
            .or(self.lid.as_deref())
            .unwrap_or(&self.remote_jid)
    }
}

/// Messages the pipeline never treats as a customer conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IgnoreReason {
    Group,
    Broadcast,
    Status,
    Newsletter,
}

impl IgnoreReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IgnoreReason::Group => "group",
            IgnoreReason::Broadcast => "broadcast",
            IgnoreReason::Status => "status",
            IgnoreReason::Newsletter => "newsletter",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Message(Box<InboundMessage>),
    Ignored(IgnoreReason),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the webhook body is not a JSON object")]
    NotAnObject,
    #[error("missing or invalid field `{0}`")]
    Missing(&'static str),
    #[error("event `{0}` is not messages.upsert")]
    OtherEvent(String),
    #[error("the contact has neither a phone nor a LID in `data.key`")]
    NoContact,
    #[error(transparent)]
    Limit(#[from] crate::limits::LimitExceeded),
}

/// Parses a `messages.upsert` webhook into its messages (Evolution sends
/// one, but a `data` array is accepted too).
pub fn parse_messages_upsert(body: &Value) -> Result<Vec<Parsed>, ParseError> {
    let obj = body.as_object().ok_or(ParseError::NotAnObject)?;
    match event_name(body) {
        Some(e) if e == MESSAGES_UPSERT => {}
        Some(e) => return Err(ParseError::OtherEvent(e)),
        None => return Err(ParseError::Missing("event")),
    }
    let instance = obj
        .get("instance")
        .and_then(Value::as_str)
        .map(str::to_owned);
    match obj.get("data") {
        Some(Value::Array(items)) if items.len() > WEBHOOK_MAX_MESSAGES => {
            Err(LimitExceeded::new("messages in data[]", WEBHOOK_MAX_MESSAGES).into())
        }
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|d| parse_data(d, instance.clone()))
            .collect(),
        Some(d @ Value::Object(_)) => Ok(vec![parse_data(d, instance)?]),
        _ => Err(ParseError::Missing("data")),
    }
}

fn parse_data(data: &Value, instance: Option<String>) -> Result<Parsed, ParseError> {
    let key = data
        .get("key")
        .and_then(Value::as_object)
        .ok_or(ParseError::Missing("data.key"))?;
    let remote_jid = key
        .get("remoteJid")
        .and_then(Value::as_str)
        .ok_or(ParseError::Missing("data.key.remoteJid"))?;
    if let Some(reason) = ignore_reason(remote_jid) {
        return Ok(Parsed::Ignored(reason));
    }
    let message_id = key
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
        .ok_or(ParseError::Missing("data.key.id"))?
        .to_owned();
    let from_me = match key.get("fromMe") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) if s == "true" || s == "false" => s == "true",
        Some(_) => return Err(ParseError::Missing("data.key.fromMe")),
    };
    let (phone, lid) = contact(key);
    if phone.is_none() && lid.is_none() && !is_user_jid(remote_jid) {
        return Err(ParseError::NoContact);
    }
    let message = data.get("message").and_then(Value::as_object);
    let ad = AdInfo::find(data, message);
    Ok(Parsed::Message(Box::new(InboundMessage {
        instance,
        message_id,
        from_me,
        phone,
        lid,
        text: message.and_then(text),
        timestamp: data.get("messageTimestamp").and_then(unix_seconds),
        ctwa_clid: ad.ctwa_clid,
        ad_id: ad.ad_id,
        from_ad: ad.from_ad,
        ad_context: ad.context,
        remote_jid: remote_jid.to_owned(),
        push_name: data
            .get("pushName")
            .and_then(Value::as_str)
            .map(str::to_owned),
        message_type: data
            .get("messageType")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })))
}

fn ignore_reason(jid: &str) -> Option<IgnoreReason> {
    if jid.ends_with("@g.us") {
        Some(IgnoreReason::Group)
    } else if jid == "status@broadcast" {
        Some(IgnoreReason::Status)
    } else if jid.ends_with("@broadcast") {
        Some(IgnoreReason::Broadcast)
    } else if jid.ends_with("@newsletter") {
        Some(IgnoreReason::Newsletter)
    } else {
        None
    }
}

/// `user@server` without a device suffix (`5511...:12@s.whatsapp.net`).
fn split_jid(jid: &str) -> (&str, Option<&str>) {
    let (user, server) = match jid.split_once('@') {
        Some((u, s)) => (u, Some(s)),
        None => (jid, None),
    };
    (user.split(':').next().unwrap_or(user), server)
}

fn is_user_jid(jid: &str) -> bool {
    matches!(split_jid(jid).1, Some("s.whatsapp.net" | "c.us" | "lid"))
}

/// Digits-only phone from a phone-number JID (or bare digits).
fn phone_of(jid: &str) -> Option<String> {
    let (user, server) = split_jid(jid);
    let is_pn_server = matches!(server, None | Some("s.whatsapp.net" | "c.us"));
    let user = user.trim_start_matches('+');
    (is_pn_server && !user.is_empty() && user.bytes().all(|b| b.is_ascii_digit()))
        .then(|| user.to_owned())
}

fn lid_of(jid: &str) -> Option<String> {
    let (user, server) = split_jid(jid);
    (server == Some("lid") && !user.is_empty()).then(|| format!("{user}@lid"))
}

/// Phone and LID from every key field a version puts them in: `remoteJid`
/// may be either; `remoteJidAlt` is the other one (PN in 2.3.x, LID in
/// 2.4.0-rc); `senderPn`/`previousRemoteJid`/`senderLid` come from older forks.
fn contact(key: &Map<String, Value>) -> (Option<String>, Option<String>) {
    let fields = [
        "remoteJid",
        "remoteJidAlt",
        "senderPn",
        "previousRemoteJid",
        "senderLid",
    ];
    let jids: Vec<&str> = fields
        .iter()
        .filter_map(|f| key.get(*f)?.as_str())
        .collect();
    let phone = jids.iter().find_map(|j| phone_of(j));
    let lid = jids.iter().find_map(|j| lid_of(j));
    (phone, lid)
}

fn non_empty(v: Option<&Value>) -> Option<String> {
    let s = v?.as_str()?.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// The message text, from the first place any version puts it.
fn text(message: &Map<String, Value>) -> Option<String> {
    let at = |path: &[&str]| {
        let mut v = message.get(path[0])?;
        for p in &path[1..] {
            v = v.get(p)?;
        }
        non_empty(Some(v))
    };
    const PATHS: &[&[&str]] = &[
        &["conversation"],
        &["extendedTextMessage", "text"],
        &["imageMessage", "caption"],
        &["videoMessage", "caption"],
        &["documentMessage", "caption"],
        &[
            "documentWithCaptionMessage",
            "message",
            "documentMessage",
            "caption",
        ],
        &["buttonsResponseMessage", "selectedDisplayText"],
        &["listResponseMessage", "title"],
        &["templateButtonReplyMessage", "selectedDisplayText"],
        &["interactiveResponseMessage", "body", "text"],
    ];
    PATHS.iter().find_map(|p| at(p))
}

/// Unix seconds from a number, a decimal string, or a protobuf Long `{low, high}`.
fn unix_seconds(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(o) => {
            let low = o.get("low")?.as_i64()?;
            let high = o.get("high").and_then(Value::as_i64).unwrap_or(0);
            Some((high << 32) | (low & 0xffff_ffff))
        }
        _ => None,
    }
    .filter(|t| *t > 0)
}

#[derive(Default)]
struct AdInfo {
    ctwa_clid: Option<String>,
    ad_id: Option<String>,
    from_ad: bool,
    context: Option<Value>,
}

impl AdInfo {
    /// Looks through every `contextInfo` a version may use: the envelope's
    /// `data.contextInfo` (v1.7–2.3), `data.message.contextInfo`, and each
    /// content message's own (`extendedTextMessage`, media, wrapped documents).
    fn find(data: &Value, message: Option<&Map<String, Value>>) -> AdInfo {
        let mut contexts: Vec<&Value> = Vec::new();
        contexts.extend(data.get("contextInfo"));
        if let Some(m) = message {
            contexts.extend(m.get("contextInfo"));
            for content in m.values() {
                contexts.extend(content.get("contextInfo"));
                contexts.extend(content.pointer("/message/documentMessage/contextInfo"));
            }
        }
        let mut info = AdInfo::default();
        for ctx in contexts.into_iter().filter(|c| c.is_object()) {
            let reply = ctx.get("externalAdReply").filter(|r| r.is_object());
            let clid = reply.and_then(|r| {
                ["ctwaClid", "ctwa_clid", "ctwaCLID"]
                    .iter()
                    .find_map(|k| non_empty(r.get(*k)))
            });
            // WhatsApp attaches `externalAdReply` to the first message after an
            // ad click; some ads lose every id in it (issue #1252), so its
            // presence alone marks the message as from an ad.
            let ad_reply = reply.is_some();
            let marker = non_empty(ctx.get("conversionSource"))
                .is_some_and(|s| s.eq_ignore_ascii_case("FB_Ads"))
                || non_empty(ctx.get("entryPointConversionSource"))
                    .is_some_and(|s| s.to_ascii_lowercase().contains("ctwa"));
            if clid.is_some() || ad_reply || marker {
                info.from_ad = true;
                if info.context.is_none() {
                    info.context = Some(ad_context(ctx));
                }
                if info.ctwa_clid.is_none() {
                    info.ctwa_clid = clid;
                }
                if info.ad_id.is_none() {
                    info.ad_id = reply.and_then(|r| {
                        crate::ad_source::ad_id(r, &["sourceId", "sourceID"], &["sourceType"])
                    });
                }
            }
        }
        info
    }
}

/// The ad-related part of a `contextInfo`, without bulky thumbnails.
fn ad_context(ctx: &Value) -> Value {
    let mut out = Map::new();
    for k in [
        "externalAdReply",
        "conversionSource",
        "entryPointConversionSource",
        "entryPointConversionApp",
    ] {
        if let Some(v) = ctx.get(k) {
            let mut v = v.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("thumbnail");
            }
            out.insert(k.to_owned(), v);
        }
    }
    Value::Object(out)
}

crate::text_enum! {
    /// Which Evolution API an instance runs (`whatsapp_phone_numbers.evolution_api_version`):
    /// the sendText body differs.
    pub enum ApiVersion {
        V1 = "v1",
        V2 = "v2",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(body: Value) -> InboundMessage {
        match parse_messages_upsert(&body).expect("parses").remove(0) {
            Parsed::Message(m) => *m,
            Parsed::Ignored(r) => panic!("ignored: {r:?}"),
        }
    }

    fn upsert(data: Value) -> Value {
        json!({"event": "messages.upsert", "instance": "inst", "data": data})
    }

    #[test]
    fn click_id_inside_a_v1_content_message_is_found() {
        let m = one(upsert(json!({
            "key": {"remoteJid": "5511999999999@s.whatsapp.net", "fromMe": false, "id": "A1"},
            "message": {"extendedTextMessage": {"text": "hi", "contextInfo": {
                "externalAdReply": {"sourceID": "123", "ctwaClid": "clid-1", "thumbnail": "xx"}}}},
            "messageTimestamp": "1717607420"
        })));
        assert_eq!(m.text.as_deref(), Some("hi"));
        assert_eq!(m.ctwa_clid.as_deref(), Some("clid-1"));
        assert_eq!(m.ad_id.as_deref(), Some("123"));
        assert!(m.from_ad);
        assert_eq!(m.timestamp, Some(1717607420));
        assert!(
            m.ad_context
                .expect("context")
                .pointer("/externalAdReply/thumbnail")
                .is_none()
        );
    }

    #[test]
    fn ad_markers_without_click_id_mark_the_message_as_from_an_ad() {
        let m = one(upsert(json!({
            "key": {"remoteJid": "5511999999999@s.whatsapp.net", "fromMe": false, "id": "A2"},
            "message": {"imageMessage": {"caption": "photo", "contextInfo": {"conversionSource": "FB_Ads"}}},
            "messageTimestamp": {"low": 1717607420, "high": 0}
        })));
        assert_eq!(m.text.as_deref(), Some("photo"));
        assert_eq!(m.ctwa_clid, None);
        assert!(m.from_ad);
        assert_eq!(m.timestamp, Some(1717607420));
    }

    #[test]
    fn lid_contacts_take_the_phone_from_the_alt_fields() {
        let m = one(upsert(json!({
            "key": {"remoteJid": "66417458159826@lid", "senderPn": "5511999999999@s.whatsapp.net", "id": "A3"},
            "message": {"conversation": "oi"}
        })));
        assert_eq!(m.phone.as_deref(), Some("5511999999999"));
        assert_eq!(m.lid.as_deref(), Some("66417458159826@lid"));
        // 2.4.0-rc: the phone in remoteJid, the LID in remoteJidAlt.
        let m = one(upsert(json!({
            "key": {"remoteJid": "5511999999999@s.whatsapp.net", "remoteJidAlt": "66417458159826@lid", "id": "A4"},
            "message": {"conversation": "oi"}
        })));
        assert_eq!(
            (m.phone.as_deref(), m.lid.as_deref()),
            (Some("5511999999999"), Some("66417458159826@lid"))
        );
        // LID only: the phone stays unknown.
        let m = one(upsert(
            json!({"key": {"remoteJid": "66417458159826@lid", "id": "A5"}, "message": {}}),
        ));
        assert_eq!(
            (m.phone, m.lid.as_deref(), m.text),
            (None, Some("66417458159826@lid"), None)
        );
    }

    #[test]
    fn groups_broadcasts_and_status_are_ignored() {
        for (jid, reason) in [
            ("120363025246125888@g.us", IgnoreReason::Group),
            ("status@broadcast", IgnoreReason::Status),
            ("12345@broadcast", IgnoreReason::Broadcast),
        ] {
            let parsed =
                parse_messages_upsert(&upsert(json!({"key": {"remoteJid": jid, "id": "X"}})))
                    .expect("parses");
            assert_eq!(parsed, vec![Parsed::Ignored(reason)]);
        }
    }

    #[test]
    fn malformed_bodies_name_what_is_missing() {
        assert_eq!(
            parse_messages_upsert(&json!([1])),
            Err(ParseError::NotAnObject)
        );
        assert_eq!(
            parse_messages_upsert(&json!({"event": "connection.update", "data": {}})),
            Err(ParseError::OtherEvent("connection.update".into()))
        );
        assert_eq!(
            parse_messages_upsert(&upsert(json!({"key": {"remoteJid": "1@s.whatsapp.net"}}))),
            Err(ParseError::Missing("data.key.id"))
        );
        assert_eq!(
            parse_messages_upsert(&upsert(json!("x"))),
            Err(ParseError::Missing("data"))
        );
        assert_eq!(
            event_name(&json!({"event": "MESSAGES_UPSERT"})).as_deref(),
            Some(MESSAGES_UPSERT)
        );
    }

    #[test]
    fn a_webhook_of_more_messages_than_the_limit_is_refused_whole() {
        let message = json!({"key": {"remoteJid": "5511999990000@s.whatsapp.net", "id": "m", "fromMe": false},
                             "message": {"conversation": "hi"}});
        let at_limit = upsert(Value::Array(vec![message.clone(); WEBHOOK_MAX_MESSAGES]));
        assert_eq!(
            parse_messages_upsert(&at_limit).map(|p| p.len()),
            Ok(WEBHOOK_MAX_MESSAGES)
        );
        let over = upsert(Value::Array(vec![message; WEBHOOK_MAX_MESSAGES + 1]));
        assert_eq!(
            parse_messages_upsert(&over),
            Err(LimitExceeded::new("messages in data[]", WEBHOOK_MAX_MESSAGES).into())
        );
    }
}
