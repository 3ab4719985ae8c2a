//! The daily conversation report: what an account's day holds (counted in
//! the account's time zone), the stored report (one row per account and
//! day: the guard that makes generation happen once whatever the number of
//! replicas), and its delivery to Telegram (a lease per report; parts
//! counted so a retry resumes after the last part that went out).

use crate::{
    PreparedExt,
    schema::{conversation_reports, user_accounts},
};
use chrono::{DateTime, NaiveDate, Utc};
use diesel::{
    BoolExpressionMethods, ExpressionMethods, OptionalExtension, QueryDsl, QueryableByName,
    sql_types::{BigInt, Bool, Date, Int2, Int4, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::{DirectionId, UserAccountId};
use domain::{
    account::ReportLanguage,
    report::{
        CapiDistribution, DailyReport, DirectionDay, GroupCounts, InterestDistribution,
        TelegramStatus,
    },
};
use uuid::Uuid;

/// An account as the report needs it.
#[derive(Debug, Clone)]
pub struct ReportAccount {
    pub id: UserAccountId,
    pub name: String,
    pub language: ReportLanguage,
    pub timezone: String,
    pub telegram_configured: bool,
}

pub async fn account(
    conn: &mut AsyncPgConnection,
    id: UserAccountId,
) -> Result<Option<ReportAccount>, diesel::result::Error> {
    use user_accounts::dsl as u;
    type Row = (
        UserAccountId,
        String,
        ReportLanguage,
        String,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = u::user_accounts
        .filter(u::id.eq(id))
        .select((
            u::id,
            u::name,
            u::report_language,
            u::timezone,
            u::telegram_bot_token,
            u::telegram_chat_id,
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(
        |(id, name, language, timezone, token, chat)| ReportAccount {
            id,
            name,
            language,
            timezone,
            telegram_configured: token.is_some() && chat.is_some(),
        },
    ))
}

/// True when PostgreSQL knows the IANA time zone name.
pub async fn is_time_zone(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<bool, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Found {
        #[diesel(sql_type = Bool)]
        found: bool,
    }
    // SQL: a lookup in the pg_timezone_names view, which diesel's schema does not describe.
    let f: Found = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1) AS found",
    )
    .bind::<Text, _>(name)
    .get_result(conn)
    .await?;
    Ok(f.found)
}

#[derive(QueryableByName)]
struct GroupRow {
    #[diesel(sql_type = Nullable<SqlUuid>)]
    direction_id: Option<DirectionId>,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = BigInt)]
    new: i64,
    #[diesel(sql_type = BigInt)]
    hot: i64,
    #[diesel(sql_type = BigInt)]
    warm: i64,
    #[diesel(sql_type = BigInt)]
    cold: i64,
    #[diesel(sql_type = BigInt)]
    incoming: i64,
    #[diesel(sql_type = BigInt)]
    outgoing: i64,
    #[diesel(sql_type = BigInt)]
    response_ms_sum: i64,
    #[diesel(sql_type = BigInt)]
    responses: i64,
}

