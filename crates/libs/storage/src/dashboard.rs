//! Dashboard sign-ins and sessions (reports). A sign-in link is used once
//! (its nonce is kept until the link would have expired); a session is a row
//! keyed by the SHA-256 of the cookie's token; every account has a
//! generation, and a revoke bumps it, ending its sessions and its links not
//! yet used, at once and for that account alone.

use crate::schema::{dashboard_sessions, dashboard_sign_ins, user_accounts};
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use domain::{api_key::Role, ids::UserAccountId};

/// A link the dashboard was shown, as it was verified.
pub struct SignIn<'a> {
    pub account: UserAccountId,
    pub generation: i32,
    pub nonce: &'a str,
    pub link_expires_at: DateTime<Utc>,
    /// The new session's token hash and expiry.
    pub session_hash: &'a str,
    pub session_expires_at: DateTime<Utc>,
    /// What the session may do, and the link's public name (audit trail).
    pub role: Role,
    pub link_id: &'a str,
}

/// A live session: whose, what it may do, the link that opened it.
#[derive(Debug, Clone, PartialEq, Eq, diesel::Queryable)]
pub struct Session {
    pub account: UserAccountId,
    pub role: Role,
    pub link_id: String,
}

/// What became of a sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInOutcome {
    SignedIn,
    /// The link was used before.
    AlreadyUsed,
    /// The account's sessions were revoked after the link was made, or the
    /// account is gone.
    Revoked,
}

/// The account's dashboard generation (`None`: no such account).
pub async fn generation(
    conn: &mut AsyncPgConnection,
    account: UserAccountId,
) -> Result<Option<i32>, diesel::result::Error> {
    use user_accounts::dsl as u;
    u::user_accounts
        .filter(u::id.eq(account))
        .select(u::dashboard_generation)
        .get_result(conn)
        .await
        .optional()
}

/// Uses the link and opens the session, in one transaction: of two
/// browsers opening the same link, one signs in.
pub async fn sign_in(
    conn: &mut AsyncPgConnection,
    s: &SignIn<'_>,
) -> Result<SignInOutcome, diesel::result::Error> {
    conn.transaction(async |c| {
        use dashboard_sessions::dsl as ds;
        use dashboard_sign_ins::dsl as si;
        // Housekeeping: what has expired is of no use to anyone.
        diesel::delete(si::dashboard_sign_ins.filter(si::expires_at.lt(diesel::dsl::now)))
            .execute(c)
            .await?;
        diesel::delete(ds::dashboard_sessions.filter(ds::expires_at.lt(diesel::dsl::now)))
            .execute(c)
            .await?;
        // The account's row, locked: a revoke waits for this sign-in, or
        // this sign-in sees the revoke.
        let current: Option<i32> = {
            use user_accounts::dsl as u;
            u::user_accounts
                .filter(u::id.eq(s.account))
                .select(u::dashboard_generation)
                .for_update()
                .get_result(c)
                .await
                .optional()?
        };
        if current != Some(s.generation) {
            return Ok(SignInOutcome::Revoked);
        }
        let used = diesel::insert_into(si::dashboard_sign_ins)
            .values((
                si::nonce.eq(s.nonce),
                si::user_account_id.eq(s.account),
                si::expires_at.eq(s.link_expires_at),
            ))
            .on_conflict_do_nothing()
            .execute(c)
            .await?;
        if used == 0 {
            return Ok(SignInOutcome::AlreadyUsed);
        }
        diesel::insert_into(ds::dashboard_sessions)
            .values((
                ds::token_hash.eq(s.session_hash),
                ds::user_account_id.eq(s.account),
                ds::generation.eq(s.generation),
                ds::expires_at.eq(s.session_expires_at),
                ds::role.eq(s.role),
                ds::link_id.eq(s.link_id),
            ))
            .execute(c)
            .await?;
        Ok(SignInOutcome::SignedIn)
    })
    .await
}

/// A live session (not expired, of the account's current generation).
pub async fn session(
    conn: &mut AsyncPgConnection,
    session_hash: &str,
) -> Result<Option<Session>, diesel::result::Error> {
    use dashboard_sessions::dsl as ds;
    use user_accounts::dsl as u;
    ds::dashboard_sessions
        .inner_join(u::user_accounts)
        .filter(ds::token_hash.eq(session_hash))
        .filter(ds::expires_at.gt(diesel::dsl::now))
        .filter(ds::generation.eq(u::dashboard_generation))
        .select((ds::user_account_id, ds::role, ds::link_id))
        .get_result(conn)
        .await
        .optional()
}

/// Ends one session (sign-out); false when it was not open.
pub async fn end_session(
    conn: &mut AsyncPgConnection,
    session_hash: &str,
) -> Result<bool, diesel::result::Error> {
    use dashboard_sessions::dsl as ds;
    let n = diesel::delete(ds::dashboard_sessions.filter(ds::token_hash.eq(session_hash)))
        .execute(conn)
        .await?;
    Ok(n > 0)
}

/// Ends every session of the account and every link of it not yet used:
/// its new generation and how many sessions were open (`None`: no such
/// account).
pub async fn revoke(
    conn: &mut AsyncPgConnection,
    account: UserAccountId,
) -> Result<Option<(i32, usize)>, diesel::result::Error> {
    conn.transaction(async |c| {
        use dashboard_sessions::dsl as ds;
        use user_accounts::dsl as u;
        let Some(generation) = diesel::update(u::user_accounts.filter(u::id.eq(account)))
            .set(u::dashboard_generation.eq(u::dashboard_generation + 1))
            .returning(u::dashboard_generation)
            .get_result::<i32>(c)
            .await
            .optional()?
        else {
            return Ok(None);
        };
        let expiries: Vec<DateTime<Utc>> =
            diesel::delete(ds::dashboard_sessions.filter(ds::user_account_id.eq(account)))
                .returning(ds::expires_at)
                .get_results(c)
                .await?;
        let now = Utc::now();
        Ok(Some((
            generation,
            expiries.iter().filter(|e| **e > now).count(),
        )))
    })
    .await
}
