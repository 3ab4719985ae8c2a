//! Query and path parameters, checked by hand so that every refusal is a
//! 400 `{code: "bad_parameter", message}` whose message names the parameter.

use chrono::NaiveDate;
use runtime::ApiError;
use std::collections::HashMap;
use uuid::Uuid;

/// The longest range the API answers for.
pub const MAX_RANGE_DAYS: i64 = 366;
/// Days shown when no range is given: the last 30 including today.
pub const DEFAULT_RANGE_DAYS: i64 = 30;

pub fn bad(parameter: &str, why: &str) -> ApiError {
    ApiError::new(
        runtime::ErrorCode::BadParameter,
        format!("{parameter}: {why}"),
    )
}

pub struct Params(pub HashMap<String, String>);

impl Params {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn uuid(&self, name: &str) -> Result<Uuid, ApiError> {
        let v = self.get(name).ok_or_else(|| bad(name, "required"))?;
        parse_uuid(name, v)
    }

    pub fn date(&self, name: &str) -> Result<Option<NaiveDate>, ApiError> {
        self.get(name)
            .map(|v| {
                let d = NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .map_err(|_| bad(name, "expected a date YYYY-MM-DD"))?;
                in_range(d).ok_or_else(|| {
                    bad(
                        name,
                        &format!("expected a date from {FIRST_DATE} to {LAST_DATE}"),
                    )
                })
            })
            .transpose()
    }

    pub fn required_date(&self, name: &str) -> Result<NaiveDate, ApiError> {
        self.date(name)?
            .ok_or_else(|| bad(name, "required (YYYY-MM-DD)"))
    }

    pub fn int(&self, name: &str, default: i64, min: i64, max: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|n| (min..=max).contains(n))
                .ok_or_else(|| {
                    bad(
                        name,
                        &format!("expected a whole number from {min} to {max}"),
                    )
                }),
        }
    }
}

/// Dates outside these are refused: far enough for any report, and near
/// enough that a range's arithmetic cannot overflow (chrono's dates end at
/// year ±262,143).
pub const FIRST_DATE: &str = "1970-01-01";
pub const LAST_DATE: &str = "9999-12-31";

/// `d`, if it is within `FIRST_DATE..=LAST_DATE`.
pub fn in_range(d: NaiveDate) -> Option<NaiveDate> {
    let first = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let last = NaiveDate::from_ymd_opt(9999, 12, 31)?;
    (first..=last).contains(&d).then_some(d)
}

pub fn parse_uuid(name: &str, v: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v).map_err(|_| bad(name, "expected a UUID"))
}

/// A range as given (either end may be missing); checked before the
/// defaults, which need the account's today, are filled in.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    pub since: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
}

impl Range {
    pub fn from(p: &Params) -> Result<Range, ApiError> {
        let r = Range {
            since: p.date("since")?,
            until: p.date("until")?,
        };
        if let (Some(s), Some(u)) = (r.since, r.until) {
            check(s, u)?;
        }
        Ok(r)
    }

    /// Fills the missing ends: `until` today, `since` 29 days before `until`.
    pub fn resolve(self, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), ApiError> {
        let until = self.until.unwrap_or(today);
        let since = self
            .since
            .unwrap_or(until - chrono::Duration::days(DEFAULT_RANGE_DAYS - 1));
        check(since, until)?;
        Ok((since, until))
    }
}

fn check(since: NaiveDate, until: NaiveDate) -> Result<(), ApiError> {
    if until < since {
        return Err(bad("until", "is before since"));
    }
    if (until - since).num_days() + 1 > MAX_RANGE_DAYS {
        return Err(bad(
            "since",
            &format!("the range since..until is longer than {MAX_RANGE_DAYS} days"),
        ));
    }
    Ok(())
}

/// The ads table's `group`, `sort` and `order`; anything unknown is a 400.
pub fn ads_view(p: &Params) -> Result<crate::ads::View, ApiError> {
    use crate::ads::{Group, Sort, View};
    let default = View::default();
    let group = match p.get("group") {
        None => default.group,
        Some(g) => {
            Group::parse(g).ok_or_else(|| bad("group", &format!("expected {}", Group::NAMES)))?
        }
    };
    let sort = match p.get("sort") {
        None => default.sort,
        Some(s) => Sort::parse(s).ok_or_else(|| {
            let names: Vec<&str> = Sort::ALL.iter().map(|(n, _)| *n).collect();
            bad("sort", &format!("expected one of {}", names.join(", ")))
        })?,
    };
    let descending = match p.get("order") {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(_) => return Err(bad("order", "expected asc or desc")),
    };
    Ok(View {
        group,
        sort,
        descending,
    })
}