/// `day_groups`: $1 account, $2 local day, $3 time zone (public for `EXPLAIN` in the benchmark).
pub const DAY_GROUPS_SQL: &str = "WITH b AS (SELECT ($2::date::timestamp AT TIME ZONE $3) AS day_start, \
                           (($2::date + 1)::timestamp AT TIME ZONE $3) AS day_end), \
         cand AS ( \
           SELECT da.id, da.direction_id AS dir, da.first_message, da.interest_level \
           FROM account_directions ad JOIN dialog_analysis da ON da.direction_id = ad.id, b \
           WHERE ad.user_account_id = $1 AND da.last_message >= b.day_start \
           UNION ALL \
           SELECT da.id, w.direction_id, da.first_message, da.interest_level \
           FROM whatsapp_phone_numbers w \
           JOIN dialog_analysis da ON da.instance_name = w.instance_name AND da.direction_id IS NULL, b \
           WHERE w.user_account_id = $1 AND da.last_message >= b.day_start), \
         per AS ( \
           SELECT c.dir, c.first_message >= b.day_start AS is_new, c.interest_level, m.* \
           FROM cand c CROSS JOIN b CROSS JOIN LATERAL ( \
             SELECT count(*) FILTER (WHERE NOT r.from_me) AS incoming, \
                    count(*) FILTER (WHERE r.from_me) AS outgoing, \
                    coalesce(sum(r.wait_ms), 0)::bigint AS response_ms_sum, \
                    count(r.wait_ms) AS responses \
             FROM ( \
               SELECT g.from_me, CASE WHEN g.from_me THEN (extract(epoch FROM g.sent_at \
                        - min(g.sent_at) FILTER (WHERE NOT g.from_me) OVER (PARTITION BY g.grp)) * 1000)::bigint END AS wait_ms \
               FROM ( \
                 SELECT dm.from_me, dm.sent_at, count(*) FILTER (WHERE dm.from_me) \
                          OVER (ORDER BY dm.sent_at, dm.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS grp \
                 FROM dialog_messages dm \
                 WHERE dm.dialog_id = c.id AND dm.sent_at >= b.day_start AND dm.sent_at < b.day_end) g) r) m \
           WHERE m.incoming + m.outgoing > 0) \
         SELECT dir AS direction_id, count(*) AS total, count(*) FILTER (WHERE is_new) AS new, \
                count(*) FILTER (WHERE interest_level = 'hot') AS hot, \
                count(*) FILTER (WHERE interest_level = 'warm') AS warm, \
                count(*) FILTER (WHERE interest_level = 'cold') AS cold, \
                coalesce(sum(incoming), 0)::bigint AS incoming, coalesce(sum(outgoing), 0)::bigint AS outgoing, \
                coalesce(sum(response_ms_sum), 0)::bigint AS response_ms_sum, \
                coalesce(sum(responses), 0)::bigint AS responses \
         FROM per GROUP BY dir";

/// What the account's dialogs did during its local day, per direction (a
/// dialog's own, else its instance's; `None`: neither). A dialog counts when
/// it has a message that day; it is new when its first message was that day.
pub async fn day_groups(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    date: NaiveDate,
    timezone: &str,
) -> Result<Vec<(Option<DirectionId>, GroupCounts)>, diesel::result::Error> {
    // SQL: the day's bounds in the account's zone (AT TIME ZONE), candidate
    // dialogs through two indexes ((direction_id, last_message) and the
    // partial one on undirected dialogs) and a LATERAL count of each
    // candidate's messages that day on (dialog_id, sent_at). Candidates are
    // only bounded by `last_message >= day start` (no bound on
    // first_message, whose index the planner would otherwise take): for the
    // daily run, yesterday, that is the few dialogs active since. A reply's
    // response time is measured from the first customer message it answers
    // (window functions: business messages so far split the dialog into
    // runs), so replies from the phone count as well as the bot's.
    let rows: Vec<GroupRow> = diesel::sql_query(DAY_GROUPS_SQL)
        .bind::<SqlUuid, _>(account_id)
        .bind::<Date, _>(date)
        .bind::<Text, _>(timezone)
        .prepared()
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (
                r.direction_id,
                GroupCounts {
                    total_dialogs: r.total,
                    new_dialogs: r.new,
                    interest: InterestDistribution {
                        hot: r.hot,
                        warm: r.warm,
                        cold: r.cold,
                    },
                    incoming_messages: r.incoming,
                    outgoing_messages: r.outgoing,
                    response_ms_sum: r.response_ms_sum,
                    responses: r.responses,
                },
            )
        })
        .collect())
}

