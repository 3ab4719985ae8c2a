//! Writes a direction's qualification prompt ("prompt2") from a business
//! description with the model: a strict schema asks for the business
//! context, 3–5 qualification questions, good and bad answers and the signs
//! of a booking, rendered into plain text an operator can read and edit.

use crate::{ChatMessage, LlmClient, LlmError, Role};
use domain::qualification::{
    BusinessDescription, ONBOARDING_INSTRUCTIONS, onboarding_request, onboarding_response_format,
    parse_draft, render_prompt,
};

/// A generated prompt and what it cost.
#[derive(Debug, Clone)]
pub struct Generated {
    pub prompt: String,
    pub calls: u32,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum OnboardingError {
    #[error(transparent)]
    Model(#[from] LlmError),
    #[error("the model's draft is unusable: {0}")]
    Unusable(String),
}

/// Asks the model for a draft; an unusable draft is asked for once more.
pub async fn generate(
    llm: &LlmClient,
    d: &BusinessDescription,
) -> Result<Generated, OnboardingError> {
    let messages = [
        ChatMessage::new(Role::System, ONBOARDING_INSTRUCTIONS),
        ChatMessage::new(Role::User, onboarding_request(d)),
    ];
    let format = onboarding_response_format();
    let (mut calls, mut prompt_tokens, mut completion_tokens) = (0, 0, 0);
    loop {
        calls += 1;
        let c = llm.chat(&messages, Some(&format)).await?;
        prompt_tokens += c.prompt_tokens;
        completion_tokens += c.completion_tokens;
        match parse_draft(&c.content) {
            Ok(draft) => {
                return Ok(Generated {
                    prompt: render_prompt(&draft),
                    calls,
                    prompt_tokens,
                    completion_tokens,
                });
            }
            Err(e) if calls >= 2 => return Err(OnboardingError::Unusable(e)),
            Err(e) => tracing::warn!(error = %e, "the model's draft is unusable; asking once more"),
        }
    }
}
