//! One analysis: the conversation to the model with the strict schema, and
//! its answer read by that schema. A malformed answer is asked for once more;
//! a second one is an error (recorded, nothing sent).

use crate::{ChatMessage, LlmClient, LlmError, Role};
use domain::{
    conversation::{Author, Message},
    qualification::{
        Analysis, Line, Speaker, parse_analysis, response_format, system_prompt, transcript,
    },
};
use serde_json::Value;
use std::time::Instant;

/// Malformed answers tolerated before the analysis is an error.
const MALFORMED_RETRIES: u32 = 1;

/// What an analysis produced and cost.
#[derive(Debug)]
pub struct Outcome {
    /// The analysis, or why there is none.
    pub analysis: Result<Analysis, String>,
    /// The answer as the model gave it, when it was JSON (kept for audit).
    pub raw: Option<Value>,
    pub calls: u32,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub duration_ms: u64,
}

/// The model cannot be asked now: try the dialog again later.
#[derive(Debug)]
pub struct Unavailable(pub String);

pub struct Analyzer {
    pub llm: LlmClient,
    pub max_history_messages: usize,
    pub max_history_chars: usize,
}

impl Analyzer {
    /// The request's messages: the direction's prompt (or the generic one)
    /// as system prompt, the transcript as the one user message.
    pub fn messages(
        &self,
        direction_prompt: Option<&str>,
        business: &str,
        history: &[Message],
    ) -> Vec<ChatMessage> {
        let lines: Vec<Line> = history
            .iter()
            .filter_map(|m| {
                let text = m.text.as_deref().map(str::trim).filter(|t| !t.is_empty())?;
                Some(Line {
                    speaker: if m.author == Author::Customer {
                        Speaker::Customer
                    } else {
                        Speaker::Business
                    },
                    sent_at: m.sent_at,
                    text: text.to_owned(),
                })
            })
            .collect();
        vec![
            ChatMessage::new(Role::System, system_prompt(direction_prompt, business)),
            ChatMessage::new(
                Role::User,
                transcript(&lines, self.max_history_messages, self.max_history_chars),
            ),
        ]
    }

    pub async fn analyze(&self, messages: &[ChatMessage]) -> Result<Outcome, Unavailable> {
        let started = Instant::now();
        let format = response_format();
        let mut out = Outcome {
            analysis: Err(String::new()),
            raw: None,
            calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            duration_ms: 0,
        };
        loop {
            out.calls += 1;
            match self.llm.chat(messages, Some(&format)).await {
                Ok(c) => {
                    out.prompt_tokens += c.prompt_tokens;
                    out.completion_tokens += c.completion_tokens;
                    out.raw = serde_json::from_str(&c.content).ok();
                    out.analysis = parse_analysis(&c.content);
                }
                Err(LlmError::Malformed(e)) => out.analysis = Err(e),
                // Authentication or an unknown model: the configuration is
                // wrong, and fixing it should bring the dialogs back.
                Err(
                    e @ LlmError::Rejected {
                        status: 401 | 403 | 404,
                        ..
                    },
                ) => {
                    tracing::error!(error = %e, "the model server refuses our requests; check llm.api_key and llm.model");
                    return Err(Unavailable(e.to_string()));
                }
                // Asking the same again will not help.
                Err(e @ LlmError::Rejected { .. }) => {
                    out.analysis = Err(e.to_string());
                    break;
                }
                Err(LlmError::Unavailable(e)) => return Err(Unavailable(e)),
            }
            let retry = out.analysis.is_err() && out.calls <= MALFORMED_RETRIES;
            if !retry {
                break;
            }
            tracing::warn!(error = ?out.analysis.as_ref().err(), "the model's answer does not match the schema; asking once more");
        }
        out.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(out)
    }
}
