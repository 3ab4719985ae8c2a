//! Tenancy and configuration: user accounts, ad accounts (Meta tokens),
//! directions with their CAPI settings, and WhatsApp instances.

use crate::schema::{
    account_directions, ad_accounts, dialog_analysis, user_accounts, whatsapp_phone_numbers,
};
use crate::secrets;
use diesel::{
    AsChangeset, BoolExpressionMethods, ExpressionMethods, Insertable, NullableExpressionMethods,
    OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::{DirectionId, UserAccountId};
use domain::{
    crm::{
        mapping::{FieldRule, LevelMapping},
        purchase::PurchaseSetting,
    },
    evolution::ApiVersion,
    level::{CapiSource, CrmType, Level, NoDialog},
    whatsapp_cloud::Channel,
};
use secrecy::SecretString;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// A WhatsApp instance as the webhook gateway needs it.
#[derive(Debug, Clone)]
pub struct Instance {
    pub instance_name: String,
    pub direction_id: Option<DirectionId>,
    /// Empty for a Cloud API number (it has no Evolution secret).
    pub webhook_secret: SecretString,
    pub channel: Channel,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = whatsapp_phone_numbers, check_for_backend(diesel::pg::Pg))]
struct GatewayInstanceRow {
    instance_name: String,
    direction_id: Option<DirectionId>,
    webhook_secret: String,
    channel: Channel,
}

pub async fn instance(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    name: &str,
) -> Result<Option<Instance>, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    let Some(row) = w::whatsapp_phone_numbers
        .filter(w::instance_name.eq(name))
        .select(GatewayInstanceRow::as_select())
        .get_result(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let webhook_secret = keys
        .open(secrets::NUMBER_WEBHOOK_SECRET, Some(&row.webhook_secret))?
        .unwrap_or_else(|| SecretString::from(""));
    Ok(Some(Instance {
        instance_name: row.instance_name,
        direction_id: row.direction_id,
        webhook_secret,
        channel: row.channel,
    }))
}

pub async fn create_user_account(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    name: &str,
    access_token: Option<&str>,
) -> Result<UserAccountId, diesel::result::Error> {
    use user_accounts::dsl as u;
    let access_token = keys.seal_opt(secrets::USER_ACCESS_TOKEN, access_token)?;
    diesel::insert_into(u::user_accounts)
        .values((u::name.eq(name), u::access_token.eq(access_token)))
        .returning(u::id)
        .get_result(conn)
        .await
}

/// Sets (or with `None` clears) the secret of the Meta app behind an ad
/// account's token, used for `appsecret_proof`.
pub async fn set_ad_account_app_secret(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    id: Uuid,
    app_secret: Option<&str>,
) -> Result<bool, diesel::result::Error> {
    use ad_accounts::dsl as a;
    let app_secret = keys.seal_opt(secrets::AD_APP_SECRET, app_secret)?;
    let n = diesel::update(a::ad_accounts.find(id))
        .set(a::app_secret.eq(app_secret))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

pub async fn create_ad_account(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    user_account_id: UserAccountId,
    name: &str,
    meta_ad_account_id: Option<&str>,
    access_token: Option<&str>,
) -> Result<Uuid, diesel::result::Error> {
    use ad_accounts::dsl as a;
    let access_token = keys.seal_opt(secrets::AD_ACCESS_TOKEN, access_token)?;
    diesel::insert_into(a::ad_accounts)
        .values((
            a::user_account_id.eq(user_account_id),
            a::name.eq(name),
            a::meta_ad_account_id.eq(meta_ad_account_id),
            a::access_token.eq(access_token),
        ))
        .returning(a::id)
        .get_result(conn)
        .await
}

/// A direction's CAPI settings as an operator sets them.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = account_directions)]
pub struct NewDirection<'a> {
    pub user_account_id: UserAccountId,
    pub ad_account_id: Option<Uuid>,
    pub name: &'a str,
    pub capi_enabled: bool,
    pub capi_source: CapiSource,
    pub pixel_id: Option<&'a str>,
    #[diesel(column_name = whatsapp_business_account_id)]
    pub waba_id: Option<&'a str>,
}

pub async fn create_direction(
    conn: &mut AsyncPgConnection,
    d: &NewDirection<'_>,
) -> Result<DirectionId, diesel::result::Error> {
    diesel::insert_into(account_directions::table)
        .values(d)
        .returning(account_directions::id)
        .get_result(conn)
        .await
}

