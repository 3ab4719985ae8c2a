//! The Conversions API: `POST {base}/{version}/{pixel_id}/events`.

use crate::Graph;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What came back: Meta's HTTP status and body, or why nothing did. The
/// caller decides with `domain::meta_errors::verdict` (a batch's answer is
/// read per event, so it is returned whole).
#[derive(Debug, Clone)]
pub struct Answer {
    /// `None` when Meta could not be reached or did not answer in time.
    pub status: Option<u16>,
    pub body: Option<Value>,
    pub transport_error: Option<String>,
    /// The wait Meta's `Retry-After` asked for, if it sent one.
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

impl Graph {
    /// Sends `body` (`{"data": [...]}`) with `access_token` (and
    /// `appsecret_proof`) added. Neither is part of anything returned.
    pub async fn send_events(
        &self,
        pixel_id: &str,
        token: &SecretString,
        proof: Option<&str>,
        body: &Value,
    ) -> Answer {
        let url = self.url(&format!("{pixel_id}/events"));
        let mut with_token = body.clone();
        with_token["access_token"] = Value::String(token.expose_secret().to_owned());
        if let Some(p) = proof {
            with_token["appsecret_proof"] = Value::String(p.to_owned());
        }
        let started = Instant::now();
        match self.http.post(&url).json(&with_token).send().await {
            Err(e) => Answer {
                status: None,
                body: None,
                transport_error: Some(format!(
                    "Meta did not answer: {}",
                    outbound::transport_error(e)
                )),
                retry_after: None,
                duration: started.elapsed(),
            },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = outbound::retry_after(&resp);
                let text = resp.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Answer {
                    status: Some(status),
                    body: Some(body),
                    transport_error: None,
                    retry_after,
                    duration: started.elapsed(),
                }
            }
        }
    }
}
