//! Evolution API: `POST {base}/message/sendText/{instance}` with the
//! instance's `apikey` header; the v2 body by default, the v1 body for
//! instances configured so (research/evolution-api-and-whatsapp-webhooks.md §3).

use crate::whatsapp::SendError;
use outbound::Class;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::time::Duration;

pub use domain::evolution::ApiVersion;

#[derive(Clone)]
pub struct Evolution {
    http: reqwest::Client,
    base_url: String,
}

/// The request body for `number` and `text`.
pub fn send_text_body(version: ApiVersion, number: &str, text: &str) -> Value {
    match version {
        ApiVersion::V2 => json!({ "number": number, "text": text }),
        ApiVersion::V1 => json!({
            "number": number,
            "options": { "delay": 1200, "presence": "composing" },
            "textMessage": { "text": text }
        }),
    }
}

impl Evolution {
    pub fn new(base_url: &str, timeout: Duration) -> Result<Evolution, reqwest::Error> {
        Ok(Evolution {
            http: outbound::client(timeout)?,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Sends `text`; returns the WhatsApp message id Evolution assigned (if it said).
    pub async fn send_text(
        &self,
        instance: &str,
        api_key: &SecretString,
        version: ApiVersion,
        number: &str,
        text: &str,
    ) -> Result<Option<String>, SendError> {
        let url = format!("{}/message/sendText/{}", self.base_url, instance);
        let resp = self
            .http
            .post(url)
            .header("apikey", api_key.expose_secret())
            .json(&send_text_body(version, number, text))
            .send()
            .await
            .map_err(|e| SendError::Unavailable(outbound::transport_error(e)))?;
        let status = resp.status().as_u16();
        let class = outbound::classify(status);
        let body: Option<Value> = resp.json().await.ok();
        if class == Class::Success {
            return Ok(body
                .as_ref()
                .and_then(|b| b.pointer("/key/id"))
                .and_then(Value::as_str)
                .map(str::to_owned));
        }
        // v2: {"status":400,"error":"Bad Request","response":{"message":[...]}}
        let message = body
            .as_ref()
            .map(|b| {
                b.pointer("/response/message")
                    .or_else(|| b.get("message"))
                    .or_else(|| b.get("error"))
                    .map(|m| {
                        m.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| m.to_string())
                    })
                    .unwrap_or_else(|| b.to_string())
            })
            .unwrap_or_else(|| format!("HTTP {status}"));
        Err(if class.is_retryable() {
            SendError::Unavailable(format!("HTTP {status}: {message}"))
        } else {
            SendError::Rejected { status, message }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key we send is one the documented request has, at the same
    /// place; the required ones are there.
    fn keys_within(ours: &Value, documented: &Value, at: &str) {
        let Some(o) = ours.as_object() else { return };
        for (k, v) in o {
            let d = documented.get(k);
            assert!(d.is_some(), "{at}{k} is not in the documented request");
            if let Some(d) = d {
                keys_within(v, d, &format!("{at}{k}."));
            }
        }
    }

    #[test]
    fn bodies_follow_the_documented_v1_and_v2_schemas() {
        let data = |f: &str| -> Value {
            let path = format!("{}/tests/data/{f}", env!("CARGO_MANIFEST_DIR"));
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        };
        let v2 = send_text_body(ApiVersion::V2, "5511999999999", "Olá");
        keys_within(&v2, &data("sendText-v2-request.json"), "");
        assert_eq!(v2, json!({"number": "5511999999999", "text": "Olá"}));
        let v1 = send_text_body(ApiVersion::V1, "5511999999999", "Olá");
        keys_within(&v1, &data("sendText-v1-request.json"), "");
        assert_eq!(v1["number"], "5511999999999");
        assert_eq!(v1["textMessage"]["text"], "Olá");
    }
}
