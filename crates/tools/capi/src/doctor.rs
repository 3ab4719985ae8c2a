//! `capi doctor`: the spec's troubleshooting as one command. Each check
//! gives findings (ok, info, warning, error); the exit code is 0 when
//! healthy, 1 with warnings, 2 with errors. Human-readable by default,
//! one JSON object with `--json`. Never prints a token or a phone number.

use crate::connect;
use diesel_async::AsyncPgConnection;
use domain::health::Status;
use domain::ids::DirectionId;
use domain::meta_errors::Refusal;
use meta_graph::{Graph, GraphError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{collections::BTreeMap, process::ExitCode, time::Duration};
use storage::doctor::{self, Scope};
use storage::secrets::Keys;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Ok,
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub check: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

fn finding(
    severity: Severity,
    check: &'static str,
    message: impl Into<String>,
    details: Value,
) -> Finding {
    Finding {
        severity,
        check,
        message: message.into(),
        details,
    }
}

/// Outbox rows older than this are a warning, older than `OUTBOX_ERROR_AFTER` an error.
const OUTBOX_WARN_AFTER: Duration = Duration::from_secs(60);
const OUTBOX_ERROR_AFTER: Duration = Duration::from_secs(600);
/// A queue holding more than this many ready messages is falling behind.
const QUEUE_WARN_DEPTH: u32 = 10_000;

pub struct Options {
    pub scope: Scope,
    pub json: bool,
    /// Skip the call to Meta that checks each token.
    pub offline: bool,
    /// What opens the stored tokens.
    pub keys: Keys,
}

pub async fn doctor(url: &str, o: Options) -> ExitCode {
    let findings = match connect(url).await {
        Ok(mut conn) => run(&mut conn, &o).await,
        Err(f) => vec![finding(Severity::Error, "database", f.message, Value::Null)],
    };
    let worst = findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Ok);
    let status = match worst {
        Severity::Error => "errors",
        Severity::Warning => "warnings",
        _ => "healthy",
    };
    if o.json {
        out!("{}", json!({"status": status, "findings": findings}));
    } else {
        for f in &findings {
            let label = match f.severity {
                Severity::Ok => "ok     ",
                Severity::Info => "info   ",
                Severity::Warning => "WARNING",
                Severity::Error => "ERROR  ",
            };
            out!("{label} {:<16} {}", f.check, f.message);
        }
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        out!(
            "\n{status}: {} error(s), {} warning(s)",
            count(Severity::Error),
            count(Severity::Warning)
        );
    }
    match worst {
        Severity::Error => ExitCode::from(2),
        Severity::Warning => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    }
}

