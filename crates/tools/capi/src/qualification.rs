//! Qualification from the command line: a direction's qualification prompt
//! (show, set, clear, generate from a business description), model usage per
//! direction and day, and the evaluation of a prompt and model on a labeled
//! set of conversations. The model is the one configured by `CAPI_LLM__*`
//! (the same `[llm]` settings as the services).

use crate::{Failure, connect};
use chrono::{Duration, TimeZone, Utc};
use clap::Subcommand;
use domain::ids::DirectionId;
use domain::{
    conversation::{Author, Message},
    qualification::BusinessDescription,
};
use llm::{LlmClient, LlmSettings, analysis::Analyzer};
use serde::Deserialize;
use serde_json::json;
use storage::{qualification as q, usage};

#[derive(Subcommand)]
pub enum PromptCommand {
    /// Print the direction's prompt (and whether it is the generic one).
    Show { id: DirectionId },
    /// Store a prompt written by hand: TEXT, or a file with --file (- for stdin).
    Set {
        id: DirectionId,
        text: Option<String>,
        #[arg(long)]
        file: Option<String>,
    },
    /// Remove the direction's prompt: the generic one is used.
    Clear { id: DirectionId },
    /// Generate the prompt with the model from a business description and store it.
    Generate {
        id: DirectionId,
        /// What the business sells.
        #[arg(long)]
        sells: String,
        /// Who the good customer is.
        #[arg(long)]
        good_customer: String,
        /// How booking works.
        #[arg(long)]
        booking: String,
        /// Print the prompt without storing it.
        #[arg(long)]
        dry_run: bool,
    },
}

fn llm_client() -> Result<LlmClient, Failure> {
    #[derive(Deserialize)]
    struct Own {
        llm: LlmSettings,
    }
    let own = runtime::settings::load_section::<Own>(llm::DEFAULTS)
        .map_err(|e| Failure::input(format!("{e}")))?;
    LlmClient::new(&own.llm).map_err(|e| Failure::from(anyhow::Error::from(e)))
}