#[derive(Insertable, AsChangeset)]
#[diesel(table_name = whatsapp_phone_numbers)]
struct InstanceMapping<'a> {
    instance_name: &'a str,
    direction_id: DirectionId,
    webhook_secret: &'a str,
    /// `None` keeps the number already known.
    phone_number: Option<&'a str>,
}

/// Maps a WhatsApp instance to a direction (creating or updating it), and
/// lets existing dialogs of that instance pick the direction up.
pub async fn map_instance(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    instance_name: &str,
    direction_id: DirectionId,
    webhook_secret: &str,
    phone_number: Option<&str>,
) -> Result<(), diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    let webhook_secret = keys.seal(secrets::NUMBER_WEBHOOK_SECRET, webhook_secret)?;
    let mapping = InstanceMapping {
        instance_name,
        direction_id,
        webhook_secret: &webhook_secret,
        phone_number,
    };
    diesel::insert_into(w::whatsapp_phone_numbers)
        .values(&mapping)
        .on_conflict(w::instance_name)
        .do_update()
        .set(&mapping)
        .execute(conn)
        .await?;
    attach_to_direction(conn, instance_name, direction_id).await
}

/// After an instance was (re)mapped to `direction_id`: it belongs to the
/// direction's account (and stays its account's if the direction goes), and
/// its existing dialogs pick the direction up.
pub(crate) async fn attach_to_direction(
    conn: &mut AsyncPgConnection,
    instance_name: &str,
    direction_id: DirectionId,
) -> Result<(), diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    diesel::update(w::whatsapp_phone_numbers.filter(w::instance_name.eq(instance_name)))
        .set(
            w::user_account_id.eq(account_directions::table
                .filter(account_directions::id.eq(direction_id))
                .select(account_directions::user_account_id)
                .single_value()),
        )
        .execute(conn)
        .await?;
    // The trigger refills direction_id from the new mapping.
    diesel::update(dialog_analysis::table.filter(dialog_analysis::instance_name.eq(instance_name)))
        .set(dialog_analysis::direction_id.eq(None::<Uuid>))
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize)]
pub struct UserAccountRow {
    pub id: UserAccountId,
    pub name: String,
    pub has_token: bool,
    /// How long message texts and evaluated CRM change bodies are kept.
    pub retain_messages_days: i32,
    pub retain_crm_bodies_days: i32,
}

pub async fn list_user_accounts(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<UserAccountRow>, diesel::result::Error> {
    use user_accounts::dsl as u;
    type Row = (UserAccountId, String, Option<bool>, i32, i32);
    let rows: Vec<Row> = u::user_accounts
        .order((u::created_at, u::name))
        .select((
            u::id,
            u::name,
            u::access_token
                .is_not_null()
                .and(u::access_token.ne(""))
                .nullable(),
            u::retain_messages_days,
            u::retain_crm_bodies_days,
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, has_token, messages, crm)| UserAccountRow {
            id,
            name,
            has_token: has_token.unwrap_or(false),
            retain_messages_days: messages,
            retain_crm_bodies_days: crm,
        })
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct AdAccountRow {
    pub id: Uuid,
    pub user_account_id: UserAccountId,
    pub name: String,
    pub meta_ad_account_id: Option<String>,
    pub has_token: bool,
}

pub async fn list_ad_accounts(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<AdAccountRow>, diesel::result::Error> {
    use ad_accounts::dsl as a;
    type Row = (Uuid, UserAccountId, String, Option<String>, Option<bool>);
    let rows: Vec<Row> = a::ad_accounts
        .order((a::created_at, a::name))
        .select((
            a::id,
            a::user_account_id,
            a::name,
            a::meta_ad_account_id,
            a::access_token
                .is_not_null()
                .and(a::access_token.ne(""))
                .nullable(),
        ))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(id, user_account_id, name, meta_ad_account_id, has_token)| AdAccountRow {
                id,
                user_account_id,
                name,
                meta_ad_account_id,
                has_token: has_token.unwrap_or(false),
            },
        )
        .collect())
}

#[derive(Debug, Clone, Serialize)]
pub struct DirectionRow {
    #[serde(flatten)]
    pub settings: DirectionSettings,
    /// The direction's instances, comma-separated.
    pub instances: Option<String>,
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = account_directions, check_for_backend(diesel::pg::Pg))]
pub struct DirectionSettings {
    pub id: DirectionId,
    pub user_account_id: UserAccountId,
    pub ad_account_id: Option<Uuid>,
    pub name: String,
    pub capi_enabled: bool,
    pub capi_source: CapiSource,
    pub capi_crm_type: Option<CrmType>,
    pub capi_crm_no_dialog: NoDialog,
    pub pixel_id: Option<String>,
    #[diesel(column_name = whatsapp_business_account_id)]
    pub waba_id: Option<String>,
    #[diesel(embed)]
    #[serde(flatten)]
    pub names: EventNameColumns,
    pub test_event_code: Option<String>,
    pub ldu_enabled: bool,
    pub ldu_country: i32,
    pub ldu_state: i32,
}