#[derive(QueryableByName)]
struct LevelCount {
    #[diesel(sql_type = Nullable<SqlUuid>)]
    direction_id: Option<DirectionId>,
    #[diesel(sql_type = Int2)]
    event_level: i16,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// `day_capi`: $1 account, $2 local day, $3 time zone.
pub const DAY_CAPI_SQL: &str = "SELECT direction_id, event_level, count(DISTINCT event_id) AS n FROM capi_events_log \
         WHERE user_account_id = $1 AND status = 'success' \
           AND created_at >= ($2::date::timestamp AT TIME ZONE $3) \
           AND created_at < (($2::date + 1)::timestamp AT TIME ZONE $3) \
         GROUP BY direction_id, event_level";

/// Events Meta accepted during the account's local day, per direction and level.
pub async fn day_capi(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    date: NaiveDate,
    timezone: &str,
) -> Result<Vec<(Option<DirectionId>, CapiDistribution)>, diesel::result::Error> {
    // SQL: the day's bounds in the account's zone (AT TIME ZONE) over
    // capi_events_log's (user_account_id, created_at) index.
    let rows: Vec<LevelCount> = diesel::sql_query(DAY_CAPI_SQL)
        .bind::<SqlUuid, _>(account_id)
        .bind::<Date, _>(date)
        .bind::<Text, _>(timezone)
        .prepared()
        .load(conn)
        .await?;
    let mut out: Vec<(Option<DirectionId>, CapiDistribution)> = Vec::new();
    for r in rows {
        let i = match out.iter().position(|(d, _)| *d == r.direction_id) {
            Some(i) => i,
            None => {
                out.push((r.direction_id, CapiDistribution::default()));
                out.len() - 1
            }
        };
        let c = &mut out[i].1;
        match domain::level::Level::from_number(r.event_level) {
            Some(domain::level::Level::Interest) => c.interest += r.n,
            Some(domain::level::Level::Qualified) => c.qualified += r.n,
            Some(domain::level::Level::Scheduled) => c.scheduled += r.n,
            Some(domain::level::Level::Purchase) => c.purchase += r.n,
            None => {}
        }
    }
    let revenue =
        crate::analytics::revenue_by_direction(conn, account_id, date, date, timezone).await?;
    for (direction, money) in revenue {
        if let Some((_, c)) = out.iter_mut().find(|(d, _)| *d == direction) {
            domain::analytics::add_revenue(&mut c.revenue, [&money]);
        }
    }
    Ok(out)
}

/// How storing a report went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    /// Regenerated with a different content (late data); delivery untouched.
    Updated,
    Unchanged,
}

/// Stores a generated report. `replace`: a regeneration (on demand)
/// updates the text and data when they changed; the schedule only creates.
/// Delivery state is never reset: a report is sent once.
pub async fn store(
    conn: &mut AsyncPgConnection,
    account: &ReportAccount,
    report: &DailyReport,
    text: &str,
    replace: bool,
) -> Result<Stored, diesel::result::Error> {
    use conversation_reports::dsl as c;
    let directions = serde_json::to_value(&report.directions).unwrap_or_default();
    let mut stats = serde_json::to_value(report.totals).unwrap_or_default();
    if !report.top_ads.is_empty() {
        stats["top_ads"] = serde_json::to_value(&report.top_ads).unwrap_or_default();
    }
    let legacy = report
        .capi_distribution
        .as_ref()
        .map(|d| serde_json::to_value(d).unwrap_or_default());
    let status = if account.telegram_configured {
        TelegramStatus::Pending
    } else {
        TelegramStatus::NotConfigured
    };
    let inserted = diesel::insert_into(c::conversation_reports)
        .values((
            c::user_account_id.eq(account.id),
            c::report_date.eq(report.date),
            c::report_text.eq(text),
            c::stats.eq(&stats),
            c::directions_data.eq(&directions),
            c::capi_distribution.eq(&legacy),
            c::capi_source_used.eq(report.capi_source_used),
            c::capi_direction_id.eq(report.capi_direction_id),
            c::language.eq(report.language),
            c::telegram_status.eq(status),
        ))
        .on_conflict((c::user_account_id, c::report_date))
        .do_nothing()
        .execute(conn)
        .await?;
    if inserted == 1 {
        return Ok(Stored::Created);
    }
    if !replace {
        return Ok(Stored::Unchanged);
    }
    let updated = diesel::update(
        c::conversation_reports
            .filter(c::user_account_id.eq(account.id))
            .filter(c::report_date.eq(report.date))
            .filter(
                c::report_text
                    .ne(text)
                    .or(c::directions_data.ne(&directions))
                    .or(c::stats.ne(&stats))
                    .or(c::language.ne(report.language)),
            ),
    )
    .set((
        c::report_text.eq(text),
        c::stats.eq(&stats),
        c::directions_data.eq(&directions),
        c::capi_distribution.eq(&legacy),
        c::capi_source_used.eq(report.capi_source_used),
        c::capi_direction_id.eq(report.capi_direction_id),
        c::language.eq(report.language),
        c::updated_at.eq(diesel::dsl::now),
    ))
    .execute(conn)
    .await?;
    Ok(if updated == 1 {
        Stored::Updated
    } else {
        Stored::Unchanged
    })
}

