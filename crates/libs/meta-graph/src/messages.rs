//! The WhatsApp Cloud API: `POST {base}/{version}/{phone_number_id}/messages`
//! with the number's system-user token. A refusal is sorted by Meta's error
//! code (`domain::meta_errors::send_verdict`): limits and Meta's own
//! trouble are retried; the closed 24-hour window (131047), a bad token or
//! recipient are not.

use crate::Graph;
use domain::meta_errors::{SendVerdict, send_verdict};
use domain::whatsapp_cloud::{Recipient, text_message_body};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageRefused {
    /// Meta could not be reached, or asks to come back later.
    Unavailable(String),
    /// The customer's 24-hour window is closed: only a template may go.
    WindowClosed(String),
    /// A bad token, number or recipient: retrying cannot help.
    Rejected { status: u16, message: String },
}

impl Graph {
    /// Sends `text`; returns the wamid Meta assigned.
    pub async fn send_text(
        &self,
        phone_number_id: &str,
        token: &SecretString,
        to: &Recipient,
        text: &str,
    ) -> Result<Option<String>, MessageRefused> {
        let resp = self
            .http
            .post(self.url(&format!("{phone_number_id}/messages")))
            .bearer_auth(token.expose_secret())
            .json(&text_message_body(to, text))
            .send()
            .await
            .map_err(|e| MessageRefused::Unavailable(outbound::transport_error(e)))?;
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
            SendVerdict::Retry => MessageRefused::Unavailable(format!("HTTP {status}: {message}")),
            SendVerdict::OutsideWindow => MessageRefused::WindowClosed(message),
            SendVerdict::Reject => MessageRefused::Rejected { status, message },
        })
    }
}
