//! Meta's checks on a `/events` request, as documented (research §1–2):
//! an invalid event rejects the whole request.

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

fn invalid(subcode: i64, message: String) -> GraphError {
    graph_error(
        400,
        100,
        Some(subcode),
        &format!("Invalid parameter: {message}"),
        false,
    )
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
        if channel == Some("whatsapp")
            && user_data
                .get("ctwa_clid")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            return Err((
                2804048,
                "ctwa_clid is a required field for business messaging on WhatsApp".into(),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(now: i64) -> Value {
        json!({"event_name": "Lead", "event_time": now, "action_source": "business_messaging",
               "messaging_channel": "whatsapp", "user_data": {"ctwa_clid": "c", "ph": ["a".repeat(64)]}})
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
        let many: Vec<Value> = (0..1001).map(|_| event(now)).collect();
        assert_eq!(
            code(json!({"access_token": "t", "data": many})),
            Some((400, Some(100)))
        );
    }
}