/// A stored report, as the API and the CLI show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StoredReport {
    pub user_account_id: UserAccountId,
    pub report_date: NaiveDate,
    pub language: ReportLanguage,
    pub report_text: String,
    pub stats: serde_json::Value,
    pub directions_data: serde_json::Value,
    pub capi_distribution: Option<serde_json::Value>,
    pub capi_source_used: Option<bool>,
    pub capi_direction_id: Option<DirectionId>,
    pub telegram_status: TelegramStatus,
    pub telegram_parts_sent: i32,
    pub telegram_sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

type StoredRow = (
    (
        UserAccountId,
        NaiveDate,
        ReportLanguage,
        String,
        serde_json::Value,
        serde_json::Value,
    ),
    (Option<serde_json::Value>, Option<bool>, Option<DirectionId>),
    (
        TelegramStatus,
        i32,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        DateTime<Utc>,
    ),
);

pub async fn get(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    date: NaiveDate,
) -> Result<Option<StoredReport>, diesel::result::Error> {
    use conversation_reports::dsl as c;
    let row: Option<StoredRow> = c::conversation_reports
        .filter(c::user_account_id.eq(account_id))
        .filter(c::report_date.eq(date))
        .select((
            (
                c::user_account_id,
                c::report_date,
                c::language,
                c::report_text,
                c::stats,
                c::directions_data,
            ),
            (
                c::capi_distribution,
                c::capi_source_used,
                c::capi_direction_id,
            ),
            (
                c::telegram_status,
                c::telegram_parts_sent,
                c::telegram_sent_at,
                c::created_at,
                c::updated_at,
            ),
        ))
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(|(a, b, t)| StoredReport {
        user_account_id: a.0,
        report_date: a.1,
        language: a.2,
        report_text: a.3,
        stats: a.4,
        directions_data: a.5,
        capi_distribution: b.0,
        capi_source_used: b.1,
        capi_direction_id: b.2,
        telegram_status: t.0,
        telegram_parts_sent: t.1,
        telegram_sent_at: t.2,
        created_at: t.3,
        updated_at: t.4,
    }))
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = SqlUuid)]
    id: UserAccountId,
    #[diesel(sql_type = Date)]
    day: NaiveDate,
}

/// Accounts whose local clock has passed `send_after_minutes` past midnight
/// and whose local yesterday has no report yet, with that day.
pub async fn due_accounts(
    conn: &mut AsyncPgConnection,
    send_after_minutes: i32,
) -> Result<Vec<(UserAccountId, NaiveDate)>, diesel::result::Error> {
    // SQL: each account's local time (now() AT TIME ZONE its zone) compared
    // with the send time, and an anti-join on conversation_reports' unique key.
    let rows: Vec<Due> = diesel::sql_query(
        "SELECT u.id, (now() AT TIME ZONE u.timezone)::date - 1 AS day FROM user_accounts u \
         WHERE extract(hour FROM now() AT TIME ZONE u.timezone) * 60 \
               + extract(minute FROM now() AT TIME ZONE u.timezone) >= $1 \
           AND NOT EXISTS (SELECT 1 FROM conversation_reports r WHERE r.user_account_id = u.id \
                           AND r.report_date = (now() AT TIME ZONE u.timezone)::date - 1) \
         ORDER BY u.id",
    )
    .bind::<Int4, _>(send_after_minutes)
    .prepared()
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.day)).collect())
}

