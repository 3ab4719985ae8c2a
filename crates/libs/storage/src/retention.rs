//! Retention: what customers wrote is kept for the account's window
//! (`user_accounts.retain_messages_days`, `retain_crm_bodies_days`), then
//! blanked — message texts (customer, operator, bot) and the bot's reply
//! texts by their age, CRM change bodies once evaluated and past theirs.
//! Rows stay: counts, levels, events and reports do not change.
//!
//! The sweep goes one scope at a time (a WhatsApp number, a CRM connection:
//! each has one window) and one small batch per transaction. A replica
//! takes a scope with a session advisory lock and skips the scopes another
//! holds, so replicas sweeping together split the work instead of waiting
//! on each other; a writer that touches a row being blanked (a merge moving
//! messages) waits at most one batch's few milliseconds.
//!
//! Message texts, the bulk, are blanked by arrival (`received_at`: a text
//! is kept N days from when it reached us, so at least N days from when it
//! was written) in order, from where the scope's last pass ended
//! (`retention_marks`), so a pass reads only what arrived since, never the
//! years already blank. The index behind it has no `text` predicate, so
//! blanking is an in-place (HOT) update that touches no index.

use crate::PreparedExt;
use diesel::{
    QueryableByName,
    sql_types::{BigInt, Integer, Text},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

/// The window of a number nobody maps to an account any more (the
/// `retain_messages_days` column's default).
pub const DEFAULT_MESSAGE_DAYS: i32 = 90;

/// What one batch blanks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `dialog_messages.text`, by `received_at`; scope: the number (instance).
    Messages,
    /// `bot_replies.reply_text`, by `created_at`; scope: the number.
    BotReplies,
    /// `crm_changes.change` (to `{}`) once evaluated, by `received_at`;
    /// scope: the CRM connection.
    CrmBodies,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Messages, Kind::BotReplies, Kind::CrmBodies];

    /// The metric label and log name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Messages => "messages",
            Kind::BotReplies => "bot_replies",
            Kind::CrmBodies => "crm_bodies",
        }
    }

    /// Every scope with its window in days (for numbers, `$1` is the
    /// window of one no account maps).
    fn scopes_sql(self) -> &'static str {
        match self {
            // SQL: the instances dialogs exist for, found by skipping along
            // the (instance_name, contact_key) index (one probe per
            // instance, not a scan), with their account's window.
            Kind::Messages | Kind::BotReplies => {
                "WITH RECURSIVE i AS ( \
                   SELECT min(instance_name) AS name FROM dialog_analysis \
                   UNION ALL \
                   SELECT (SELECT min(instance_name) FROM dialog_analysis WHERE instance_name > i.name) \
                   FROM i WHERE i.name IS NOT NULL) \
                 SELECT i.name AS scope, COALESCE(u.retain_messages_days, $1) AS days \
                 FROM i LEFT JOIN whatsapp_phone_numbers w ON w.instance_name = i.name \
                 LEFT JOIN user_accounts u ON u.id = w.user_account_id \
                 WHERE i.name IS NOT NULL ORDER BY 1"
            }
            Kind::CrmBodies => {
                "SELECT c.id::text AS scope, u.retain_crm_bodies_days AS days \
                 FROM crm_connections c JOIN user_accounts u ON u.id = c.user_account_id ORDER BY 1"
            }
        }
    }

    /// Blanks up to `$3` rows of scope `$1` older than `$2` days.
    fn batch_sql(self) -> &'static str {
        match self {
            // SQL: (instance_name, received_at) walked from the scope's mark
            // (less an hour: a writer's transaction that began before the
            // mark moved commits inside it), oldest first. FOR UPDATE without
            // SKIP LOCKED: a row a writer holds is waited for, not passed,
            // so everything before the batch's last arrival is blank and the
            // mark may move there.
            Kind::Messages => {
                "WITH mark AS ( \
                   SELECT COALESCE((SELECT blank_before - interval '1 hour' FROM retention_marks \
                                    WHERE kind = 'messages' AND scope = $1), '-infinity') AS since), \
                 due AS ( \
                   SELECT m.id, m.received_at FROM dialog_messages m, mark \
                   WHERE m.instance_name = $1 AND m.received_at >= mark.since \
                     AND m.received_at < now() - make_interval(days => $2) AND m.text IS NOT NULL \
                   ORDER BY m.received_at LIMIT $3 FOR UPDATE OF m), \
                 blanked AS ( \
                   UPDATE dialog_messages m SET text = NULL FROM due WHERE m.id = due.id \
                   RETURNING due.received_at), \
                 moved AS ( \
                   INSERT INTO retention_marks (kind, scope, blank_before) \
                   SELECT 'messages', $1, max(received_at) FROM blanked HAVING count(*) > 0 \
                   ON CONFLICT (kind, scope) DO UPDATE \
                     SET blank_before = GREATEST(retention_marks.blank_before, EXCLUDED.blank_before)) \
                 SELECT count(*) AS n FROM blanked"
            }
            Kind::BotReplies => {
                "WITH due AS ( \
                   SELECT b.id FROM bot_replies b JOIN dialog_analysis d ON d.id = b.dialog_id \
                   WHERE d.instance_name = $1 AND b.reply_text IS NOT NULL \
                     AND b.created_at < now() - make_interval(days => $2) \
                   ORDER BY b.created_at LIMIT $3 FOR UPDATE OF b SKIP LOCKED) \
                 UPDATE bot_replies b SET reply_text = NULL FROM due WHERE b.id = due.id"
            }
            // A change not evaluated yet (its CRM was rate-limited or
            // down) is work still to do: kept whatever its age.
            Kind::CrmBodies => {
                "WITH due AS ( \
                   SELECT id FROM crm_changes \
                   WHERE connection_id = $1::uuid AND change <> '{}'::jsonb AND evaluated_at IS NOT NULL \
                     AND received_at < now() - make_interval(days => $2) \
                   ORDER BY received_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
                 UPDATE crm_changes ch SET change = '{}'::jsonb FROM due WHERE ch.id = due.id"
            }
        }
    }
}

