//! Directions: create one, change its CAPI settings (event names checked as
//! Meta checks them), its bot. Each change is audited with the direction's
//! settings before and after.

use crate::{Actor, Result, SetupError, audit, given, meta_id};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use domain::event_names::AllowedNames;
use domain::ids::{DirectionId, UserAccountId};
use domain::level::{CapiSource, CrmType, NoDialog};
use serde_json::json;
use storage::directions::{self as stored, DirectionCapiUpdate, DirectionSettings};
use uuid::Uuid;

/// The longest direction name and bot prompt taken.
pub const NAME_MAX: usize = 200;
pub const PROMPT_MAX: usize = 8000;

/// A new direction, as the operator or the page gives it.
#[derive(Debug, Clone)]
pub struct NewDirection {
    pub account: UserAccountId,
    pub name: String,
    pub ad_account: Option<Uuid>,
    pub capi_enabled: bool,
    pub source: CapiSource,
    /// Meta's dataset (pixel) id.
    pub pixel: Option<String>,
    pub waba: Option<String>,
}

/// What to change in a direction's CAPI settings (`None`: leave it).
#[derive(Debug, Clone, Default)]
pub struct DirectionChange {
    pub capi_enabled: Option<bool>,
    pub source: Option<CapiSource>,
    pub crm: Option<CrmType>,
    pub crm_no_dialog: Option<NoDialog>,
    pub pixel: Option<String>,
    pub waba: Option<String>,
    pub ad_account: Option<Uuid>,
    /// Interest, qualified, scheduled: events with a click id…
    pub event_names: [Option<String>; 3],
    /// …and without one.
    pub event_names_other: [Option<String>; 3],
    /// `Some("")` clears it.
    pub test_event_code: Option<String>,
    pub ldu: Option<bool>,
    pub ldu_country: Option<i32>,
    pub ldu_state: Option<i32>,
}

fn check_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty() {
        return Err(SetupError::invalid("a direction needs a name"));
    }
    if name.chars().count() > NAME_MAX {
        return Err(SetupError::invalid(format!(
            "a direction's name is at most {NAME_MAX} characters"
        )));
    }
    Ok(name)
}

/// The direction, when it exists and (if `account` is given) is that
/// account's.
pub async fn find(
    conn: &mut AsyncPgConnection,
    account: Option<UserAccountId>,
    id: DirectionId,
) -> Result<DirectionSettings> {
    match stored::direction_settings(conn, id).await? {
        Some(d) if account.is_none_or(|a| a == d.user_account_id) => Ok(d),
        _ => Err(SetupError::NotFound(format!("no direction {id}"))),
    }
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    d: &NewDirection,
) -> Result<DirectionId> {
    let name = check_name(&d.name)?;
    meta_id("the dataset (pixel) id", given(&d.pixel))?;
    meta_id("the WhatsApp Business Account id", given(&d.waba))?;
    conn.transaction(async |c| {
        let id = stored::create_direction(
            c,
            &stored::NewDirection {
                user_account_id: d.account,
                ad_account_id: d.ad_account,
                name,
                capi_enabled: d.capi_enabled,
                capi_source: d.source,
                pixel_id: given(&d.pixel),
                waba_id: given(&d.waba),
            },
        )
        .await?;
        let after = find(c, None, id).await?;
        let target = format!("direction {id}");
        audit::record(
            c,
            actor,
            Some(d.account),
            "direction.create",
            &target,
            None::<&()>,
            Some(&after),
        )
        .await?;
        Ok(id)
    })
    .await
}

/// The event names the direction will have once `c` applies, checked as
/// Meta checks them (each allowed for its source, distinct per source).
fn check_names(
    allowed: &AllowedNames,
    current: &DirectionSettings,
    c: &DirectionChange,
) -> Result<()> {
    let all = c.event_names.iter().chain(&c.event_names_other);
    if all
        .clone()
        .any(|n| n.as_deref().is_some_and(|n| n.trim().is_empty()))
    {
        return Err(SetupError::invalid("an event name cannot be empty"));
    }
    if all.clone().all(Option::is_none) {
        // Other changes never wait on old names (`capi doctor` reports those).
        return Ok(());
    }
    let mut will_be = current.event_names();
    for (stored, given) in will_be.business_messaging.iter_mut().zip(&c.event_names) {
        if let Some(n) = given {
            n.trim().clone_into(stored);
        }
    }
    for (stored, given) in will_be.other.iter_mut().zip(&c.event_names_other) {
        if let Some(n) = given {
            n.trim().clone_into(stored);
        }
    }
    let refused = allowed.check_direction(&will_be);
    if refused.is_empty() {
        return Ok(());
    }
    Err(SetupError::invalid(
        refused
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n"),
    ))
}

