//! Meta's checks on a `/events` request, as documented (developers.facebook.com:
//! conversions-api/business-messaging, conversions-api/using-the-api, graph-api/guides/error-handling):
//! an invalid event rejects the whole request.

use domain::event_names::BUSINESS_MESSAGING_EVENT_NAMES;
use serde_json::{Value, json};

pub const MAX_EVENTS: usize = 1000;
const MAX_AGE_SECS: i64 = 7 * 24 * 3600;
const ACTION_SOURCES: &[&str] = &[
    "email",
    "website",
    "app",
    "phone_call",
    "chat",
    "physical_store",
    "system_generated",
    "business_messaging",
    "other",
];

/// A Graph API error: HTTP status and the `{"error": ...}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphError {
    pub status: u16,
    pub body: Value,
}

pub fn graph_error(
    status: u16,
    code: i64,
    subcode: Option<i64>,
    message: &str,
    transient: bool,
) -> GraphError {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "is_transient": transient,
        "fbtrace_id": format!("Sbx{}", uuid::Uuid::new_v4().simple()),
    });
    if let Some(s) = subcode {
        error["error_subcode"] = json!(s);
    }
    GraphError {
        status,
        body: json!({ "error": error }),
    }
}

/// Meta's `error_user_title` for the subcodes the sandbox answers with
/// (the Conversions API's parameters and the business-messaging guide, developers.facebook.com).
fn user_title(subcode: i64) -> &'static str {
    match subcode {
        2804003 => "Event Timestamp Too Old",
        2804009 => "Missing Value for Purchase Event",
        2804019 => "Invalid Parameter",
        2804048 => "Missing Business Messaging Parameter",
        2804066 => "Messaging Event Invalid Event Type",
        _ => "Invalid Parameter",
    }
}

fn invalid(subcode: i64, message: String) -> GraphError {
    let mut e = graph_error(
        400,
        100,
        Some(subcode),
        &format!("Invalid parameter: {message}"),
        false,
    );
    e.body["error"]["error_user_title"] = json!(user_title(subcode));
    e.body["error"]["error_user_msg"] = json!(message);
    e
}

/// Checks a request; `Ok` holds the events to accept.
pub fn validate(body: &Value, now: i64) -> Result<Vec<Value>, GraphError> {
    let token = body
        .get("access_token")
        .and_then(Value::as_str)
        .unwrap_or("");
    if token.trim().is_empty() {
        return Err(graph_error(
            400,
            190,
            None,
            "An access token is required to request this resource.",
            false,
        ));
    }
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return Err(invalid(
            2804001,
            "the parameter data is required and must be an array".into(),
        ));
    };
    if data.is_empty() || data.len() > MAX_EVENTS {
        return Err(invalid(
            2804002,
            format!(
                "data must hold 1 to {MAX_EVENTS} events, got {}",
                data.len()
            ),
        ));
    }
    for (i, e) in data.iter().enumerate() {
        check_event(e, now).map_err(|m| invalid(m.0, format!("event {i}: {}", m.1)))?;
    }
    Ok(data.clone())
}

fn check_event(e: &Value, now: i64) -> Result<(), (i64, String)> {
    let text = |k: &str| {
        e.get(k)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    if text("event_name").is_none() {
        return Err((2804007, "event_name is required".into()));
    }
    let Some(time) = e.get("event_time").and_then(Value::as_i64) else {
        return Err((2804007, "event_time is required (unix seconds)".into()));
    };
    if time < now - MAX_AGE_SECS {
        return Err((
            2804003,
            "event_time is more than 7 days in the past (Event Timestamp Too Old)".into(),
        ));
    }
    let Some(source) = text("action_source") else {
        return Err((2804016, "action_source is required".into()));
    };
    if !ACTION_SOURCES.contains(&source) {
        return Err((
            2804016,
            format!("action_source '{source}' is not supported"),
        ));
    }
    let Some(user_data) = e
        .get("user_data")
        .and_then(Value::as_object)
        .filter(|u| !u.is_empty())
    else {
        return Err((2804017, "user_data is required".into()));
    };
    if source == "business_messaging" {
        let channel = text("messaging_channel");
        if !matches!(channel, Some("whatsapp" | "messenger" | "instagram")) {
            return Err((
                2804048,
                "business_messaging events need messaging_channel".into(),
            ));
        }
        let missing = |key: &str| {
            user_data
                .get(key)
                .and_then(Value::as_str)
                .is_none_or(|v| v.trim().is_empty())
        };
        if channel == Some("whatsapp") && missing("ctwa_clid") {
            return Err((
                2804048,
                "ctwa_clid is a required field for business messaging on WhatsApp".into(),
            ));
        }
        if channel == Some("whatsapp") && missing("whatsapp_business_account_id") {
            return Err((
                2804048,
                "whatsapp_business_account_id is required for business messaging on WhatsApp"
                    .into(),
            ));
        }
        let name = text("event_name").unwrap_or_default();
        if !BUSINESS_MESSAGING_EVENT_NAMES.contains(&name) {
            return Err((
                2804066,
                format!(
                    "event_name '{name}' is not supported for business messaging (Messaging Event Invalid Event Type)"
                ),
            ));
        }
    }
    if text("event_name") == Some("Purchase") {
        check_purchase(e.get("custom_data"))?;
    }
    for key in ["ph", "em"] {
        if let Some(v) = user_data.get(key) {
            let hashed = |s: &Value| {
                s.as_str()
                    .is_some_and(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))
            };
            let ok = match v {
                Value::Array(a) => a.iter().all(hashed),
                other => hashed(other),
            };
            if !ok {
                return Err((2804019, format!("user_data.{key} must be SHA-256 hashed")));
            }
        }
    }
    Ok(())
}