impl DirectionSettings {
    pub fn event_names(&self) -> domain::event_names::DirectionNames {
        self.names.clone().into()
    }
}

/// A direction's six event-name columns: per level, with a click id and
/// without one. Every read of a direction's names takes these together.
#[derive(Debug, Clone, Serialize, Queryable, Selectable, diesel::QueryableByName)]
#[diesel(table_name = account_directions, check_for_backend(diesel::pg::Pg))]
pub struct EventNameColumns {
    pub event_name_interest: String,
    pub event_name_qualified: String,
    pub event_name_scheduled: String,
    pub event_name_interest_other: String,
    pub event_name_qualified_other: String,
    pub event_name_scheduled_other: String,
}

impl From<EventNameColumns> for domain::event_names::DirectionNames {
    fn from(c: EventNameColumns) -> Self {
        domain::event_names::DirectionNames {
            business_messaging: [
                c.event_name_interest,
                c.event_name_qualified,
                c.event_name_scheduled,
            ],
            other: [
                c.event_name_interest_other,
                c.event_name_qualified_other,
                c.event_name_scheduled_other,
            ],
        }
    }
}

/// One direction's settings.
pub async fn direction_settings(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
) -> Result<Option<DirectionSettings>, diesel::result::Error> {
    account_directions::table
        .find(id)
        .select(DirectionSettings::as_select())
        .first(conn)
        .await
        .optional()
}

