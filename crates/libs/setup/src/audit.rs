//! The audit trail: every change the operations make is recorded here, in
//! their transaction; `capi audit list` and the dashboard's audit page read
//! it back.

use crate::{Actor, Result};
use diesel_async::AsyncPgConnection;
use domain::ids::UserAccountId;
use serde::Serialize;
use serde_json::Value;
use storage::setup_changes::{self, ChangeRow, NewChange};

/// Records one change. `before`/`after` are the settings as a reader should
/// see them: callers put a secret in as [`secret_state`], never its value.
pub(crate) async fn record<B: Serialize, A: Serialize>(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    account: Option<UserAccountId>,
    action: &str,
    target: &str,
    before: Option<&B>,
    after: Option<&A>,
) -> Result<()> {
    let before = before
        .map(serde_json::to_value)
        .transpose()
        .map_err(anyhow::Error::from)?;
    let after = after
        .map(serde_json::to_value)
        .transpose()
        .map_err(anyhow::Error::from)?;
    setup_changes::record(
        conn,
        &NewChange {
            account,
            actor: &actor.to_string(),
            action,
            target,
            before: before.as_ref(),
            after: after.as_ref(),
        },
    )
    .await?;
    Ok(())
}

/// How a secret shows in the trail.
pub fn secret_state(present: bool) -> Value {
    Value::from(if present { "set" } else { "unset" })
}

/// The newest changes (of one account when given), newest first.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account: Option<UserAccountId>,
    limit: i64,
) -> Result<Vec<ChangeRow>> {
    Ok(setup_changes::list(conn, account, limit.clamp(1, 1000)).await?)
}

/// The keys whose values differ between `before` and `after` (objects),
/// for a one-line summary of a change.
pub fn changed_keys(before: Option<&Value>, after: Option<&Value>) -> Vec<String> {
    let empty = serde_json::Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_summary_names_what_changed_and_only_that() {
        let b = json!({"name": "A", "pixel_id": null, "ldu_enabled": false});
        let a = json!({"name": "A", "pixel_id": "123", "ldu_enabled": true});
        assert_eq!(
            changed_keys(Some(&b), Some(&a)),
            vec!["ldu_enabled", "pixel_id"]
        );
        assert_eq!(changed_keys(None, Some(&json!({"x": 1}))), vec!["x"]);
        assert!(changed_keys(Some(&a), Some(&a)).is_empty());
    }
}
