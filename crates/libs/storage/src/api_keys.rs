//! API keys of the reports API: created and revoked by the operator
//! (`capi api-key`), looked up by the SHA-256 of the presented key.

use crate::schema::api_keys;
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::UserAccountId;
use serde::Serialize;
use uuid::Uuid;

pub async fn create(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    name: &str,
    key_hash: &str,
    key_prefix: &str,
) -> Result<Uuid, diesel::result::Error> {
    use api_keys::dsl as k;
    diesel::insert_into(k::api_keys)
        .values((
            k::user_account_id.eq(account_id),
            k::name.eq(name),
            k::key_hash.eq(key_hash),
            k::key_prefix.eq(key_prefix),
        ))
        .returning(k::id)
        .get_result(conn)
        .await
}

/// Revokes a key; false when there is no such live key.
pub async fn revoke(conn: &mut AsyncPgConnection, id: Uuid) -> Result<bool, diesel::result::Error> {
    use api_keys::dsl as k;
    let n = diesel::update(
        k::api_keys
            .filter(k::id.eq(id))
            .filter(k::revoked_at.is_null()),
    )
    .set(k::revoked_at.eq(diesel::dsl::now))
    .execute(conn)
    .await?;
    Ok(n == 1)
}

#[derive(Debug, Clone, Serialize, diesel::Queryable)]
pub struct ApiKeyRow {
    pub id: Uuid,
    pub name: String,
    pub key_prefix: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
) -> Result<Vec<ApiKeyRow>, diesel::result::Error> {
    use api_keys::dsl as k;
    k::api_keys
        .filter(k::user_account_id.eq(account_id))
        .order(k::created_at)
        .select((
            k::id,
            k::name,
            k::key_prefix,
            k::created_at,
            k::revoked_at,
            k::last_used_at,
        ))
        .load(conn)
        .await
}

/// The account of a live key, noting its use (at most once a minute, so
/// reads do not turn into a write each).
pub async fn authenticate(
    conn: &mut AsyncPgConnection,
    key_hash: &str,
) -> Result<Option<UserAccountId>, diesel::result::Error> {
    use api_keys::dsl as k;
    let found: Option<(Uuid, UserAccountId, Option<DateTime<Utc>>)> = k::api_keys
        .filter(k::key_hash.eq(key_hash))
        .filter(k::revoked_at.is_null())
        .select((k::id, k::user_account_id, k::last_used_at))
        .first(conn)
        .await
        .optional()?;
    let Some((id, account, last_used)) = found else {
        return Ok(None);
    };
    if last_used.is_none_or(|t| Utc::now() - t > chrono::Duration::minutes(1)) {
        diesel::update(k::api_keys.filter(k::id.eq(id)))
            .set(k::last_used_at.eq(diesel::dsl::now))
            .execute(conn)
            .await?;
    }
    Ok(Some(account))
}
