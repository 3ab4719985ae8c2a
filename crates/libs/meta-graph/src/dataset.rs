//! The WhatsApp Business Account's dataset: Meta ties business-messaging
//! events to it (one per WABA). `GET /{waba_id}/dataset` reads it; `POST`
//! creates it or returns the existing one (idempotent).

use crate::{Graph, GraphError};
use serde_json::Value;

impl Graph {
    /// The WABA's dataset id: read (`create` false; `None` when it has none
    /// yet) or created.
    pub async fn waba_dataset(
        &self,
        waba: &str,
        token: &str,
        create: bool,
    ) -> Result<Option<String>, GraphError> {
        let path = format!("{waba}/dataset");
        let body = if create {
            self.post(&path, token).await?
        } else {
            self.get(&path, &[], token).await?
        };
        let id = if create {
            body.get("id")
        } else {
            body.get("data")
                .and_then(Value::as_array)
                .and_then(|d| d.first())
                .and_then(|d| d.get("id"))
        };
        match id {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            _ if !create => Ok(None),
            _ => Err(GraphError {
                verdict: domain::meta_errors::Verdict::Invalid,
                status: Some(200),
                error: None,
                message: "Meta answered without a dataset id".into(),
            }),
        }
    }
}