/// A Purchase needs `custom_data.value` (a number) and an ISO 4217 `currency`.
fn check_purchase(custom_data: Option<&Value>) -> Result<(), (i64, String)> {
    let value = custom_data.and_then(|c| c.get("value"));
    if !value.is_some_and(Value::is_number) {
        return Err((
            2804009,
            "a Purchase event needs custom_data.value as a number".into(),
        ));
    }
    let currency = custom_data
        .and_then(|c| c.get("currency"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iso_currency::Currency::from_code(&currency.to_ascii_uppercase()).is_none() {
        return Err((
            2804009,
            format!(
                "a Purchase event needs custom_data.currency as an ISO 4217 code, got '{currency}'"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(now: i64) -> Value {
        json!({"event_name": "LeadSubmitted", "event_time": now, "action_source": "business_messaging",
               "messaging_channel": "whatsapp",
               "user_data": {"ctwa_clid": "c", "whatsapp_business_account_id": "1", "ph": ["a".repeat(64)]}})
    }

    #[test]
    fn a_good_request_passes_and_each_rule_rejects() {
        let now = 1_800_000_000;
        assert!(validate(&json!({"access_token": "t", "data": [event(now)]}), now).is_ok());
        let code = |b: Value| {
            validate(&b, now)
                .err()
                .map(|e| (e.status, e.body["error"]["code"].as_i64()))
        };
        assert_eq!(code(json!({"data": [event(now)]})), Some((400, Some(190))));
        assert_eq!(
            code(json!({"access_token": "t", "data": []})),
            Some((400, Some(100)))
        );
        let mut old = event(now);
        old["event_time"] = json!(now - 8 * 24 * 3600);
        assert_eq!(
            code(json!({"access_token": "t", "data": [event(now), old]})),
            Some((400, Some(100)))
        );
        let mut no_clid = event(now);
        no_clid["user_data"] = json!({"ph": ["a".repeat(64)]});
        assert_eq!(
            code(json!({"access_token": "t", "data": [no_clid]})),
            Some((400, Some(100)))
        );
        let mut raw_phone = event(now);
        raw_phone["user_data"]["ph"] = json!(["5511999999999"]);
        assert_eq!(
            code(json!({"access_token": "t", "data": [raw_phone]})),
            Some((400, Some(100)))
        );
        let refusal = |e: Value| {
            let err = validate(&json!({"access_token": "t", "data": [e]}), now).unwrap_err();
            let body = &err.body["error"];
            assert_eq!((err.status, body["code"].as_i64()), (400, Some(100)));
            assert!(body["fbtrace_id"].is_string());
            (
                body["error_subcode"].as_i64().unwrap(),
                body["error_user_title"].as_str().unwrap().to_owned(),
            )
        };
        // Meta's business-messaging rules.
        for name in ["Lead", "CompleteRegistration", "Schedule", "Contact"] {
            let mut e = event(now);
            e["event_name"] = json!(name);
            assert_eq!(
                refusal(e),
                (2804066, "Messaging Event Invalid Event Type".into())
            );
        }
        let mut other = event(now);
        other["event_name"] = json!("Lead");
        other["action_source"] = json!("other");
        other.as_object_mut().unwrap().remove("messaging_channel");
        assert!(validate(&json!({"access_token": "t", "data": [other]}), now).is_ok());
        let mut no_waba = event(now);
        no_waba["user_data"]
            .as_object_mut()
            .unwrap()
            .remove("whatsapp_business_account_id");
        assert_eq!(refusal(no_waba).0, 2804048);
        let mut no_channel = event(now);
        no_channel
            .as_object_mut()
            .unwrap()
            .remove("messaging_channel");
        assert_eq!(refusal(no_channel).0, 2804048);
        let purchase = |custom: Value| {
            let mut e = event(now);
            e["event_name"] = json!("Purchase");
            e["custom_data"] = custom;
            e
        };
        assert!(validate(
            &json!({"access_token": "t", "data": [purchase(json!({"value": 15000, "currency": "RUB"}))]}),
            now
        )
        .is_ok());
        for bad in [
            json!({"currency": "RUB"}),
            json!({"value": "15000", "currency": "RUB"}),
            json!({"value": 1.5, "currency": "RUBLES"}),
            json!({"value": 1.5}),
        ] {
            assert_eq!(
                refusal(purchase(bad)),
                (2804009, "Missing Value for Purchase Event".into())
            );
        }
        let many: Vec<Value> = (0..1001).map(|_| event(now)).collect();
        assert_eq!(
            code(json!({"access_token": "t", "data": many})),
            Some((400, Some(100)))
        );
    }
}
