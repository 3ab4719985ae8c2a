//! Tenancy and configuration: user accounts, ad accounts (Meta tokens),
//! directions with their CAPI settings, and WhatsApp instances.

use crate::PreparedExt;
use diesel::{
    OptionalExtension, QueryableByName,
    sql_types::{Bool, Nullable, Text, Uuid as SqlUuid},
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

/// A WhatsApp instance as the webhook gateway needs it.
#[derive(Clone, QueryableByName)]
pub struct Instance {
    #[diesel(sql_type = Text)]
    pub instance_name: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub direction_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    pub webhook_secret: String,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("instance_name", &self.instance_name)
            .field("direction_id", &self.direction_id)
            .field("webhook_secret", &"[redacted]")
            .finish()
    }
}

pub async fn instance(
    conn: &mut AsyncPgConnection,
    name: &str,
) -> Result<Option<Instance>, diesel::result::Error> {
    diesel::sql_query("SELECT instance_name, direction_id, webhook_secret FROM whatsapp_phone_numbers WHERE instance_name = $1")
        .bind::<Text, _>(name)
        .prepared()
        .get_result(conn)
        .await
        .optional()
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

pub async fn create_user_account(
    conn: &mut AsyncPgConnection,
    name: &str,
    access_token: Option<&str>,
) -> Result<Uuid, diesel::result::Error> {
    let r: Id = diesel::sql_query(
        "INSERT INTO user_accounts (name, access_token) VALUES ($1, $2) RETURNING id",
    )
    .bind::<Text, _>(name)
    .bind::<Nullable<Text>, _>(access_token)
    .prepared()
    .get_result(conn)
    .await?;
    Ok(r.id)
}

/// Sets (or with `None` clears) the secret of the Meta app behind an ad
/// account's token, used for `appsecret_proof`.
pub async fn set_ad_account_app_secret(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    app_secret: Option<&str>,
) -> Result<bool, diesel::result::Error> {
    let n = diesel::sql_query("UPDATE ad_accounts SET app_secret = $2 WHERE id = $1")
        .bind::<SqlUuid, _>(id)
        .bind::<Nullable<Text>, _>(app_secret)
        .prepared()
        .execute(conn)
        .await?;
    Ok(n == 1)
}

pub async fn create_ad_account(
    conn: &mut AsyncPgConnection,
    user_account_id: Uuid,
    name: &str,
    meta_ad_account_id: Option<&str>,
    access_token: Option<&str>,
) -> Result<Uuid, diesel::result::Error> {
    let r: Id = diesel::sql_query(
        "INSERT INTO ad_accounts (user_account_id, name, meta_ad_account_id, access_token) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind::<SqlUuid, _>(user_account_id)
    .bind::<Text, _>(name)
    .bind::<Nullable<Text>, _>(meta_ad_account_id)
    .bind::<Nullable<Text>, _>(access_token)
    .prepared()
    .get_result(conn)
    .await?;
    Ok(r.id)
}

/// A direction's CAPI settings as an operator sets them.
#[derive(Debug, Clone, Default)]
pub struct NewDirection<'a> {
    pub user_account_id: Uuid,
    pub ad_account_id: Option<Uuid>,
    pub name: &'a str,
    pub capi_enabled: bool,
    pub capi_source: &'a str,
    pub pixel_id: Option<&'a str>,
    pub waba_id: Option<&'a str>,
}

pub async fn create_direction(
    conn: &mut AsyncPgConnection,
    d: &NewDirection<'_>,
) -> Result<Uuid, diesel::result::Error> {
    let r: Id = diesel::sql_query(
        "INSERT INTO account_directions (user_account_id, ad_account_id, name, capi_enabled, capi_source, pixel_id, \
           whatsapp_business_account_id) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
    )
    .bind::<SqlUuid, _>(d.user_account_id)
    .bind::<Nullable<SqlUuid>, _>(d.ad_account_id)
    .bind::<Text, _>(d.name)
    .bind::<Bool, _>(d.capi_enabled)
    .bind::<Text, _>(d.capi_source)
    .bind::<Nullable<Text>, _>(d.pixel_id)
    .bind::<Nullable<Text>, _>(d.waba_id)
    .prepared()
    .get_result(conn)
    .await?;
    Ok(r.id)
}

/// Maps a WhatsApp instance to a direction (creating or updating it), and
/// lets existing dialogs of that instance pick the direction up.
pub async fn map_instance(
    conn: &mut AsyncPgConnection,
    instance_name: &str,
    direction_id: Uuid,
    webhook_secret: &str,
    phone_number: Option<&str>,
) -> Result<(), diesel::result::Error> {
    diesel::sql_query(
        "INSERT INTO whatsapp_phone_numbers (instance_name, direction_id, webhook_secret, phone_number) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (instance_name) DO UPDATE SET \
           direction_id = EXCLUDED.direction_id, webhook_secret = EXCLUDED.webhook_secret, \
           phone_number = COALESCE(EXCLUDED.phone_number, whatsapp_phone_numbers.phone_number)",
    )
    .bind::<Text, _>(instance_name)
    .bind::<SqlUuid, _>(direction_id)
    .bind::<Text, _>(webhook_secret)
    .bind::<Nullable<Text>, _>(phone_number)
    .prepared()
    .execute(conn)
    .await?;
    // The trigger refills direction_id from the new mapping.
    diesel::sql_query("UPDATE dialog_analysis SET direction_id = NULL WHERE instance_name = $1")
        .bind::<Text, _>(instance_name)
        .prepared()
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct UserAccountRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Bool)]
    pub has_token: bool,
}