/// Rows a batch blanked.
#[derive(QueryableByName)]
struct Blanked {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// A number or CRM connection, with its window.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Scope {
    /// The instance name, or the CRM connection's id.
    #[diesel(sql_type = Text)]
    pub scope: String,
    #[diesel(sql_type = Integer)]
    pub days: i32,
}

/// Every scope `kind` is swept in, with its window.
pub async fn scopes(
    conn: &mut AsyncPgConnection,
    kind: Kind,
) -> Result<Vec<Scope>, diesel::result::Error> {
    let query = diesel::sql_query(kind.scopes_sql());
    match kind {
        Kind::CrmBodies => query.prepared().load(conn).await,
        Kind::Messages | Kind::BotReplies => {
            query
                .bind::<Integer, _>(DEFAULT_MESSAGE_DAYS)
                .prepared()
                .load(conn)
                .await
        }
    }
}

/// Blanks at most `limit` rows of `kind` in `scope` past its window (one
/// statement, its own transaction; for messages it moves the scope's mark
/// too); returns how many. Fewer than `limit`: the pass is done.
pub async fn blank_batch(
    conn: &mut AsyncPgConnection,
    kind: Kind,
    scope: &Scope,
    limit: i64,
) -> Result<usize, diesel::result::Error> {
    let query = diesel::sql_query(kind.batch_sql())
        .bind::<Text, _>(&scope.scope)
        .bind::<Integer, _>(scope.days)
        .bind::<BigInt, _>(limit)
        .prepared();
    match kind {
        Kind::Messages => {
            let b: Blanked = query.get_result(conn).await?;
            Ok(b.n as usize)
        }
        Kind::BotReplies | Kind::CrmBodies => query.execute(conn).await,
    }
}

/// A pass over `scope` found nothing more to blank: everything that arrived
/// before its window began is blank, so the next pass starts there.
async fn pass_done(
    conn: &mut AsyncPgConnection,
    kind: Kind,
    scope: &Scope,
) -> Result<(), diesel::result::Error> {
    if kind != Kind::Messages {
        return Ok(());
    }
    diesel::sql_query(
        "INSERT INTO retention_marks (kind, scope, blank_before) \
         VALUES ('messages', $1, now() - make_interval(days => $2)) \
         ON CONFLICT (kind, scope) DO UPDATE \
           SET blank_before = GREATEST(retention_marks.blank_before, EXCLUDED.blank_before)",
    )
    .bind::<Text, _>(&scope.scope)
    .bind::<Integer, _>(scope.days)
    .prepared()
    .execute(conn)
    .await?;
    Ok(())
}

