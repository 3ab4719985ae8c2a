//! The Meta Graph API client: `POST {base}/{version}/{pixel_id}/events`.

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::{Duration, Instant};

#[derive(Clone)]
pub struct MetaClient {
    http: reqwest::Client,
    base_url: String,
    version: String,
}

/// Meta's error object (`{"error": {...}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaError {
    pub message: String,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub is_transient: bool,
}

impl MetaError {
    fn from_body(body: &Value) -> Option<MetaError> {
        let e = body.get("error")?;
        Some(MetaError {
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_owned(),
            code: e.get("code").and_then(Value::as_i64),
            subcode: e.get("error_subcode").and_then(Value::as_i64),
            is_transient: e
                .get("is_transient")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }

    /// Worth retrying: Meta says so, or a code Meta documents as temporary or
    /// as throttling (research §2.6).
    pub fn is_retryable(&self) -> bool {
        self.is_transient
            || matches!(
                self.code,
                Some(1 | 2 | 4 | 17 | 341 | 368 | 613 | 21009 | 80000..=80014)
            )
    }
}

#[derive(Debug, Clone)]
pub enum SendOutcome {
    /// 2xx: Meta took the events.
    Accepted { status: u16, body: Value },
    /// Meta answered with an error object or a 4xx.
    Rejected {
        status: u16,
        body: Value,
        error: MetaError,
    },
    /// 5xx, timeout or no connection: try again later.
    Unavailable {
        status: Option<u16>,
        body: Option<Value>,
        message: String,
    },
}

pub struct Sent {
    pub outcome: SendOutcome,
    pub duration: Duration,
}

impl MetaClient {
    pub fn new(base_url: &str, version: &str, timeout: Duration) -> anyhow::Result<MetaClient> {
        let http = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(MetaClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            version: version.to_owned(),
        })
    }

    /// Sends `body` (`{"data": [...]}`) with the token added; the token is
    /// never part of anything returned or logged.
    pub async fn send_events(&self, pixel_id: &str, token: &SecretString, body: &Value) -> Sent {
        let url = format!("{}/{}/{}/events", self.base_url, self.version, pixel_id);
        let mut with_token = body.clone();
        with_token["access_token"] = Value::String(token.expose_secret().to_owned());
        let started = Instant::now();
        let outcome = match self.http.post(&url).json(&with_token).send().await {
            Err(e) => SendOutcome::Unavailable {
                status: None,
                body: None,
                // reqwest's message names the URL (no token there: it travels in the body).
                message: if e.is_timeout() {
                    format!("timed out waiting for Meta: {e}")
                } else {
                    format!("could not reach Meta: {e}")
                },
            },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap_or_default();
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                classify(status, body)
            }
        };
        Sent {
            outcome,
            duration: started.elapsed(),
        }
    }
}

fn classify(status: u16, body: Value) -> SendOutcome {
    let error = MetaError::from_body(&body);
    match (status, error) {
        (200..=299, None) => SendOutcome::Accepted { status, body },
        (500..=599, _) => SendOutcome::Unavailable {
            status: Some(status),
            message: format!("Meta answered HTTP {status}"),
            body: Some(body),
        },
        (_, Some(error)) if error.is_retryable() => SendOutcome::Unavailable {
            status: Some(status),
            message: error.message.clone(),
            body: Some(body),
        },
        (_, Some(error)) => SendOutcome::Rejected {
            status,
            body,
            error,
        },
        (_, None) => SendOutcome::Rejected {
            status,
            error: MetaError {
                message: format!("HTTP {status} without an error object"),
                code: None,
                subcode: None,
                is_transient: false,
            },
            body,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn errors_are_classified_by_status_and_code() {
        assert!(matches!(
            classify(200, json!({"events_received": 1})),
            SendOutcome::Accepted { .. }
        ));
        assert!(matches!(
            classify(503, json!("down")),
            SendOutcome::Unavailable {
                status: Some(503),
                ..
            }
        ));
        let invalid = json!({"error": {"message": "Invalid parameter", "code": 100, "error_subcode": 2804003}});
        match classify(400, invalid) {
            SendOutcome::Rejected { error, .. } => {
                assert_eq!((error.code, error.subcode), (Some(100), Some(2804003)));
                assert_eq!(error.message, "Invalid parameter");
            }
            other => panic!("{other:?}"),
        }
        let throttled = json!({"error": {"message": "too many calls", "code": 80004}});
        assert!(matches!(
            classify(400, throttled),
            SendOutcome::Unavailable { .. }
        ));
        let transient = json!({"error": {"message": "x", "code": 100, "is_transient": true}});
        assert!(matches!(
            classify(400, transient),
            SendOutcome::Unavailable { .. }
        ));
    }
}