pub async fn list_directions(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<DirectionRow>, diesel::result::Error> {
    use account_directions::dsl as d;
    let directions: Vec<DirectionSettings> = d::account_directions
        .order((d::created_at, d::name))
        .select(DirectionSettings::as_select())
        .load(conn)
        .await?;
    let instances = list_instances(conn).await?;
    Ok(directions
        .into_iter()
        .map(|settings| {
            let names: Vec<&str> = instances
                .iter()
                .filter(|i| i.direction_id == Some(settings.id))
                .map(|i| i.instance_name.as_str())
                .collect();
            DirectionRow {
                settings,
                instances: (!names.is_empty()).then(|| names.join(",")),
            }
        })
        .collect())
}

/// Changes a direction's CAPI settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct DirectionCapiUpdate<'a> {
    pub capi_enabled: Option<bool>,
    pub capi_source: Option<CapiSource>,
    pub capi_crm_type: Option<CrmType>,
    pub capi_crm_no_dialog: Option<NoDialog>,
    pub pixel_id: Option<&'a str>,
    pub waba_id: Option<&'a str>,
    pub ad_account_id: Option<Uuid>,
    /// Meta event names per level (interest, qualified, scheduled) for
    /// events with a click id (`business_messaging`)…
    pub event_names: [Option<&'a str>; 3],
    /// …and without one (`other`).
    pub event_names_other: [Option<&'a str>; 3],
    /// `Some("")` clears it.
    pub test_event_code: Option<&'a str>,
    pub ldu_enabled: Option<bool>,
    pub ldu_country: Option<i32>,
    pub ldu_state: Option<i32>,
}

/// The columns an update touches (`None` leaves one alone; for
/// `test_event_code`, `Some(None)` clears it).
#[derive(Default, AsChangeset)]
#[diesel(table_name = account_directions)]
struct DirectionChanges<'a> {
    capi_enabled: Option<bool>,
    capi_source: Option<CapiSource>,
    capi_crm_type: Option<CrmType>,
    capi_crm_no_dialog: Option<NoDialog>,
    capi_interest_fields: Option<Value>,
    capi_qualified_fields: Option<Value>,
    capi_scheduled_fields: Option<Value>,
    pixel_id: Option<&'a str>,
    whatsapp_business_account_id: Option<&'a str>,
    ad_account_id: Option<Uuid>,
    event_name_interest: Option<&'a str>,
    event_name_qualified: Option<&'a str>,
    event_name_scheduled: Option<&'a str>,
    event_name_interest_other: Option<&'a str>,
    event_name_qualified_other: Option<&'a str>,
    event_name_scheduled_other: Option<&'a str>,
    test_event_code: Option<Option<&'a str>>,
    ldu_enabled: Option<bool>,
    ldu_country: Option<i32>,
    ldu_state: Option<i32>,
    bot_enabled: Option<bool>,
    bot_prompt: Option<Option<&'a str>>,
}

/// `Some("")` → clear (NULL), `Some(x)` → x, `None` → leave as it is.
fn clearing(v: Option<&str>) -> Option<Option<&str>> {
    v.map(|s| Some(s).filter(|s| !s.is_empty()))
}

async fn update_direction(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
    changes: &DirectionChanges<'_>,
) -> Result<bool, diesel::result::Error> {
    let n = diesel::update(account_directions::table.find(id))
        .set((changes, account_directions::updated_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

pub async fn update_direction_capi(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
    u: &DirectionCapiUpdate<'_>,
) -> Result<bool, diesel::result::Error> {
    let [interest, qualified, scheduled] = u.event_names;
    let [interest_other, qualified_other, scheduled_other] = u.event_names_other;
    let changes = DirectionChanges {
        capi_enabled: u.capi_enabled,
        capi_source: u.capi_source,
        capi_crm_type: u.capi_crm_type,
        capi_crm_no_dialog: u.capi_crm_no_dialog,
        pixel_id: u.pixel_id,
        whatsapp_business_account_id: u.waba_id,
        ad_account_id: u.ad_account_id,
        event_name_interest: interest,
        event_name_qualified: qualified,
        event_name_scheduled: scheduled,
        event_name_interest_other: interest_other,
        event_name_qualified_other: qualified_other,
        event_name_scheduled_other: scheduled_other,
        test_event_code: clearing(u.test_event_code),
        ldu_enabled: u.ldu_enabled,
        ldu_country: u.ldu_country,
        ldu_state: u.ldu_state,
        ..DirectionChanges::default()
    };
    update_direction(conn, id, &changes).await
}

#[derive(Debug, Clone, Serialize, Queryable, Selectable)]
#[diesel(table_name = whatsapp_phone_numbers, check_for_backend(diesel::pg::Pg))]
pub struct InstanceRow {
    pub instance_name: String,
    pub direction_id: Option<DirectionId>,
    pub phone_number: Option<String>,
    pub channel: Channel,
    /// Cloud API numbers: Meta's id of the number and its WABA.
    pub phone_number_id: Option<String>,
    pub waba_id: Option<String>,
}

/// An instance's Evolution API key (opened; `None` when unset) and API
/// version (`None`: no such instance).
pub async fn instance_evolution(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    name: &str,
) -> Result<Option<(Option<SecretString>, ApiVersion)>, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    let row: Option<(Option<String>, ApiVersion)> = w::whatsapp_phone_numbers
        .filter(w::instance_name.eq(name))
        .select((w::evolution_api_key, w::evolution_api_version))
        .get_result(conn)
        .await
        .optional()?;
    row.map(|(key, version)| {
        let key = keys.open(secrets::NUMBER_EVOLUTION_API_KEY, key.as_deref())?;
        Ok((key, version))
    })
    .transpose()
}

/// One instance as `list_instances` shows it (`None`: not mapped).
pub async fn instance_row(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<Option<InstanceRow>, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    w::whatsapp_phone_numbers
        .filter(w::instance_name.eq(name))
        .select(InstanceRow::as_select())
        .get_result(conn)
        .await
        .optional()
}

pub async fn list_instances(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<InstanceRow>, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    w::whatsapp_phone_numbers
        .order(w::instance_name)
        .select(InstanceRow::as_select())
        .load(conn)
        .await
}

/// A direction's bot: on or off, and its prompt (`None`: no such direction).
pub async fn direction_bot(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
) -> Result<Option<(bool, Option<String>)>, diesel::result::Error> {
    use account_directions::dsl as d;
    d::account_directions
        .find(id)
        .select((d::bot_enabled, d::bot_prompt))
        .get_result(conn)
        .await
        .optional()
}

/// Switches a direction's bot on or off and sets its prompt (an empty
/// prompt clears it: the generic one is used). Only what is given changes.
pub async fn set_direction_bot(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
    enabled: Option<bool>,
    prompt: Option<&str>,
) -> Result<bool, diesel::result::Error> {
    let changes = DirectionChanges {
        bot_enabled: enabled,
        bot_prompt: clearing(prompt),
        ..DirectionChanges::default()
    };
    update_direction(conn, id, &changes).await
}

#[derive(AsChangeset)]
#[diesel(table_name = whatsapp_phone_numbers)]
struct InstanceBotChanges<'a> {
    evolution_api_key: Option<&'a str>,
    evolution_api_version: Option<ApiVersion>,
    bot_enabled: Option<bool>,
}

/// How the bot reaches an instance's Evolution API, and whether it may.
/// `evolution_api_version` is `v1` or `v2`.
pub async fn set_instance_bot(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    instance_name: &str,
    evolution_api_key: Option<&str>,
    evolution_api_version: Option<ApiVersion>,
    bot_enabled: Option<bool>,
) -> Result<bool, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    let sealed_key = keys.seal_opt(secrets::NUMBER_EVOLUTION_API_KEY, evolution_api_key)?;
    let changes = InstanceBotChanges {
        evolution_api_key: sealed_key.as_deref(),
        evolution_api_version,
        bot_enabled,
    };
    if evolution_api_key.is_none() && evolution_api_version.is_none() && bot_enabled.is_none() {
        // Nothing to change: say whether the instance exists.
        return Ok(instance(conn, keys, instance_name).await?.is_some());
    }
    let n = diesel::update(w::whatsapp_phone_numbers.filter(w::instance_name.eq(instance_name)))
        .set(&changes)
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// A direction's CRM field rules per level; `None` if there is no such direction.
pub async fn crm_fields(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
) -> Result<Option<LevelMapping>, diesel::result::Error> {
    use account_directions::dsl as d;
    let row: Option<(Value, Value, Value)> = d::account_directions
        .find(id)
        .select((
            d::capi_interest_fields,
            d::capi_qualified_fields,
            d::capi_scheduled_fields,
        ))
        .get_result(conn)
        .await
        .optional()?;
    let Some((interest, qualified, scheduled)) = row else {
        return Ok(None);
    };
    Ok(Some(crate::crm::level_mapping(
        interest, qualified, scheduled,
    )?))
}

/// Replaces one level's CRM field rules (an empty list clears them); false
/// if there is no such direction.
pub async fn set_crm_fields(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
    level: Level,
    rules: &[FieldRule],
) -> Result<bool, diesel::result::Error> {
    let value = serde_json::to_value(rules)
        .map_err(|e| diesel::result::Error::SerializationError(e.into()))?;
    let mut changes = DirectionChanges::default();
    match level {
        Level::Interest => changes.capi_interest_fields = Some(value),
        Level::Qualified => changes.capi_qualified_fields = Some(value),
        Level::Scheduled => changes.capi_scheduled_fields = Some(value),
        Level::Purchase => {
            return Err(diesel::result::Error::QueryBuilderError(
                "a purchase has one rule, not a list: set it with set_purchase_rule".into(),
            ));
        }
    }
    update_direction(conn, id, &changes).await
}

/// A direction's purchase setting; `None` if there is no such direction.
pub async fn purchase_rule(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
) -> Result<Option<PurchaseSetting>, diesel::result::Error> {
    use account_directions::dsl as d;
    let row: Option<Option<Value>> = d::account_directions
        .find(id)
        .select(d::capi_purchase_rule)
        .get_result(conn)
        .await
        .optional()?;
    row.map(|v| {
        PurchaseSetting::from_stored(v.as_ref())
            .map_err(|e| diesel::result::Error::DeserializationError(e.into()))
    })
    .transpose()
}

/// Stores a direction's purchase setting; false if there is no such direction.
pub async fn set_purchase_rule(
    conn: &mut AsyncPgConnection,
    id: DirectionId,
    setting: &PurchaseSetting,
) -> Result<bool, diesel::result::Error> {
    use account_directions::dsl as d;
    let n = diesel::update(d::account_directions.find(id))
        .set((
            d::capi_purchase_rule.eq(setting.to_stored()),
            d::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    Ok(n == 1)
}

/// Directions whose names with a click id are still the spec's old
/// defaults (Lead, CompleteRegistration, Schedule), which Meta refuses on
/// business-messaging events: what migration 19 moves.
pub async fn on_old_default_names(
    conn: &mut AsyncPgConnection,
) -> Result<i64, diesel::result::Error> {
    use account_directions::dsl as d;
    d::account_directions
        .filter(
            d::event_name_interest
                .eq("Lead")
                .or(d::event_name_qualified.eq("CompleteRegistration"))
                .or(d::event_name_scheduled.eq("Schedule")),
        )
        .count()
        .get_result(conn)
        .await
}