fn check_change(c: &DirectionChange) -> Result<()> {
    meta_id("the dataset (pixel) id", given(&c.pixel))?;
    meta_id("the WhatsApp Business Account id", given(&c.waba))?;
    if let Some(code) = c.test_event_code.as_deref().map(str::trim)
        && (code.len() > 64 || !code.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(SetupError::invalid(
            "a test event code is Events Manager's code: letters and digits (e.g. TEST12345), at most 64",
        ));
    }
    if c.ldu_country.is_some_and(|v| v != 0 && v != 1) {
        return Err(SetupError::invalid(
            "the LDU country is 0 (geolocate) or 1 (the US)",
        ));
    }
    if c.ldu_state.is_some_and(|v| v != 0 && v != 1000) {
        return Err(SetupError::invalid(
            "the LDU state is 0 (geolocate) or 1000 (California)",
        ));
    }
    Ok(())
}

/// Changes a direction's CAPI settings; `account` limits it to that
/// account's directions (a page's session).
pub async fn update(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    allowed: &AllowedNames,
    account: Option<UserAccountId>,
    id: DirectionId,
    c: &DirectionChange,
) -> Result<()> {
    check_change(c)?;
    conn.transaction(async |conn| {
        let before = find(conn, account, id).await?;
        check_names(allowed, &before, c)?;
        fn trimmed(n: &Option<String>) -> Option<&str> {
            n.as_deref().map(str::trim)
        }
        let u = DirectionCapiUpdate {
            capi_enabled: c.capi_enabled,
            capi_source: c.source,
            capi_crm_type: c.crm,
            capi_crm_no_dialog: c.crm_no_dialog,
            pixel_id: given(&c.pixel),
            waba_id: given(&c.waba),
            ad_account_id: c.ad_account,
            event_names: [0, 1, 2].map(|i| trimmed(&c.event_names[i])),
            event_names_other: [0, 1, 2].map(|i| trimmed(&c.event_names_other[i])),
            test_event_code: c.test_event_code.as_deref().map(str::trim),
            ldu_enabled: c.ldu,
            ldu_country: c.ldu_country,
            ldu_state: c.ldu_state,
        };
        stored::update_direction_capi(conn, id, &u).await?;
        let after = find(conn, None, id).await?;
        let target = format!("direction {id}");
        audit::record(
            conn,
            actor,
            Some(before.user_account_id),
            "direction.update",
            &target,
            Some(&before),
            Some(&after),
        )
        .await?;
        Ok(())
    })
    .await
}

/// The direction's bot: on/off and its prompt (`Some("")`: the generic one).
pub async fn set_bot(
    conn: &mut AsyncPgConnection,
    actor: &Actor,
    account: Option<UserAccountId>,
    id: DirectionId,
    enabled: Option<bool>,
    prompt: Option<&str>,
) -> Result<()> {
    let prompt = prompt.map(str::trim);
    if prompt.is_some_and(|p| p.chars().count() > PROMPT_MAX) {
        return Err(SetupError::invalid(format!(
            "the bot's prompt is at most {PROMPT_MAX} characters"
        )));
    }
    conn.transaction(async |conn| {
        let d = find(conn, account, id).await?;
        let bot = |(enabled, prompt): (bool, Option<String>)| json!({"bot_enabled": enabled, "bot_prompt": prompt});
        let before = stored::direction_bot(conn, id).await?.map(bot);
        stored::set_direction_bot(conn, id, enabled, prompt).await?;
        let after = stored::direction_bot(conn, id).await?.map(bot);
        let target = format!("direction {id}");
        audit::record(conn, actor, Some(d.user_account_id), "direction.bot", &target, before.as_ref(), after.as_ref()).await?;
        Ok(())
    })
    .await
}

/// The direction's WhatsApp Business Account's dataset (read from Meta,
/// made there if the WABA has none: idempotent) set as its pixel; the
/// dataset id, the WABA and the pixel it replaced.
pub async fn use_waba_dataset(
    conn: &mut AsyncPgConnection,
    keys: &storage::secrets::Keys,
    graph: &meta_graph::Graph,
    actor: &Actor,
    account: Option<UserAccountId>,
    id: DirectionId,
) -> Result<(String, String, Option<String>)> {
    find(conn, account, id).await?;
    let Some(d) = storage::doctor::direction_setup(conn, id).await? else {
        return Err(SetupError::NotFound(format!("no direction {id}")));
    };
    let Some(waba) = d.waba_id.as_deref() else {
        return Err(SetupError::invalid(format!(
            "direction {id} has no WhatsApp Business Account id: set it first"
        )));
    };
    let token = d
        .token
        .open(keys, storage::secrets::AD_ACCESS_TOKEN)
        .map_err(|e| {
            SetupError::invalid(format!("the direction's access token cannot be read: {e}"))
        })?
        .ok_or_else(|| {
            SetupError::invalid("no access token on the direction's ad account or user account")
        })?;
    let token = secrecy::ExposeSecret::expose_secret(&token);
    let dataset = graph
        .waba_dataset(waba, token, true)
        .await
        .map_err(|e| SetupError::Upstream(format!("the WABA's dataset: {e}")))?
        .ok_or_else(|| SetupError::Upstream("Meta returned no dataset id".into()))?;
    let change = DirectionChange {
        pixel: Some(dataset.clone()),
        ..DirectionChange::default()
    };
    update(conn, actor, &AllowedNames::default(), account, id, &change).await?;
    Ok((dataset, waba.to_owned(), d.pixel_id))
}