fn read_text(text: Option<String>, file: Option<String>) -> Result<String, Failure> {
    let text = match (text, file) {
        (Some(t), None) => t,
        (None, Some(f)) if f == "-" => std::io::read_to_string(std::io::stdin())
            .map_err(|e| Failure::input(format!("reading standard input: {e}")))?,
        (None, Some(f)) => {
            std::fs::read_to_string(&f).map_err(|e| Failure::input(format!("reading {f}: {e}")))?
        }
        _ => {
            return Err(Failure::input(
                "give the prompt as TEXT or --file, not both",
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(Failure::input(
            "the prompt is empty (use `clear` for the generic one)",
        ));
    }
    Ok(text.trim().to_owned())
}

pub async fn prompt(url: &str, c: PromptCommand) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    let missing = |id: DirectionId| Failure::input(format!("no direction {id}"));
    match c {
        PromptCommand::Show { id } => {
            let (name, prompt) = q::prompt(&mut conn, id).await?.ok_or_else(|| missing(id))?;
            let generic = prompt.as_deref().is_none_or(|p| p.trim().is_empty());
            let text = match prompt {
                Some(p) if !generic => p,
                _ => {
                    domain::qualification::GENERIC_QUALIFICATION_PROMPT.replace("{business}", &name)
                }
            };
            out!(
                "{}",
                json!({"id": id, "direction": name, "generic": generic, "prompt": text})
            );
        }
        PromptCommand::Set { id, text, file } => {
            let text = read_text(text, file)?;
            setup::qualification::set(&mut conn, &setup::Actor::cli(), None, id, Some(&text))
                .await?;
            out!("{}", json!({"id": id, "updated": true}));
        }
        PromptCommand::Clear { id } => {
            setup::qualification::set(&mut conn, &setup::Actor::cli(), None, id, None).await?;
            out!("{}", json!({"id": id, "updated": true, "generic": true}));
        }
        PromptCommand::Generate {
            id,
            sells,
            good_customer,
            booking,
            dry_run,
        } => {
            let d = BusinessDescription {
                sells,
                good_customer,
                booking,
            };
            let g = setup::qualification::generate(
                &mut conn,
                &llm_client()?,
                &setup::Actor::cli(),
                None,
                id,
                &d,
                !dry_run,
            )
            .await?;
            out!(
                "{}",
                json!({"id": id, "stored": !dry_run, "prompt": g.prompt,
                       "prompt_tokens": g.prompt_tokens, "completion_tokens": g.completion_tokens})
            );
        }
    }
    Ok(())
}

/// `capi usage`: model calls and tokens per direction, day and purpose.
pub async fn usage(url: &str, days: i32) -> Result<(), Failure> {
    let mut conn = connect(url).await?;
    crate::print_rows(&usage::daily(&mut conn, days.max(1)).await?)
}

/// One labeled conversation of an evaluation set.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Labeled {
    id: String,
    /// not_interested | interested | qualified | booked
    expect: String,
    #[serde(default)]
    note: String,
    messages: Vec<LabeledMessage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LabeledMessage {
    from: Speaker,
    text: String,
}

/// Who wrote a message of the labeled set.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Speaker {
    Customer,
    Business,
}

/// The highest level (0, 2 or 3) a label stands for.
fn expected_level(expect: &str) -> Result<i16, String> {
    match expect {
        "not_interested" | "interested" => Ok(0),
        "qualified" => Ok(2),
        "booked" => Ok(3),
        other => Err(format!(
            "unknown label '{other}' (not_interested, interested, qualified, booked)"
        )),
    }
}

#[derive(Default)]
struct Counts {
    tp: u32,
    fp: u32,
    fn_: u32,
}

impl Counts {
    fn add(&mut self, expected: bool, got: bool) {
        match (expected, got) {
            (true, true) => self.tp += 1,
            (false, true) => self.fp += 1,
            (true, false) => self.fn_ += 1,
            (false, false) => {}
        }
    }
    fn ratio(n: u32, d: u32) -> Option<f64> {
        (d > 0).then(|| f64::from(n) / f64::from(d))
    }
}

/// `capi eval-qualification`: each conversation of the set through the same
/// request the agent sends; prints one line per conversation, then
/// precision and recall for levels 2 and 3.
pub async fn eval(set: &str, prompt_file: Option<String>, business: &str) -> Result<(), Failure> {
    let text =
        std::fs::read_to_string(set).map_err(|e| Failure::input(format!("reading {set}: {e}")))?;
    let items: Vec<Labeled> = serde_json::from_str(&text)
        .map_err(|e| Failure::input(format!("{set} is not a labeled set: {e}")))?;
    let prompt = prompt_file.map(|f| read_text(None, Some(f))).transpose()?;
    let analyzer = Analyzer {
        llm: llm_client()?,
        max_history_messages: 60,
        max_history_chars: 16_000,
    };
    let start = Utc
        .with_ymd_and_hms(2026, 1, 15, 10, 0, 0)
        .single()
        .unwrap_or_else(Utc::now);
    let (mut l2, mut l3, mut errors) = (Counts::default(), Counts::default(), 0);
    let (mut prompt_tokens, mut completion_tokens) = (0u64, 0u64);
    for item in &items {
        let expected = expected_level(&item.expect).map_err(Failure::input)?;
        let history: Vec<Message> = item
            .messages
            .iter()
            .zip(0i64..)
            .map(|(m, i)| Message {
                id: i + 1,
                author: match m.from {
                    Speaker::Customer => Author::Customer,
                    Speaker::Business => Author::Operator,
                },
                text: Some(m.text.clone()),
                sent_at: start + Duration::minutes(2 * i),
            })
            .collect();
        let messages = analyzer.messages(prompt.as_deref(), business, &history);
        let out = analyzer
            .analyze(&messages)
            .await
            .map_err(|u| Failure::from(anyhow::anyhow!("the model is unavailable: {}", u.0)))?;
        prompt_tokens += u64::from(out.prompt_tokens);
        completion_tokens += u64::from(out.completion_tokens);
        let got = match &out.analysis {
            Ok(a) => a.reached().map_or(0, |l| l.number()),
            Err(_) => {
                errors += 1;
                0
            }
        };
        l2.add(expected >= 2, got >= 2);
        l3.add(expected >= 3, got >= 3);
        out!(
            "{}",
            json!({"id": item.id, "expect": item.expect, "expected_level": expected, "level": got,
                   "ok": expected == got, "error": out.analysis.as_ref().err(),
                   "reason": out.analysis.as_ref().ok().map(|a| a.reason.clone()), "note": item.note})
        );
    }
    for (level, c) in [(2, &l2), (3, &l3)] {
        out!(
            "{}",
            json!({"summary": true, "level": level, "precision": Counts::ratio(c.tp, c.tp + c.fp),
                   "recall": Counts::ratio(c.tp, c.tp + c.fn_), "tp": c.tp, "fp": c.fp, "fn": c.fn_,
                   "conversations": items.len(), "errors": errors,
                   "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens})
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_map_to_the_highest_level_and_unknown_ones_are_refused() {
        assert_eq!(expected_level("booked"), Ok(3));
        assert_eq!(expected_level("qualified"), Ok(2));
        assert_eq!(expected_level("interested"), Ok(0));
        assert!(expected_level("maybe").is_err());
    }

    #[test]
    fn precision_and_recall_count_hits_misses_and_false_alarms() {
        let mut c = Counts::default();
        c.add(true, true);
        c.add(true, false);
        c.add(false, true);
        c.add(false, false);
        assert_eq!(Counts::ratio(c.tp, c.tp + c.fp), Some(0.5));
        assert_eq!(Counts::ratio(c.tp, c.tp + c.fn_), Some(0.5));
        assert_eq!(Counts::ratio(0, 0), None);
    }
}
