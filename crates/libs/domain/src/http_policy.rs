//! One policy for every outside HTTP API we call (Meta, the model, Evolution
//! API; the CRMs, Telegram and the Cloud API as they come): what an HTTP
//! status means for the request, and how long a `Retry-After` asks us to
//! wait. Pure; the `outbound` crate applies it to reqwest.

use chrono::{DateTime, Utc};
use std::time::Duration;

crate::text_enum! {
    /// What an answer's HTTP status means for the request that got it.
    pub enum Class {
        /// 2xx: done.
        Success = "success",
        /// Worth trying again on the caller's schedule: 5xx, 408, no answer.
        Transient = "transient",
        /// 429: the API asks us to slow down; wait longer (or its `Retry-After`).
        Throttled = "throttled",
        /// Any other 4xx: the same request will fail the same way.
        Permanent = "permanent",
        /// 401, 403: our credentials are wrong or lack a permission; an
        /// operator must fix the configuration.
        Auth = "auth",
    }
}

/// The class of an HTTP status.
pub fn classify(status: u16) -> Class {
    match status {
        200..=299 => Class::Success,
        401 | 403 => Class::Auth,
        408 | 500..=599 => Class::Transient,
        429 => Class::Throttled,
        _ => Class::Permanent,
    }
}

impl Class {
    /// Trying the same request later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Class::Transient | Class::Throttled)
    }
}

/// The longest `Retry-After` honoured: a broken header must not park work for days.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A `Retry-After` value: delay seconds (`120`) or an HTTP date
/// (`Wed, 21 Oct 2015 07:28:00 GMT`), as a wait from `now`, capped at
/// [`MAX_RETRY_AFTER`]. `None` when it is neither.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = DateTime::parse_from_rfc2822(value).ok()?;
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn statuses_fall_into_one_class_each() {
        assert_eq!(classify(200), Class::Success);
        assert_eq!(classify(204), Class::Success);
        assert_eq!(classify(500), Class::Transient);
        assert_eq!(classify(503), Class::Transient);
        assert_eq!(classify(408), Class::Transient);
        assert_eq!(classify(429), Class::Throttled);
        assert_eq!(classify(401), Class::Auth);
        assert_eq!(classify(403), Class::Auth);
        assert_eq!(classify(400), Class::Permanent);
        assert_eq!(classify(404), Class::Permanent);
        assert_eq!(classify(422), Class::Permanent);
        assert!(Class::Throttled.is_retryable() && Class::Transient.is_retryable());
        assert!(!Class::Auth.is_retryable() && !Class::Permanent.is_retryable());
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_and_caps_them() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).single();
        let now = now.unwrap_or_else(Utc::now);
        assert_eq!(retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        // A date already past means "now".
        assert_eq!(
            retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }
}