async fn run(conn: &mut AsyncPgConnection, o: &Options) -> Vec<Finding> {
    let mut out = Vec::new();
    let checks: [(&'static str, Result<Vec<Finding>, String>); 8] = [
        ("capi_setup", capi_setup(conn, o).await),
        ("capi_health", health(conn, o.scope).await),
        ("ctwa_clid", click_ids(conn, o.scope).await),
        ("events", events(conn, o.scope).await),
        ("outbox", outbox(conn).await),
        ("models", models(conn, o.scope).await),
        ("crm", crm(conn, o.scope).await),
        ("queues", queues().await),
    ];
    for (check, result) in checks {
        match result {
            Ok(f) => out.extend(f),
            Err(e) => out.push(finding(
                Severity::Error,
                check,
                format!("could not check: {e}"),
                Value::Null,
            )),
        }
    }
    out
}

/// CAPI on but no pixel or no token; each token asked of Meta; pixels shared.
async fn capi_setup(conn: &mut AsyncPgConnection, o: &Options) -> Result<Vec<Finding>, String> {
    const CHECK: &str = "capi_setup";
    let dirs = doctor::capi_directions(conn, o.scope)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if dirs.is_empty() {
        out.push(finding(
            Severity::Info,
            CHECK,
            "no direction has CAPI on",
            Value::Null,
        ));
        return Ok(out);
    }
    let allowed = crate::events::allowed().map_err(|f| f.message)?;
    let mut by_pixel: BTreeMap<&str, Vec<&doctor::CapiDirection>> = BTreeMap::new();
    for d in &dirs {
        let who = format!("direction {:?} ({})", d.name, d.id);
        for refused in allowed.check_direction(&d.event_names()) {
            out.push(finding(
                Severity::Error,
                CHECK,
                format!("{who}: {refused}; Meta refuses such events (2804066) and capi-sender skips them (event_name_not_allowed): capi direction set {} --event-name-…", d.id),
                json!({"direction_id": d.id}),
            ));
        }
        match (&d.pixel_id, d.token.is_some().then_some(())) {
            (None, _) => out.push(finding(
                Severity::Error,
                CHECK,
                format!("{who} has CAPI on but no pixel: events are skipped (no_pixel); capi direction set {} --pixel …", d.id),
                json!({"direction_id": d.id}),
            )),
            (_, None) => out.push(finding(
                Severity::Error,
                CHECK,
                format!("{who} has CAPI on but no access token (neither its ad account nor its user account has one)"),
                json!({"direction_id": d.id}),
            )),
            (Some(p), Some(_)) => by_pixel.entry(p.as_str()).or_default().push(d),
        }
    }
    for (pixel, users) in &by_pixel {
        if users.len() > 1 {
            let names: Vec<&str> = users.iter().map(|d| d.name.as_str()).collect();
            out.push(finding(
                Severity::Warning,
                "shared_pixel",
                format!(
                    "pixel {pixel} is used by {} directions ({}): Meta aggregates their audiences, so optimisation cannot tell them apart",
                    users.len(),
                    names.join(", ")
                ),
                json!({"pixel_id": pixel, "direction_ids": users.iter().map(|d| d.id).collect::<Vec<_>>()}),
            ));
        }
    }
    if o.offline {
        return Ok(out);
    }
    let graph = crate::dataset::graph()?;
    // One call per distinct (pixel, token).
    let mut asked: Vec<(&str, String)> = Vec::new();
    for d in dirs
        .iter()
        .filter(|d| d.pixel_id.is_some() && d.token.is_some())
    {
        let Some(pixel) = d.pixel_id.as_deref() else {
            continue;
        };
        let token = match d.token.open(&o.keys, storage::secrets::AD_ACCESS_TOKEN) {
            Ok(Some(t)) => t,
            Ok(None) => continue,
            Err(e) => {
                out.push(finding(
                    Severity::Error,
                    CHECK,
                    format!(
                        "direction {:?} ({}): its access token cannot be read: {e}",
                        d.name, d.id
                    ),
                    json!({"direction_id": d.id}),
                ));
                continue;
            }
        };
        let token = secrecy::ExposeSecret::expose_secret(&token).to_owned();
        if let Some(waba) = d.waba_id.as_deref() {
            out.extend(check_dataset(&graph, d, pixel, waba, &token).await);
        }
        if asked.iter().any(|(p, t)| *p == pixel && *t == token) {
            continue;
        }
        out.push(check_token(&graph, pixel, &token, &d.name, d.id).await);
        asked.push((pixel, token));
    }
    if out.iter().all(|f| f.severity <= Severity::Info) {
        out.push(finding(
            Severity::Ok,
            CHECK,
            format!(
                "{} direction(s) with CAPI on have a pixel and a token Meta accepts",
                dirs.len()
            ),
            Value::Null,
        ));
    }
    Ok(out)
}

/// The direction's pixel should be its WABA's dataset (Meta ties
/// business-messaging events to it).
async fn check_dataset(
    graph: &Graph,
    d: &doctor::CapiDirection,
    pixel: &str,
    waba: &str,
    token: &str,
) -> Option<Finding> {
    const CHECK: &str = "dataset";
    let details = json!({"direction_id": d.id, "pixel_id": pixel, "waba_id": waba});
    let who = format!("direction {:?} ({})", d.name, d.id);
    match graph.waba_dataset(waba, token, false).await {
        Ok(Some(dataset)) if dataset == pixel => None,
        Ok(Some(dataset)) => Some(finding(
            Severity::Error,
            CHECK,
            format!(
                "{who}: pixel {pixel} is not its WABA {waba}'s dataset {dataset}: Meta cannot attribute its business-messaging events; capi direction dataset {}",
                d.id
            ),
            details,
        )),
        Ok(None) => Some(finding(
            Severity::Warning,
            CHECK,
            format!(
                "{who}: WABA {waba} has no dataset yet; capi direction dataset {} makes it and sets it as the pixel",
                d.id
            ),
            details,
        )),
        Err(e) => Some(finding(
            Severity::Warning,
            CHECK,
            format!("{who}: WABA {waba}'s dataset could not be read: {e}"),
            details,
        )),
    }
}

/// `GET /{version}/{pixel_id}?fields=id`: the cheapest call that proves the token reaches the pixel.
async fn check_token(
    graph: &Graph,
    pixel: &str,
    token: &str,
    direction: &str,
    direction_id: DirectionId,
) -> Finding {
    const CHECK: &str = "meta_token";
    let details = json!({"pixel_id": pixel, "direction_id": direction_id});
    match graph.get(pixel, &[("fields", "id")], token).await {
        Ok(_) => finding(
            Severity::Info,
            CHECK,
            format!("Meta accepts the token for pixel {pixel}"),
            details,
        ),
        Err(e) if e.status.is_none() => finding(
            Severity::Warning,
            CHECK,
            format!("Meta could not be asked about pixel {pixel}: {e}"),
            details,
        ),
        Err(GraphError { error: Some(e), .. }) => match Refusal::of_code(e.code) {
            Some(Refusal::Token) => finding(
                Severity::Error,
                CHECK,
                format!(
                    "Meta rejects the token of direction {direction:?} ({direction_id}): {} — {}",
                    e.message,
                    Refusal::Token.what_to_do()
                ),
                details,
            ),
            Some(Refusal::Dataset) => finding(
                Severity::Error,
                CHECK,
                format!(
                    "pixel {pixel} does not exist or the token has no access to it: {} — {}",
                    e.message,
                    Refusal::Dataset.what_to_do()
                ),
                details,
            ),
            None => finding(
                Severity::Warning,
                CHECK,
                format!("{} (about pixel {pixel})", e.message),
                details,
            ),
        },
        Err(e) => finding(
            Severity::Warning,
            CHECK,
            format!("{e} (about pixel {pixel})"),
            details,
        ),
    }
}

/// Each direction's CAPI status, judged as the dashboard's health section
/// judges it (`domain::health::assess` on `storage::health`'s facts).
async fn health(conn: &mut AsyncPgConnection, scope: Scope) -> Result<Vec<Finding>, String> {
    const CHECK: &str = "capi_health";
    let now = chrono::Utc::now();
    let rows = storage::health::direction_facts(conn, scope)
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .filter(|d| d.facts.capi_enabled)
        .map(|d| {
            let h = domain::health::assess(&d.facts, now);
            let severity = match h.status {
                Status::Failing => Severity::Error,
                Status::Silent => Severity::Warning,
                Status::Test => Severity::Info,
                Status::Active | Status::Off => Severity::Ok,
            };
            let mut message = format!(
                "direction {:?}: {}: {}",
                d.name,
                h.status.as_str(),
                h.summary
            );
            if let Some(b) = &h.banner {
                message.push_str(&format!(" — {}", b.what_to_do));
            }
            finding(
                severity,
                CHECK,
                message,
                json!({"direction_id": d.direction_id, "health": h, "facts": d.facts}),
            )
        })
        .collect())
}

