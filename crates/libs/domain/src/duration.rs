//! Durations as people write them in settings: "250ms", "5s", "2m", "1h".

use std::time::Duration;

/// "500ms", "5s", "2m", "1h" → duration (a bare number is seconds).
pub fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("'{s}' does not start with a number"))?;
    let secs = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("'{s}' is too long"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" | "" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86_400),
        other => Err(format!("'{s}': unknown unit '{other}' (ms, s, m, h, d)")),
    }
}

/// "90d" (or "2160h") → 90: a whole number of days, for retention windows.
pub fn parse_days(s: &str) -> Result<i32, String> {
    let d = parse(s)?;
    if d.as_secs() % 86_400 != 0 || d.subsec_nanos() != 0 {
        return Err(format!(
            "'{}' is not a whole number of days (e.g. 90d)",
            s.trim()
        ));
    }
    i32::try_from(d.as_secs() / 86_400).map_err(|_| format!("'{}' is too long", s.trim()))
}

/// For settings fields: `#[serde(deserialize_with = "domain::duration::deserialize")]`
/// reads "10s"-style text.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// "1s,30s,2m" → the waits of a retry schedule (empty parts ignored).
pub fn parse_schedule(s: &str) -> Result<Vec<Duration>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(parse)
        .collect()
}

/// For schedule fields: `#[serde(deserialize_with = "domain::duration::deserialize_schedule")]`
/// reads "1s,30s,2m".
pub fn deserialize_schedule<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<Duration>, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse_schedule(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_windows_are_whole_days() {
        assert_eq!(parse_days("90d"), Ok(90));
        assert_eq!(parse_days("48h"), Ok(2));
        assert_eq!(
            parse_days("36h"),
            Err("'36h' is not a whole number of days (e.g. 90d)".into())
        );
        assert_eq!(
            parse_days("90 days"),
            Err("'90 days': unknown unit ' days' (ms, s, m, h, d)".into())
        );
        assert!(parse_days("99999999999999d").is_err());
    }

    #[test]
    fn a_schedule_is_its_parts_and_a_bad_part_is_an_error() {
        assert_eq!(
            parse_schedule("1s, 2m,"),
            Ok(vec![Duration::from_secs(1), Duration::from_secs(120)])
        );
        assert!(parse_schedule("1s,soon").is_err());
        assert_eq!(parse_schedule(""), Ok(vec![]));
    }

    #[test]
    fn units_scale_and_overflow_is_an_error() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse(" 90s "), Ok(Duration::from_secs(90)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("7"), Ok(Duration::from_secs(7)));
        assert!(parse("99999999999999999h").is_err());
        assert!(parse("5 days").is_err());
    }
}
