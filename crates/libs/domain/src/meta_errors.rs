//! How to react to Meta's answers, for every Graph API call (`meta_graph`):
//! the Conversions API and other Graph reads ([`verdict`]), and the
//! WhatsApp Cloud API's message refusals ([`send_verdict`]).

use crate::http_policy::Class;
use serde_json::Value;

/// Meta's error object (`{"error": {...}}`).
#[derive(Debug, Clone, PartialEq)]
pub struct MetaError {
    pub message: String,
    pub code: Option<i64>,
    pub subcode: Option<i64>,
    pub is_transient: bool,
    pub fbtrace_id: Option<String>,
}

impl MetaError {
    pub fn from_body(body: &Value) -> Option<MetaError> {
        let e = body.get("error")?;
        Some(MetaError {
            message: e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_owned(),
            code: e.get("code").and_then(Value::as_i64),
            subcode: e.get("error_subcode").and_then(Value::as_i64),
            is_transient: e
                .get("is_transient")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            fbtrace_id: e
                .get("fbtrace_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

/// A refusal that no retry cures and that the business must fix in Meta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The access token is expired, revoked or invalid (190, 102, 463, 467).
    Token,
    /// The dataset (pixel) does not exist or the token may not use it
    /// (100, 803, 10, 200–299): it is not shared with the token's user.
    Dataset,
}

impl Refusal {
    /// Which refusal Meta's error `code` is, if it is one.
    pub fn of_code(code: Option<i64>) -> Option<Refusal> {
        match code? {
            190 | 102 | 463 | 467 => Some(Refusal::Token),
            100 | 803 | 10 | 200..=299 => Some(Refusal::Dataset),
            _ => None,
        }
    }

    /// What the business has to do, for people.
    pub fn what_to_do(self) -> &'static str {
        match self {
            Refusal::Token => {
                "issue a new access token (Meta Business Settings → System users) and store it for this ad account or user account"
            }
            Refusal::Dataset => {
                "share the dataset with the token's system user (Events Manager → dataset → Settings → Share), or set the direction's pixel to a dataset the token can use"
            }
        }
    }
}

/// What an answer means for the events in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Try again on the retry schedule: 5xx, 408, timeouts, codes 1, 2, 341, 368, 21009, `is_transient`.
    Transient,
    /// Rate limited (4, 17, 613, 80000–80014): back off longer, for this ad account only.
    Throttled,
    /// The request is invalid (code 100 and other 4xx): one bad event rejects the
    /// whole batch, so a batch is split to find it; a single event is an error.
    Invalid,
    /// Token or permission problems (190, 10, 200–299, 3): retrying cannot help.
    Permanent,
}

pub fn verdict(http_status: Option<u16>, error: Option<&MetaError>) -> Verdict {
    let Some(status) = http_status else {
        return Verdict::Transient; // no answer at all
    };
    if let Some(e) = error {
        match e.code {
            Some(4 | 17 | 613 | 80000..=80014) => return Verdict::Throttled,
            Some(1 | 2 | 341 | 368 | 21009) => return Verdict::Transient,
            _ if e.is_transient => return Verdict::Transient,
            Some(190 | 10 | 3 | 200..=299) => return Verdict::Permanent,
            Some(100) => return Verdict::Invalid,
            _ => {}
        }
    }
    match crate::http_policy::classify(status) {
        Class::Success if error.is_none() => Verdict::Accepted,
        Class::Throttled => Verdict::Throttled,
        Class::Transient => Verdict::Transient,
        // Meta names token and permission problems by code (above); a bare
        // 4xx, or a 2xx carrying an error, is an invalid request.
        Class::Success | Class::Permanent | Class::Auth => Verdict::Invalid,
    }
}

/// The wait before attempt `attempt + 1` (attempt counts from 1), from a
/// schedule, spread by ±`jitter` (0.2 = ±20 %) using `random` in [0, 1).
/// `None` once the schedule is exhausted.
pub fn retry_delay_ms(schedule_ms: &[u64], attempt: u32, jitter: f64, random: f64) -> Option<u64> {
    let base = *schedule_ms.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
    let factor = 1.0 + jitter * (2.0 * random - 1.0);
    Some((base as f64 * factor).round().max(0.0) as u64)
}

/// What to do after the WhatsApp Cloud API refused a message (its own
/// codes beside the Graph ones above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendVerdict {
    /// Rate limits and Meta's own trouble: the same message may go later.
    Retry,
    /// More than 24 hours since the customer wrote (131047): only a
    /// template may go; the reply is dropped, not retried.
    OutsideWindow,
    /// The request, the token or the recipient is wrong: retrying repeats it.
    Reject,
}

/// Classifies a refusal by HTTP status and Graph error code
/// (developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes).
pub fn send_verdict(http_status: u16, code: Option<i64>) -> SendVerdict {
    match code {
        Some(131047) => SendVerdict::OutsideWindow,
        // API unknown/service, app and WABA rate limits, throughput, pair
        // rate limit, service unavailable, "something went wrong".
        Some(1 | 2 | 4 | 80007 | 130429 | 131000 | 131016 | 131056 | 133004) => SendVerdict::Retry,
        Some(_) if http_status < 500 && http_status != 429 => SendVerdict::Reject,
        _ if http_status >= 500 || http_status == 429 || http_status == 408 => SendVerdict::Retry,
        _ => SendVerdict::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn refusals_are_retried_only_when_meta_or_a_limit_is_the_cause() {
        assert_eq!(send_verdict(400, Some(131047)), SendVerdict::OutsideWindow);
        assert_eq!(send_verdict(400, Some(130429)), SendVerdict::Retry);
        assert_eq!(send_verdict(400, Some(131056)), SendVerdict::Retry);
        assert_eq!(send_verdict(500, Some(131000)), SendVerdict::Retry);
        assert_eq!(send_verdict(503, None), SendVerdict::Retry);
        assert_eq!(send_verdict(429, None), SendVerdict::Retry);
        assert_eq!(send_verdict(401, Some(190)), SendVerdict::Reject);
        assert_eq!(send_verdict(400, Some(131026)), SendVerdict::Reject);
        assert_eq!(send_verdict(400, Some(100)), SendVerdict::Reject);
        assert_eq!(send_verdict(404, None), SendVerdict::Reject);
    }

    fn err(code: i64, transient: bool) -> MetaError {
        MetaError::from_body(
            &json!({"error": {"message": "m", "code": code, "is_transient": transient}}),
        )
        .expect("error")
    }

    #[test]
    fn answers_are_classified_as_the_research_says() {
        assert_eq!(verdict(Some(200), None), Verdict::Accepted);
        assert_eq!(verdict(None, None), Verdict::Transient);
        assert_eq!(verdict(Some(503), None), Verdict::Transient);
        assert_eq!(verdict(Some(500), Some(&err(1, false))), Verdict::Transient);
        assert_eq!(verdict(Some(400), Some(&err(2, false))), Verdict::Transient);
        assert_eq!(
            verdict(Some(400), Some(&err(100, true))),
            Verdict::Transient
        );
        for code in [4, 17, 613, 80000, 80004, 80014] {
            assert_eq!(
                verdict(Some(400), Some(&err(code, false))),
                Verdict::Throttled,
                "code {code}"
            );
        }
        assert_eq!(verdict(Some(429), None), Verdict::Throttled);
        assert_eq!(verdict(Some(400), Some(&err(100, false))), Verdict::Invalid);
        for code in [190, 10, 200, 299] {
            assert_eq!(
                verdict(Some(400), Some(&err(code, false))),
                Verdict::Permanent,
                "code {code}"
            );
        }
    }

    #[test]
    fn retry_delays_follow_the_schedule_with_bounded_jitter() {
        let schedule = [5_000, 30_000, 120_000];
        assert_eq!(retry_delay_ms(&schedule, 1, 0.2, 0.5), Some(5_000));
        assert_eq!(retry_delay_ms(&schedule, 2, 0.2, 0.0), Some(24_000));
        assert_eq!(retry_delay_ms(&schedule, 3, 0.2, 0.999_999), Some(144_000));
        assert_eq!(retry_delay_ms(&schedule, 4, 0.2, 0.5), None);
        assert_eq!(retry_delay_ms(&schedule, 0, 0.2, 0.5), None);
    }
}
