//! The sandbox model's answers to qualification requests: keyword rules over
//! the customer's lines of the transcript, deterministic, so the demo and the
//! benchmark reach levels 2 and 3 without a real model. Russian and English.
//!
//! - qualified: the customer gave a qualifying answer (a budget, their name,
//!   age, the date or area they need — see `QUALIFIED`);
//! - scheduled: the customer's latest booking word is a booking, not a
//!   cancellation ("book me for Friday", then "cancel" → not scheduled);
//! - interested: two customer lines or an interest word.
//!
//! It also drafts qualification prompts from a business description.

use serde_json::{Value, json};

const INTERESTED: &[&str] = &[
    "price",
    "cost",
    "how much",
    "interested",
    "want",
    "сколько",
    "цена",
    "стоимость",
    "интересно",
    "хочу",
    "хотел",
    "хотела",
];
const QUALIFIED: &[&str] = &[
    "budget",
    "my name is",
    "years old",
    "for myself",
    "for my",
    "бюджет",
    "меня зовут",
    "лет",
    "для себя",
    "для мамы",
    "для сына",
    "для дочери",
];
const BOOKED: &[&str] = &[
    "book me",
    "i'll come",
    "i will come",
    "see you on",
    "see you at",
    "confirm the appointment",
    "запишите",
    "записаться на",
    "приду",
    "подтверждаю запись",
    "до встречи",
];
const CANCELLED: &[&str] = &[
    "cancel",
    "can't come",
    "cannot come",
    "won't come",
    "отмен",
    "не смогу",
    "не приду",
];

/// Where in `text` the last of `words` occurs.
fn last_of(text: &str, words: &[&str]) -> Option<usize> {
    words.iter().filter_map(|w| text.rfind(w)).max()
}

/// The customer's lines of a transcript, lower-cased, in order.
fn customer_text(messages: &[Value]) -> (String, usize) {
    let transcript = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .filter_map(|m| m.get("content").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    let lines: Vec<String> = transcript
        .lines()
        .filter_map(|l| l.split_once("] Customer: ").map(|(_, t)| t.to_lowercase()))
        .collect();
    (lines.join("\n"), lines.len())
}

/// The analysis answer (the content of the model's message).
pub fn analysis(messages: &[Value]) -> Value {
    let (text, lines) = customer_text(messages);
    let scheduled = match (last_of(&text, BOOKED), last_of(&text, CANCELLED)) {
        (Some(b), Some(c)) => b > c,
        (Some(_), None) => true,
        _ => false,
    };
    let qualified = last_of(&text, QUALIFIED).is_some();
    let interested = lines >= 2 || last_of(&text, INTERESTED).is_some() || qualified || scheduled;
    let (level, stage, reason) = if scheduled {
        ("hot", "scheduled", "The customer booked a time.")
    } else if qualified {
        (
            "warm",
            "qualified",
            "The customer answered a qualification question.",
        )
    } else if interested {
        ("warm", "interested", "The customer asked about the offer.")
    } else {
        ("cold", "first_contact", "No sign of interest yet.")
    };
    json!({
        "is_interested": interested,
        "is_qualified": qualified || scheduled,
        "is_scheduled": scheduled,
        "interest_level": level,
        "funnel_stage": stage,
        "reason": format!("Sandbox keyword rules: {reason}")
    })
}

/// A qualification prompt draft for the business described in the request.
pub fn draft(messages: &[Value]) -> Value {
    let description = crate::assistant::last_user_content(messages);
    let sells = description
        .lines()
        .find_map(|l| l.strip_prefix("What the business sells: "))
        .unwrap_or("its services");
    json!({
        "business_context": format!("The business sells {sells}. Customers come from Click-to-WhatsApp ads."),
        "questions": [
            "What exactly do you need, and for whom?",
            "When would you like to come?",
            "What budget do you have in mind?"
        ],
        "good_answers": "A concrete need, a time within the next weeks, a budget that fits the prices.",
        "bad_answers": "Only asks the price, no time frame, or a budget far below the prices.",
        "booking_signs": "A concrete date and time agreed and confirmed by the customer."
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convo(lines: &[&str]) -> Vec<Value> {
        let body: Vec<String> = lines
            .iter()
            .map(|l| format!("[2026-11-24 10:00] {l}"))
            .collect();
        vec![
            json!({"role": "system", "content": "prompt"}),
            json!({"role": "user", "content": format!("Conversation transcript:\n{}", body.join("\n"))}),
        ]
    }

    #[test]
    fn booked_then_cancelled_is_not_scheduled_and_business_words_do_not_count() {
        let a = analysis(&convo(&[
            "Customer: Hi, how much?",
            "Business: Book me for Friday?",
        ]));
        assert_eq!(
            (a["is_qualified"].clone(), a["is_scheduled"].clone()),
            (json!(false), json!(false))
        );
        let a = analysis(&convo(&[
            "Customer: My budget is 500",
            "Customer: Book me for Friday 3pm",
        ]));
        assert_eq!(a["is_scheduled"], true);
        let a = analysis(&convo(&[
            "Customer: Запишите на пятницу",
            "Customer: Извините, не смогу, отмените",
        ]));
        assert_eq!(
            (a["is_scheduled"].clone(), a["is_interested"].clone()),
            (json!(false), json!(true))
        );
        let a = analysis(&convo(&["Customer: Hello"]));
        assert_eq!(
            (a["is_interested"].clone(), a["interest_level"].clone()),
            (json!(false), json!("cold"))
        );
    }
}
