//! Graph reads with a bearer token (insights pages, a pixel, a dataset),
//! each answer sorted by `domain::meta_errors`.

use crate::Graph;
use domain::meta_errors::{MetaError, Verdict, verdict};
use serde_json::Value;

/// Why a Graph call gave no answer to use: the verdict (retry, back off,
/// give up), the HTTP status if there was one, and Meta's error.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub verdict: Verdict,
    pub status: Option<u16>,
    /// Meta's error object, when it sent one.
    pub error: Option<MetaError>,
    /// For people: "Meta answered 400: …" or "Meta did not answer: …".
    pub message: String,
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Graph {
    /// `GET {base}/{version}/{path}` with `query`.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, &str)],
        token: &str,
    ) -> Result<Value, GraphError> {
        self.call(self.http.get(self.url(path)).query(query), token)
            .await
    }

    /// `GET` of a full URL Meta handed out (a `paging.next` link).
    pub async fn get_url(&self, url: &str, token: &str) -> Result<Value, GraphError> {
        self.call(self.http.get(url), token).await
    }

    /// `POST {base}/{version}/{path}` without a body.
    pub async fn post(&self, path: &str, token: &str) -> Result<Value, GraphError> {
        self.call(self.http.post(self.url(path)), token).await
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        token: &str,
    ) -> Result<Value, GraphError> {
        let resp = request
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| GraphError {
                verdict: Verdict::Transient,
                status: None,
                error: None,
                message: format!("Meta did not answer: {}", outbound::transport_error(e)),
            })?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let error = MetaError::from_body(&body);
        match verdict(Some(status), error.as_ref()) {
            Verdict::Accepted => Ok(body),
            v => Err(GraphError {
                verdict: v,
                status: Some(status),
                message: format!(
                    "Meta answered {status}: {}",
                    error
                        .as_ref()
                        .map_or("no error object", |e| e.message.as_str())
                ),
                error,
            }),
        }
    }
}