/// Ad dialogs of the last 7 days without a click id.
async fn click_ids(conn: &mut AsyncPgConnection, scope: Scope) -> Result<Vec<Finding>, String> {
    let rows = doctor::missing_click_ids(conn, scope)
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let rate = r.without_ctwa_clid as f64 * 100.0 / r.ad_dialogs.max(1) as f64;
            finding(
                Severity::Warning,
                "ctwa_clid",
                format!(
                    "direction {:?}: {} of {} ad dialogs in the last 7 days have no ctwa_clid ({rate:.1} %); their events go without a click id (Status ads carry none; otherwise check the Evolution API version and its webhook settings)",
                    r.direction_name, r.without_ctwa_clid, r.ad_dialogs
                ),
                json!({"direction_id": r.direction_id, "ad_dialogs": r.ad_dialogs, "without_ctwa_clid": r.without_ctwa_clid,
                       "rate_pct": (rate * 10.0).round() / 10.0, "example_dialog_ids": r.examples}),
            )
        })
        .collect())
}

/// Events of the last 24 hours by status and error class, Meta's top messages, too_old skips.
async fn events(conn: &mut AsyncPgConnection, scope: Scope) -> Result<Vec<Finding>, String> {
    let counts = doctor::attempts_24h(conn, scope)
        .await
        .map_err(|e| e.to_string())?;
    let total = |status: &str| {
        counts
            .iter()
            .filter(|c| c.status == status)
            .map(|c| c.n)
            .sum::<i64>()
    };
    let (sent, failed, skipped) = (total("success"), total("error"), total("skipped"));
    let by_class: Value = counts
        .iter()
        .map(|c| json!({"status": c.status, "reason": c.reason, "count": c.n}))
        .collect();
    let mut out = vec![finding(
        Severity::Info,
        "events",
        format!("last 24 h: {sent} sent, {failed} failed, {skipped} skipped"),
        json!({"by_status_and_reason": by_class}),
    )];
    if failed > 0 {
        let top = doctor::top_errors_24h(conn, scope)
            .await
            .map_err(|e| e.to_string())?;
        let text: Vec<String> = top
            .iter()
            .map(|t| format!("{} ×{}", t.message, t.n))
            .collect();
        out.push(finding(
            Severity::Warning,
            "events",
            format!(
                "{failed} event attempt(s) failed in the last 24 h; Meta said: {}",
                text.join("; ")
            ),
            json!({"top_messages": top}),
        ));
    }
    let too_old: i64 = counts
        .iter()
        .filter(|c| c.status == "skipped" && c.reason.as_deref() == Some("too_old"))
        .map(|c| c.n)
        .sum();
    if too_old > 0 {
        out.push(finding(
            Severity::Warning,
            "too_old",
            format!("{too_old} event(s) skipped as too old in the last 24 h (Meta takes events up to 7 days old): the pipeline fell behind or was stopped"),
            json!({"too_old": too_old}),
        ));
    }
    Ok(out)
}