/// Takes `scope` for this connection's session unless another replica
/// sweeps it (`pg_try_advisory_lock` on the kind and the scope; released by
/// [`release`], or by the connection's end if the process dies).
async fn claim(
    conn: &mut AsyncPgConnection,
    kind: Kind,
    scope: &Scope,
) -> Result<bool, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    // SQL: the two-int advisory key space (the contact locks and the
    // migration lock use the one-bigint space, apart from this one).
    let t: Taken = diesel::sql_query(
        "SELECT pg_try_advisory_lock(hashtext('retention ' || $1), hashtext($2)) AS taken",
    )
    .bind::<Text, _>(kind.as_str())
    .bind::<Text, _>(&scope.scope)
    .prepared()
    .get_result(conn)
    .await?;
    Ok(t.taken)
}

async fn release(
    conn: &mut AsyncPgConnection,
    kind: Kind,
    scope: &Scope,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query("SELECT pg_advisory_unlock(hashtext('retention ' || $1), hashtext($2))")
        .bind::<Text, _>(kind.as_str())
        .bind::<Text, _>(&scope.scope)
        .prepared()
        .execute(conn)
        .await?;
    Ok(())
}

/// An account's windows, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Windows {
    pub messages_days: Option<i32>,
    pub crm_bodies_days: Option<i32>,
}

/// The bounds the columns' checks hold (the CLI says them before the
/// database would refuse).
pub const MESSAGE_DAYS: std::ops::RangeInclusive<i32> = 7..=3650;
pub const CRM_BODY_DAYS: std::ops::RangeInclusive<i32> = 1..=3650;

/// Sets the given windows; `false` when there is no such account.
pub async fn set_windows(
    conn: &mut AsyncPgConnection,
    account: domain::ids::UserAccountId,
    w: Windows,
) -> Result<bool, diesel::result::Error> {
    // SQL: COALESCE keeps a window not given.
    let n = diesel::sql_query(
        "UPDATE user_accounts SET retain_messages_days = COALESCE($2, retain_messages_days), \
           retain_crm_bodies_days = COALESCE($3, retain_crm_bodies_days) WHERE id = $1",
    )
    .bind::<diesel::sql_types::Uuid, _>(account)
    .bind::<diesel::sql_types::Nullable<Integer>, _>(w.messages_days)
    .bind::<diesel::sql_types::Nullable<Integer>, _>(w.crm_bodies_days)
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// What a sweep blanked, per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Swept {
    pub messages: usize,
    pub bot_replies: usize,
    pub crm_bodies: usize,
}

impl Swept {
    fn add(&mut self, kind: Kind, n: usize) {
        match kind {
            Kind::Messages => self.messages += n,
            Kind::BotReplies => self.bot_replies += n,
            Kind::CrmBodies => self.crm_bodies += n,
        }
    }

    pub fn get(&self, kind: Kind) -> usize {
        match kind {
            Kind::Messages => self.messages,
            Kind::BotReplies => self.bot_replies,
            Kind::CrmBodies => self.crm_bodies,
        }
    }
}

/// Blanks everything past its window: every kind, every scope, in batches
/// of `batch` rows with `pause` between them (room for the writers), until
/// done or `stopped()` says to give up (what is left waits for the next
/// sweep).
pub async fn sweep(
    conn: &mut AsyncPgConnection,
    batch: i64,
    pause: std::time::Duration,
    stopped: impl Fn() -> bool,
) -> Result<Swept, diesel::result::Error> {
    let mut swept = Swept::default();
    for kind in Kind::ALL {
        for scope in scopes(conn, kind).await? {
            if stopped() {
                return Ok(swept);
            }
            if !claim(conn, kind, &scope).await? {
                continue;
            }
            let pass = sweep_scope(conn, kind, &scope, batch, pause, &stopped, &mut swept).await;
            // On an error the connection may be gone, and the lock with it.
            let released = release(conn, kind, &scope).await;
            pass?;
            released?;
        }
    }
    Ok(swept)
}

/// One scope's batches until none is full (the pass is done) or `stopped()`.
async fn sweep_scope(
    conn: &mut AsyncPgConnection,
    kind: Kind,
    scope: &Scope,
    batch: i64,
    pause: std::time::Duration,
    stopped: &impl Fn() -> bool,
    swept: &mut Swept,
) -> Result<(), diesel::result::Error> {
    loop {
        let n = blank_batch(conn, kind, scope, batch).await?;
        swept.add(kind, n);
        if (n as i64) < batch {
            return pass_done(conn, kind, scope).await;
        }
        if stopped() {
            return Ok(());
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}
