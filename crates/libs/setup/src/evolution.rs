//! Evolution API's webhook endpoints, as `capi instance connect` and the
//! numbers page use them: `POST /webhook/set/{instance}` points the
//! instance's webhook at the gateway (URL, `MESSAGES_UPSERT`, the secret
//! header), `GET /webhook/find/{instance}` reads it back to confirm
//! (docs: shared/research/evolution-api-and-whatsapp-webhooks.md §2.1).

use crate::{Result, SetupError};
use domain::evolution::ApiVersion;
use serde_json::{Value, json};
use std::time::Duration;

/// The header Evolution sends with each delivery and the gateway checks.
pub const SECRET_HEADER: &str = "X-Webhook-Secret";
pub const EVENT: &str = "MESSAGES_UPSERT";

/// Evolution API at one base URL.
#[derive(Clone)]
pub struct Evolution {
    http: reqwest::Client,
    base: String,
}

/// The webhook to set.
pub struct Webhook<'a> {
    pub url: &'a str,
    pub secret: &'a str,
}

impl Evolution {
    pub fn new(base_url: &str, timeout: Duration) -> anyhow::Result<Evolution> {
        Ok(Evolution {
            http: outbound::client(timeout)?,
            base: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// The body `POST /webhook/set` takes in each version: v2 nests it
    /// under `webhook` (its schema validates that form), v1 is flat.
    pub fn set_body(version: ApiVersion, w: &Webhook<'_>) -> Value {
        match version {
            ApiVersion::V2 => json!({"webhook": {
                "enabled": true, "url": w.url, "headers": {SECRET_HEADER: w.secret},
                "byEvents": false, "base64": false, "events": [EVENT]}}),
            ApiVersion::V1 => json!({
                "enabled": true, "url": w.url, "webhook_by_events": false,
                "webhook_base64": false, "events": [EVENT]}),
        }
    }

    async fn call(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value> {
        let resp = req.send().await.map_err(|e| {
            SetupError::Upstream(format!(
                "Evolution API ({what}): {}",
                outbound::transport_error(e)
            ))
        })?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            // Evolution's errors: {"status": 4xx, "error": "...", "response": {"message": [...]}}
            let message = body["response"]["message"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .or_else(|| body["response"]["message"].as_str().map(str::to_owned))
                .or_else(|| body["error"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let hint = if status == reqwest::StatusCode::UNAUTHORIZED
                || status == reqwest::StatusCode::FORBIDDEN
            {
                " (check the instance's Evolution API key)"
            } else if status == reqwest::StatusCode::NOT_FOUND {
                " (no such instance at Evolution API)"
            } else {
                ""
            };
            return Err(SetupError::Upstream(format!(
                "Evolution API refused {what}: {status}{}{hint}",
                if message.is_empty() {
                    String::new()
                } else {
                    format!(" {message}")
                }
            )));
        }
        Ok(body)
    }

    /// Sets the instance's webhook, then reads it back: an error unless
    /// Evolution now holds our URL, enabled, with `MESSAGES_UPSERT`.
    pub async fn set_webhook(
        &self,
        instance: &str,
        api_key: &str,
        version: ApiVersion,
        w: &Webhook<'_>,
    ) -> Result<Value> {
        let path = percent_path(instance);
        self.call(
            self.http
                .post(format!("{}/webhook/set/{path}", self.base))
                .header("apikey", api_key)
                .json(&Self::set_body(version, w)),
            "the webhook setting",
        )
        .await?;
        let found = self
            .call(
                self.http
                    .get(format!("{}/webhook/find/{path}", self.base))
                    .header("apikey", api_key),
                "reading the webhook back",
            )
            .await?;
        let events_ok = found["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|v| v.as_str() == Some(EVENT)));
        if found["url"].as_str() != Some(w.url)
            || found["enabled"].as_bool() != Some(true)
            || !events_ok
        {
            return Err(SetupError::Upstream(format!(
                "Evolution API took the webhook but reads back url {}, enabled {}, events {}: not what was set",
                found["url"], found["enabled"], found["events"]
            )));
        }
        Ok(json!({"url": found["url"], "enabled": true, "events": found["events"]}))
    }
}

/// An instance name as one path segment.
fn percent_path(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_set_body_is_each_versions_own_form() {
        let w = Webhook {
            url: "https://gw.example/webhooks/evolution/clinic",
            secret: "s3",
        };
        let v2 = Evolution::set_body(ApiVersion::V2, &w);
        assert_eq!(v2["webhook"]["headers"][SECRET_HEADER], "s3");
        assert_eq!(v2["webhook"]["events"], json!(["MESSAGES_UPSERT"]));
        let v1 = Evolution::set_body(ApiVersion::V1, &w);
        assert_eq!(v1["url"], w.url);
        assert!(v1.get("webhook").is_none());
        assert_eq!(percent_path("a b/c"), "a%20b%2Fc");
    }
}