async fn outbox(conn: &mut AsyncPgConnection) -> Result<Vec<Finding>, String> {
    let b = storage::outbox::backlog(conn)
        .await
        .map_err(|e| e.to_string())?;
    let age = b
        .oldest
        .map(|t| (chrono::Utc::now() - t).to_std().unwrap_or_default())
        .unwrap_or_default();
    let severity = if b.rows > 0 && age > OUTBOX_ERROR_AFTER {
        Severity::Error
    } else if b.rows > 0 && age > OUTBOX_WARN_AFTER {
        Severity::Warning
    } else {
        Severity::Ok
    };
    let message = if b.rows == 0 {
        "outbox empty: everything committed has been published".to_owned()
    } else {
        format!(
            "{} outbox row(s) not yet published, the oldest {} s old{}",
            b.rows,
            age.as_secs(),
            if severity > Severity::Ok {
                ": is RabbitMQ reachable and a service running?"
            } else {
                ""
            }
        )
    };
    Ok(vec![finding(
        severity,
        "outbox",
        message,
        json!({"rows": b.rows, "oldest_age_s": age.as_secs()}),
    )])
}

async fn models(conn: &mut AsyncPgConnection, scope: Scope) -> Result<Vec<Finding>, String> {
    let m = doctor::model_failures(conn, scope)
        .await
        .map_err(|e| e.to_string())?;
    if m.analyses_failed == 0 && m.replies_failed == 0 {
        return Ok(vec![finding(
            Severity::Ok,
            "models",
            format!(
                "no model failures in the last 24 h ({} analyses)",
                m.analyses
            ),
            Value::Null,
        )]);
    }
    Ok(vec![finding(
        Severity::Warning,
        "models",
        format!(
            "last 24 h: {} of {} analyses failed{}, {} bot repl(ies) failed",
            m.analyses_failed,
            m.analyses,
            m.last_analysis_error
                .as_deref()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default(),
            m.replies_failed
        ),
        serde_json::to_value(&m).unwrap_or_default(),
    )])
}

async fn crm(conn: &mut AsyncPgConnection, scope: Scope) -> Result<Vec<Finding>, String> {
    let rows = doctor::crm_failing(conn, scope)
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|r| {
            finding(
                Severity::Warning,
                "crm",
                format!(
                    "{} connection {}: {} of {} changes in the last 24 h could not be read from the CRM{}",
                    r.crm_type,
                    r.connection_id,
                    r.failed,
                    r.changes,
                    r.last_error.as_deref().map(|e| format!(" (last: {e})")).unwrap_or_default()
                ),
                serde_json::to_value(&r).unwrap_or_default(),
            )
        })
        .collect())
}

/// Queue depths and dead letters, from RabbitMQ (`[amqp]` settings).
async fn queues() -> Result<Vec<Finding>, String> {
    #[derive(Deserialize)]
    struct Own {
        amqp: bus::AmqpSettings,
    }
    let settings = runtime::settings::load_section::<Own>("").map_err(|e| e.to_string())?;
    let bus = bus::Bus::new(settings.amqp);
    let mut out = Vec::new();
    let mut depths = serde_json::Map::new();
    for q in bus::Queue::ALL {
        let name = bus.names().queue(q);
        let (ready, dead) = match (bus.queue_depth(q).await, bus.dead_letter_depth(q).await) {
            (Ok(r), Ok(d)) => (r, d),
            (Err(e), _) | (_, Err(e)) => {
                bus.close().await;
                return Ok(vec![finding(
                    Severity::Error,
                    "queues",
                    format!(
                        "RabbitMQ could not be asked about {name}: {e:#} (is the broker up, and have the services declared their queues?)"
                    ),
                    Value::Null,
                )]);
            }
        };
        depths.insert(name.clone(), json!({"ready": ready, "dead_lettered": dead}));
        if dead > 0 {
            out.push(finding(
                Severity::Error,
                "dead_letters",
                format!("{dead} message(s) dead-lettered in {name}.dlq: they were refused or failed for good; inspect them and republish or drop"),
                json!({"queue": name, "dead_lettered": dead}),
            ));
        }
        if ready > QUEUE_WARN_DEPTH {
            out.push(finding(
                Severity::Warning,
                "queues",
                format!(
                    "{ready} message(s) waiting in {name}: its consumers are behind (scale them up)"
                ),
                json!({"queue": name, "ready": ready}),
            ));
        }
    }
    bus.close().await;
    out.push(finding(
        Severity::Info,
        "queues",
        "queue depths",
        Value::Object(depths),
    ));
    Ok(out)
}
