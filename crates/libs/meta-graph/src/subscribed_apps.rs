//! The WhatsApp Business Account's subscribed apps: Meta sends a WABA's
//! webhooks (messages to its numbers) only to apps subscribed to it.
//! `POST /{waba_id}/subscribed_apps` subscribes the token's app
//! (idempotent, `{"success": true}`); `GET` lists the subscribed apps.

use crate::{Graph, GraphError};
use serde_json::Value;

impl Graph {
    /// Subscribes the token's app to the WABA's webhooks.
    pub async fn subscribe_app(&self, waba: &str, token: &str) -> Result<(), GraphError> {
        let body = self.post(&format!("{waba}/subscribed_apps"), token).await?;
        if body.get("success").and_then(Value::as_bool) == Some(true) {
            Ok(())
        } else {
            Err(GraphError {
                verdict: domain::meta_errors::Verdict::Invalid,
                status: Some(200),
                error: None,
                message: format!("Meta did not confirm the subscription: {body}"),
            })
        }
    }

    /// The ids of the apps subscribed to the WABA.
    pub async fn subscribed_apps(
        &self,
        waba: &str,
        token: &str,
    ) -> Result<Vec<String>, GraphError> {
        let body = self
            .get(&format!("{waba}/subscribed_apps"), &[], token)
            .await?;
        Ok(body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                a["whatsapp_business_api_data"]["id"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect())
    }
}