/// A report whose delivery this process holds the lease for. No `Debug`:
/// it carries the bot token.
#[derive(Clone, QueryableByName)]
pub struct PendingSend {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub user_account_id: UserAccountId,
    #[diesel(sql_type = Date)]
    pub report_date: NaiveDate,
    #[diesel(sql_type = Text)]
    pub report_text: String,
    #[diesel(sql_type = Int4)]
    pub parts_sent: i32,
    #[diesel(sql_type = Int4)]
    pub attempts: i32,
    /// Open with `secrets::USER_TELEGRAM_BOT_TOKEN`.
    #[diesel(sql_type = Text, deserialize_as = String)]
    pub bot_token: crate::secrets::Sealed,
    #[diesel(sql_type = Text)]
    pub chat_id: String,
}

/// A report not delivered within this many days is not sent any more
/// (e.g. Telegram was configured only later): it would be stale news.
pub const MAX_SEND_AGE_DAYS: i32 = 7;

/// Takes the oldest report due for delivery (lease `lease_secs`), if any,
/// of an account with a Telegram chat.
pub async fn claim_send(
    conn: &mut AsyncPgConnection,
    lease_secs: i32,
) -> Result<Option<PendingSend>, diesel::result::Error> {
    // SQL: FOR UPDATE SKIP LOCKED picks a report no other replica holds, and
    // the same statement takes its lease and reads the account's chat.
    diesel::sql_query(
        "WITH next AS ( \
           SELECT r.id FROM conversation_reports r JOIN user_accounts u ON u.id = r.user_account_id \
           WHERE r.telegram_status = 'pending' AND r.telegram_next_at <= now() \
             AND (r.telegram_lease_until IS NULL OR r.telegram_lease_until < now()) \
             AND r.report_date >= current_date - $2 \
             AND u.telegram_bot_token IS NOT NULL AND u.telegram_chat_id IS NOT NULL \
           ORDER BY r.telegram_next_at LIMIT 1 FOR UPDATE OF r SKIP LOCKED) \
         UPDATE conversation_reports r SET telegram_lease_until = now() + make_interval(secs => $1), \
                telegram_attempts = r.telegram_attempts + 1 \
         FROM next, user_accounts u \
         WHERE r.id = next.id AND u.id = r.user_account_id \
         RETURNING r.id, r.user_account_id, r.report_date, r.report_text, \
                   r.telegram_parts_sent AS parts_sent, r.telegram_attempts AS attempts, \
                   u.telegram_bot_token AS bot_token, u.telegram_chat_id AS chat_id",
    )
    .bind::<Int4, _>(lease_secs)
    .bind::<Int4, _>(MAX_SEND_AGE_DAYS)
    .prepared()
    .get_result(conn)
    .await
    .optional()
}

