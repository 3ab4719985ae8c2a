//! WhatsApp Cloud API: `POST {base}/{version}/{phone_number_id}/messages`
//! with the number's system-user token as a Bearer token. A refusal is
//! sorted by Meta's error code (`domain::whatsapp_cloud::send_verdict`):
//! limits and Meta's own trouble are retried; the closed 24-hour window
//! (131047), a bad token or recipient are not.

use crate::whatsapp::SendError;
use domain::whatsapp_cloud::{Recipient, SendVerdict, send_verdict, text_message_body};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

#[derive(Clone)]
pub struct CloudApi {
    http: reqwest::Client,
    base_url: String,
    version: String,
}

impl CloudApi {
    pub fn new(base_url: &str, version: &str, timeout: Duration) -> reqwest::Result<CloudApi> {
        Ok(CloudApi {
            http: outbound::client(timeout)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            version: version.trim_matches('/').to_owned(),
        })
    }

    /// Sends `text`; returns the wamid Meta assigned.
    pub async fn send_text(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        to: &Recipient,
        text: &str,
    ) -> Result<Option<String>, SendError> {
        let url = format!(
            "{}/{}/{}/messages",
            self.base_url, self.version, phone_number_id
        );
        let resp = self
            .http
            .post(url)
            .bearer_auth(token.expose_secret())
            .json(&text_message_body(to, text))
            .send()
            .await
            .map_err(|e| SendError::Unavailable(outbound::transport_error(e)))?;
        let status = resp.status().as_u16();
        let body: Option<Value> = resp.json().await.ok();
        if (200..300).contains(&status) {
            return Ok(body
                .as_ref()
                .and_then(|b| b.pointer("/messages/0/id"))
                .and_then(Value::as_str)
                .map(str::to_owned));
        }
        // {"error":{"message","type","code","error_data":{"details"},"fbtrace_id"}}
        let error = body.as_ref().and_then(|b| b.get("error"));
        let code = error.and_then(|e| e.get("code")).and_then(Value::as_i64);
        let message = error
            .map(|e| {
                let text = e.get("message").and_then(Value::as_str).unwrap_or("");
                let details = e
                    .pointer("/error_data/details")
                    .and_then(Value::as_str)
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default();
                match code {
                    Some(c) => format!("({c}) {text}{details}"),
                    None => format!("{text}{details}"),
                }
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(match send_verdict(status, code) {
            SendVerdict::Retry => SendError::Unavailable(format!("HTTP {status}: {message}")),
            SendVerdict::OutsideWindow => SendError::WindowClosed(message),
            SendVerdict::Reject => SendError::Rejected { status, message },
        })
    }
}