pub async fn list_user_accounts(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<UserAccountRow>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT id, name, COALESCE(access_token, '') <> '' AS has_token FROM user_accounts ORDER BY created_at, name",
    )
    .prepared()
    .load(conn)
    .await
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct AdAccountRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub user_account_id: Uuid,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub meta_ad_account_id: Option<String>,
    #[diesel(sql_type = Bool)]
    pub has_token: bool,
}

pub async fn list_ad_accounts(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<AdAccountRow>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT id, user_account_id, name, meta_ad_account_id, COALESCE(access_token, '') <> '' AS has_token \
         FROM ad_accounts ORDER BY created_at, name",
    )
    .prepared()
    .load(conn)
    .await
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct DirectionRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    pub user_account_id: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub ad_account_id: Option<Uuid>,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Bool)]
    pub capi_enabled: bool,
    #[diesel(sql_type = Text)]
    pub capi_source: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub pixel_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub waba_id: Option<String>,
    #[diesel(sql_type = Text)]
    pub event_name_interest: String,
    #[diesel(sql_type = Text)]
    pub event_name_qualified: String,
    #[diesel(sql_type = Text)]
    pub event_name_scheduled: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub test_event_code: Option<String>,
    #[diesel(sql_type = Bool)]
    pub ldu_enabled: bool,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub ldu_country: i32,
    #[diesel(sql_type = diesel::sql_types::Int4)]
    pub ldu_state: i32,
    #[diesel(sql_type = Nullable<Text>)]
    pub instances: Option<String>,
}

