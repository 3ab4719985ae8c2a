//! An OpenAI-compatible Chat Completions client: `POST {base_url}/chat/completions`
//! with a bearer key (none for servers that need none, such as Ollama). One
//! client for every stage that asks a model anything.
//!
//! Failures come back classified by the `outbound` policy, so callers decide
//! what to retry: a timeout, a connection error, HTTP 429, 408 or 5xx is
//! [`LlmError::Unavailable`]; any other 4xx is [`LlmError::Rejected`]; a 2xx without a usable answer is
//! [`LlmError::Malformed`]. No error ever carries the API key.

pub mod analysis;
pub mod onboarding;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `[llm]` settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LlmSettings {
    /// e.g. `https://api.openai.com/v1`, `http://127.0.0.1:11434/v1` (Ollama).
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer …`; empty sends none. Never printed.
    pub api_key: SecretString,
    /// A request ends after this long, e.g. "20s".
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub timeout: Duration,
    pub max_tokens: u32,
}

impl std::fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &"[redacted]")
            .field("timeout", &self.timeout)
            .field("max_tokens", &self.max_tokens)
            .finish()
    }
}

/// Defaults for the `[llm]` section, for a service's own defaults.
pub const DEFAULTS: &str = r#"
[llm]
base_url = "https://api.openai.com/v1"
model = "gpt-4o-mini"
api_key = ""
timeout = "20s"
max_tokens = 400
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        ChatMessage {
            role,
            content: content.into(),
        }
    }
}

/// The model's answer and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub content: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// Worth retrying later: timeout, connection failure, HTTP 429 or 5xx.
    #[error("the model is unavailable: {0}")]
    Unavailable(String),
    /// The server refused the request (4xx other than 429): retrying the
    /// same request will not help.
    #[error("the model server rejected the request (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// A 2xx answer without a usable message.
    #[error("the model's answer could not be read: {0}")]
    Malformed(String),
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    url: String,
    model: String,
    api_key: SecretString,
    max_tokens: u32,
}

impl LlmClient {
    pub fn new(s: &LlmSettings) -> Result<LlmClient, reqwest::Error> {
        let http = outbound::client(s.timeout)?;
        Ok(LlmClient {
            http,
            url: format!("{}/chat/completions", s.base_url.trim_end_matches('/')),
            model: s.model.clone(),
            api_key: s.api_key.clone(),
            max_tokens: s.max_tokens,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// The request body for `messages` (and a `response_format`, e.g. a
    /// strict JSON Schema), exactly as sent.
    pub fn body(&self, messages: &[ChatMessage], response_format: Option<&Value>) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "max_tokens": self.max_tokens,
        });
        if let Some(f) = response_format {
            body["response_format"] = f.clone();
        }
        body
    }

    /// One chat completion.
    pub async fn chat(
        &self,
        messages: &[ChatMessage],
        response_format: Option<&Value>,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let mut req = self
            .http
            .post(&self.url)
            .json(&self.body(messages, response_format));
        let key = self.api_key.expose_secret();
        if !key.trim().is_empty() {
            req = req.bearer_auth(key);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| LlmError::Unavailable(outbound::transport_error(e)))?;
        let status = resp.status().as_u16();
        let class = outbound::classify(status);
        let body: Option<Value> = resp.json().await.ok();
        tracing::debug!(
            status,
            elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "chat completion"
        );
        if class != outbound::Class::Success {
            let message = body
                .as_ref()
                .and_then(|b| b.pointer("/error/message").or_else(|| b.get("error")))
                .and_then(|m| {
                    m.as_str()
                        .map(str::to_owned)
                        .or_else(|| Some(m.to_string()))
                })
                .unwrap_or_else(|| format!("HTTP {status}"));
            return Err(if class.is_retryable() {
                LlmError::Unavailable(format!("HTTP {status}: {message}"))
            } else {
                LlmError::Rejected { status, message }
            });
        }
        let body = body.ok_or_else(|| LlmError::Malformed("the body is not JSON".into()))?;
        let content = body
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .ok_or_else(|| LlmError::Malformed("no choices[0].message.content".into()))?;
        let tokens = |k: &str| {
            body.pointer(&format!("/usage/{k}"))
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(0)
        };
        Ok(Completion {
            content: content.to_owned(),
            prompt_tokens: tokens("prompt_tokens"),
            completion_tokens: tokens("completion_tokens"),
        })
    }
}

/// Keeps the newest messages that fit `max_messages` and `max_chars` (a
/// stand-in for tokens: about four characters each), oldest dropped first;
/// the newest message is always kept.
pub fn newest_within(
    messages: Vec<ChatMessage>,
    max_messages: usize,
    max_chars: usize,
) -> Vec<ChatMessage> {
    let mut kept = Vec::new();
    let mut chars = 0;
    for m in messages.into_iter().rev() {
        let len = m.content.chars().count();
        if !kept.is_empty() && (kept.len() >= max_messages || chars + len > max_chars) {
            break;
        }
        chars += len;
        kept.push(m);
    }
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_json, header, method, path},
    };

    fn settings(base: &str, key: &str) -> LlmSettings {
        LlmSettings {
            base_url: format!("{base}/v1"),
            model: "gpt-4o-mini".into(),
            api_key: SecretString::from(key.to_owned()),
            timeout: Duration::from_millis(500),
            max_tokens: 100,
        }
    }

    fn msgs() -> Vec<ChatMessage> {
        vec![
            ChatMessage::new(Role::System, "Be brief."),
            ChatMessage::new(Role::User, "Hi"),
        ]
    }

    #[tokio::test]
    async fn sends_the_openai_request_and_reads_the_answer_and_usage() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/chat/completions"))
            .and(header("authorization", "Bearer sk-test"))
            .and(body_json(json!({
                "model": "gpt-4o-mini",
                "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
                "max_tokens": 100
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello!"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
            })))
            .expect(1)
            .mount(&server)
            .await;
        let client =
            LlmClient::new(&settings(&server.uri(), "sk-test")).unwrap_or_else(|e| panic!("{e}"));
        let c = client.chat(&msgs(), None).await;
        assert_eq!(
            c.ok(),
            Some(Completion {
                content: "Hello!".into(),
                prompt_tokens: 12,
                completion_tokens: 3
            })
        );
    }

    #[tokio::test]
    async fn failures_are_classified_and_never_carry_the_key() {
        let server = MockServer::start().await;
        for (status, body) in [
            (429, json!({"error": {"message": "Rate limit reached"}})),
            (503, json!({"error": {"message": "overloaded"}})),
            (
                401,
                json!({"error": {"message": "Incorrect API key provided: sk-sec***"}}),
            ),
            (200, json!({"choices": []})),
        ] {
            server.reset().await;
            Mock::given(method("POST"))
                .respond_with(ResponseTemplate::new(status).set_body_json(body))
                .mount(&server)
                .await;
            let client = LlmClient::new(&settings(&server.uri(), "sk-secret-key"))
                .unwrap_or_else(|e| panic!("{e}"));
            let err = client.chat(&msgs(), None).await.err();
            let text = format!("{err:?}");
            assert!(!text.contains("sk-secret-key"), "{text}");
            match status {
                429 | 503 => assert!(matches!(err, Some(LlmError::Unavailable(_))), "{text}"),
                401 => assert!(
                    matches!(err, Some(LlmError::Rejected { status: 401, .. })),
                    "{text}"
                ),
                _ => assert!(matches!(err, Some(LlmError::Malformed(_))), "{text}"),
            }
        }
        // A server that does not answer in time.
        server.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
            .mount(&server)
            .await;
        let client = LlmClient::new(&settings(&server.uri(), "")).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            client.chat(&msgs(), None).await,
            Err(LlmError::Unavailable(m)) if m == "timed out"
        ));
    }

    #[test]
    fn the_history_keeps_the_newest_messages_within_both_budgets() {
        let m = |s: &str| ChatMessage::new(Role::User, s);
        let all = vec![m("aaaa"), m("bbbb"), m("cccc"), m("dddd")];
        assert_eq!(newest_within(all.clone(), 10, 100), all);
        assert_eq!(
            newest_within(all.clone(), 2, 100),
            vec![m("cccc"), m("dddd")]
        );
        assert_eq!(
            newest_within(all.clone(), 10, 9),
            vec![m("cccc"), m("dddd")]
        );
        // The newest message stays even when it alone is over the budget.
        assert_eq!(newest_within(all, 10, 2), vec![m("dddd")]);
    }
}
