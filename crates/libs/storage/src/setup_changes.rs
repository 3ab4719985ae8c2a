//! The audit trail of set-up changes (`setup_changes`): one row per change
//! made from the dashboard's set-up pages or the `capi` CLI, with who made
//! it, what it touched and the settings before and after. Callers never
//! pass a secret's value: a secret appears as "set"/"unset".

use crate::schema::setup_changes;
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, QueryDsl, Queryable};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::UserAccountId;
use serde::Serialize;
use serde_json::Value;

/// One change, as recorded.
pub struct NewChange<'a> {
    pub account: Option<UserAccountId>,
    /// `cli:<user>` or `link:<link id>`.
    pub actor: &'a str,
    /// e.g. `direction.update`.
    pub action: &'a str,
    /// What it touched, e.g. `direction 6f…` or `instance clinic`.
    pub target: &'a str,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

pub async fn record(
    conn: &mut AsyncPgConnection,
    c: &NewChange<'_>,
) -> Result<i64, diesel::result::Error> {
    use setup_changes::dsl as s;
    diesel::insert_into(s::setup_changes)
        .values((
            s::user_account_id.eq(c.account),
            s::actor.eq(c.actor),
            s::action.eq(c.action),
            s::target.eq(c.target),
            s::before.eq(c.before),
            s::after.eq(c.after),
        ))
        .returning(s::id)
        .get_result(conn)
        .await
}

#[derive(Debug, Clone, Serialize, Queryable)]
pub struct ChangeRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub user_account_id: Option<UserAccountId>,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// The newest `limit` changes, newest first; of one account when given.
pub async fn list(
    conn: &mut AsyncPgConnection,
    account: Option<UserAccountId>,
    limit: i64,
) -> Result<Vec<ChangeRow>, diesel::result::Error> {
    use setup_changes::dsl as s;
    let mut q = s::setup_changes
        .select((
            s::id,
            s::at,
            s::user_account_id,
            s::actor,
            s::action,
            s::target,
            s::before,
            s::after,
        ))
        .order((s::at.desc(), s::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some(a) = account {
        q = q.filter(s::user_account_id.eq(a));
    }
    q.load(conn).await
}