pub async fn list_directions(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<DirectionRow>, diesel::result::Error> {
    diesel::sql_query(
        "SELECT d.id, d.user_account_id, d.ad_account_id, d.name, d.capi_enabled, d.capi_source, d.pixel_id, \
           d.whatsapp_business_account_id AS waba_id, d.event_name_interest, d.event_name_qualified, \
           d.event_name_scheduled, d.test_event_code, d.ldu_enabled, d.ldu_country, d.ldu_state, \
           (SELECT string_agg(w.instance_name, ',' ORDER BY w.instance_name) FROM whatsapp_phone_numbers w \
              WHERE w.direction_id = d.id) AS instances \
         FROM account_directions d ORDER BY d.created_at, d.name",
    )
    .prepared()
    .load(conn)
    .await
}

/// Changes a direction's CAPI settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct DirectionCapiUpdate<'a> {
    pub capi_enabled: Option<bool>,
    pub capi_source: Option<&'a str>,
    pub pixel_id: Option<&'a str>,
    pub waba_id: Option<&'a str>,
    pub ad_account_id: Option<Uuid>,
    /// Meta event names per level (interest, qualified, scheduled).
    pub event_names: [Option<&'a str>; 3],
    /// `Some("")` clears it.
    pub test_event_code: Option<&'a str>,
    pub ldu_enabled: Option<bool>,
    pub ldu_country: Option<i32>,
    pub ldu_state: Option<i32>,
}

pub async fn update_direction_capi(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    u: &DirectionCapiUpdate<'_>,
) -> Result<bool, diesel::result::Error> {
    let n = diesel::sql_query(
        "UPDATE account_directions SET capi_enabled = COALESCE($2, capi_enabled), \
           capi_source = COALESCE($3, capi_source), pixel_id = COALESCE($4, pixel_id), \
           whatsapp_business_account_id = COALESCE($5, whatsapp_business_account_id), \
           ad_account_id = COALESCE($6, ad_account_id), \
           event_name_interest = COALESCE($7, event_name_interest), \
           event_name_qualified = COALESCE($8, event_name_qualified), \
           event_name_scheduled = COALESCE($9, event_name_scheduled), \
           test_event_code = CASE WHEN $10::text IS NULL THEN test_event_code ELSE NULLIF($10, '') END, \
           ldu_enabled = COALESCE($11, ldu_enabled), ldu_country = COALESCE($12, ldu_country), \
           ldu_state = COALESCE($13, ldu_state), updated_at = now() WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Bool>, _>(u.capi_enabled)
    .bind::<Nullable<Text>, _>(u.capi_source)
    .bind::<Nullable<Text>, _>(u.pixel_id)
    .bind::<Nullable<Text>, _>(u.waba_id)
    .bind::<Nullable<SqlUuid>, _>(u.ad_account_id)
    .bind::<Nullable<Text>, _>(u.event_names[0])
    .bind::<Nullable<Text>, _>(u.event_names[1])
    .bind::<Nullable<Text>, _>(u.event_names[2])
    .bind::<Nullable<Text>, _>(u.test_event_code)
    .bind::<Nullable<Bool>, _>(u.ldu_enabled)
    .bind::<Nullable<diesel::sql_types::Int4>, _>(u.ldu_country)
    .bind::<Nullable<diesel::sql_types::Int4>, _>(u.ldu_state)
    .prepared()
    .execute(conn)
    .await?;
    Ok(n == 1)
}

#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct InstanceRow {
    #[diesel(sql_type = Text)]
    pub instance_name: String,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub direction_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    pub phone_number: Option<String>,
}

pub async fn list_instances(
    conn: &mut AsyncPgConnection,
) -> Result<Vec<InstanceRow>, diesel::result::Error> {
    diesel::sql_query("SELECT instance_name, direction_id, phone_number FROM whatsapp_phone_numbers ORDER BY instance_name")
        .prepared()
        .load(conn)
        .await
}

/// Switches a direction's bot on or off and sets its prompt (an empty
/// prompt clears it: the generic one is used). Only what is given changes.
pub async fn set_direction_bot(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    enabled: Option<bool>,
    prompt: Option<&str>,
) -> Result<bool, diesel::result::Error> {
    let n = diesel::sql_query(
        "UPDATE account_directions SET bot_enabled = COALESCE($2, bot_enabled), \
           bot_prompt = CASE WHEN $3::text IS NULL THEN bot_prompt ELSE NULLIF($3, '') END, \
           updated_at = now() WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Nullable<Bool>, _>(enabled)
    .bind::<Nullable<Text>, _>(prompt)
    .prepared()
    .execute(conn)
    .await?;
    Ok(n == 1)
}

/// How the bot reaches an instance's Evolution API, and whether it may.
pub async fn set_instance_bot(
    conn: &mut AsyncPgConnection,
    instance_name: &str,
    evolution_api_key: Option<&str>,
    evolution_api_version: Option<&str>,
    bot_enabled: Option<bool>,
) -> Result<bool, diesel::result::Error> {
    let n = diesel::sql_query(
        "UPDATE whatsapp_phone_numbers SET evolution_api_key = COALESCE($2, evolution_api_key), \
           evolution_api_version = COALESCE($3, evolution_api_version), \
           bot_enabled = COALESCE($4, bot_enabled) WHERE instance_name = $1",
    )
    .bind::<Text, _>(instance_name)
    .bind::<Nullable<Text>, _>(evolution_api_key)
    .bind::<Nullable<Text>, _>(evolution_api_version)
    .bind::<Nullable<Bool>, _>(bot_enabled)
    .prepared()
    .execute(conn)
    .await?;
    Ok(n == 1)
}