/// Part `parts_sent - 1` reached Telegram; extends the lease.
pub async fn part_sent(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    parts_sent: i32,
    total_parts: i32,
) -> Result<(), diesel::result::Error> {
    use conversation_reports::dsl as c;
    let done = parts_sent >= total_parts;
    diesel::update(c::conversation_reports.filter(c::id.eq(id)))
        .set((
            c::telegram_parts_sent.eq(parts_sent),
            c::telegram_status.eq(if done {
                TelegramStatus::Sent
            } else {
                TelegramStatus::Pending
            }),
            c::telegram_sent_at.eq(done.then(Utc::now)),
            c::telegram_error.eq(None::<String>),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Gives the delivery back, to be tried again at `next_at` (`None`: given
/// up, the report stays `failed` with the error).
pub async fn send_failed(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    next_at: Option<DateTime<Utc>>,
    error: &str,
) -> Result<(), diesel::result::Error> {
    use conversation_reports::dsl as c;
    diesel::update(c::conversation_reports.filter(c::id.eq(id)))
        .set((
            c::telegram_status.eq(if next_at.is_some() {
                TelegramStatus::Pending
            } else {
                TelegramStatus::Failed
            }),
            c::telegram_next_at.eq(next_at.unwrap_or_else(Utc::now)),
            c::telegram_lease_until.eq(None::<DateTime<Utc>>),
            c::telegram_error.eq(error),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// `capi report list`: the account's recent reports with their delivery.
#[derive(Debug, Clone, diesel::Queryable, serde::Serialize)]
pub struct ReportSummary {
    pub report_date: NaiveDate,
    pub telegram_status: TelegramStatus,
    pub telegram_parts_sent: i32,
    pub telegram_attempts: i32,
    pub telegram_error: Option<String>,
    pub telegram_sent_at: Option<DateTime<Utc>>,
}

pub async fn list(
    conn: &mut AsyncPgConnection,
    account_id: UserAccountId,
    limit: i64,
) -> Result<Vec<ReportSummary>, diesel::result::Error> {
    use conversation_reports::dsl as c;
    c::conversation_reports
        .filter(c::user_account_id.eq(account_id))
        .order(c::report_date.desc())
        .limit(limit)
        .select((
            c::report_date,
            c::telegram_status,
            c::telegram_parts_sent,
            c::telegram_attempts,
            c::telegram_error,
            c::telegram_sent_at,
        ))
        .load(conn)
        .await
}

/// Counts the account's local day and stores its report; `replace`: see [`store`].
pub async fn generate(
    conn: &mut AsyncPgConnection,
    account: &ReportAccount,
    date: NaiveDate,
    replace: bool,
) -> Result<(DailyReport, Stored), diesel::result::Error> {
    let report = compute(conn, account, date).await?;
    let text = domain::report::render(&report);
    let stored = store(conn, account, &report, &text, replace).await?;
    Ok((report, stored))
}

/// The account's day as a report, without storing it.
pub async fn compute(
    conn: &mut AsyncPgConnection,
    account: &ReportAccount,
    date: NaiveDate,
) -> Result<DailyReport, diesel::result::Error> {
    let groups = day_groups(conn, account.id, date, &account.timezone).await?;
    let capi = day_capi(conn, account.id, date, &account.timezone).await?;
    let mut days: Vec<DirectionDay> = crate::analytics::directions(conn, account.id)
        .await?
        .into_iter()
        .map(|d| DirectionDay {
            id: Some(d.id),
            name: d.name,
            capi_enabled: d.capi_enabled,
            counts: GroupCounts::default(),
            capi: CapiDistribution::default(),
        })
        .collect();
    days.push(DirectionDay {
        id: None,
        name: domain::report::no_direction_name(account.language).to_owned(),
        capi_enabled: false,
        counts: GroupCounts::default(),
        capi: CapiDistribution::default(),
    });
    for (dir, counts) in groups {
        if let Some(d) = days.iter_mut().find(|d| d.id == dir) {
            d.counts = counts;
        }
    }
    for (dir, c) in capi {
        if let Some(d) = days.iter_mut().find(|d| d.id == dir) {
            d.capi = c;
        }
    }
    let mut report = domain::report::build(date, account.language, days);
    report.top_ads = day_top_ads(conn, account, date).await?;
    Ok(report)
}

/// The day's ads with qualified leads (CompleteRegistration events Meta
/// accepted that day, by their dialog's ad) and spend that day, ranked by
/// `domain::report::top_ads`.
async fn day_top_ads(
    conn: &mut AsyncPgConnection,
    account: &ReportAccount,
    date: NaiveDate,
) -> Result<Vec<domain::report::TopAd>, diesel::result::Error> {
    let spend = crate::ads::spend_by_ad(conn, account.id, date, date).await?;
    if spend.iter().all(|s| s.place.ad_id.is_empty()) {
        return Ok(Vec::new()); // no spend per ad known for the day
    }
    let qualified_level = domain::level::Level::Qualified.number();
    let events = crate::ads::events_by_ad(conn, account.id, date, date, &account.timezone).await?;
    let candidates = spend
        .into_iter()
        .filter(|s| !s.place.ad_id.is_empty())
        .map(|s| {
            let qualified = events
                .iter()
                .filter(|e| e.ad_id.as_deref() == Some(s.place.ad_id.as_str()))
                .filter(|e| e.event_level == qualified_level)
                .map(|e| e.n)
                .sum();
            domain::report::TopAd {
                ad_id: s.place.ad_id,
                name: s.place.ad_name,
                campaign_name: s.place.campaign_name,
                qualified,
                spend: domain::analytics::Money {
                    cents: s.cents,
                    currency: s.currency,
                },
            }
        })
        .collect();
    Ok(domain::report::top_ads(candidates))
}

/// Today's date in the time zone.
pub async fn local_today(
    conn: &mut AsyncPgConnection,
    timezone: &str,
) -> Result<NaiveDate, diesel::result::Error> {
    #[derive(QueryableByName)]
    struct Today {
        #[diesel(sql_type = Date)]
        today: NaiveDate,
    }
    // SQL: the database's clock read in the account's zone.
    let t: Today = diesel::sql_query("SELECT (now() AT TIME ZONE $1)::date AS today")
        .bind::<Text, _>(timezone)
        .prepared()
        .get_result(conn)
        .await?;
    Ok(t.today)
}

/// What `capi account set` changes; `None` leaves a field as it is, and
/// `Some(None)` clears a Telegram setting.
#[derive(Default)]
pub struct AccountSettings<'a> {
    pub timezone: Option<&'a str>,
    pub language: Option<ReportLanguage>,
    pub telegram_chat_id: Option<Option<&'a str>>,
    pub telegram_bot_token: Option<Option<&'a str>>,
}

impl std::fmt::Debug for AccountSettings<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountSettings")
            .field("timezone", &self.timezone)
            .field("language", &self.language)
            .field("telegram_chat_id", &self.telegram_chat_id)
            .field(
                "telegram_bot_token",
                &self.telegram_bot_token.map(|t| t.map(|_| "[REDACTED]")),
            )
            .finish()
    }
}

/// Applies the settings; false when there is no such account.
pub async fn set_account(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    id: UserAccountId,
    s: &AccountSettings<'_>,
) -> Result<bool, diesel::result::Error> {
    use user_accounts::dsl as u;
    let found: Option<Uuid> = u::user_accounts
        .find(id)
        .select(u::id)
        .first(conn)
        .await
        .optional()?;
    if found.is_none() {
        return Ok(false);
    }
    if let Some(tz) = s.timezone {
        diesel::update(u::user_accounts.find(id))
            .set(u::timezone.eq(tz))
            .execute(conn)
            .await?;
    }
    if let Some(lang) = s.language {
        diesel::update(u::user_accounts.find(id))
            .set(u::report_language.eq(lang.as_str()))
            .execute(conn)
            .await?;
    }
    if let Some(chat) = s.telegram_chat_id {
        diesel::update(u::user_accounts.find(id))
            .set(u::telegram_chat_id.eq(chat))
            .execute(conn)
            .await?;
    }
    if let Some(token) = s.telegram_bot_token {
        let token = keys.seal_opt(crate::secrets::USER_TELEGRAM_BOT_TOKEN, token)?;
        diesel::update(u::user_accounts.find(id))
            .set(u::telegram_bot_token.eq(token))
            .execute(conn)
            .await?;
    }
    Ok(true)
}
