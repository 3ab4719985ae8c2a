//! WhatsApp numbers on Meta's Cloud API: rows of `whatsapp_phone_numbers`
//! named `cloud-<phone_number_id>` (`domain::whatsapp_cloud::instance_name`),
//! so their dialogs flow through the same pipeline as an Evolution
//! instance's.

use crate::{
    directions::attach_to_direction, schema::whatsapp_phone_numbers, sql_functions::coalesce,
};
use diesel::{
    ExpressionMethods, OptionalExtension, QueryDsl, Queryable, Selectable, SelectableHelper,
};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::DirectionId;
use domain::whatsapp_cloud::{Channel, instance_name};

/// What the gateway needs of a Cloud number.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = whatsapp_phone_numbers, check_for_backend(diesel::pg::Pg))]
pub struct CloudNumber {
    pub instance_name: String,
    pub direction_id: Option<DirectionId>,
    pub waba_id: Option<String>,
    /// The Meta app whose secret must sign the number's webhooks.
    pub meta_app_id: Option<String>,
}

/// A Cloud number as an operator maps it.
#[derive(Clone)]
pub struct CloudMapping<'a> {
    pub phone_number_id: &'a str,
    pub direction_id: DirectionId,
    /// `None` keeps what is known (webhooks fill it in from `entry[].id`).
    pub waba_id: Option<&'a str>,
    /// The number itself, for people reading lists; `None` keeps it.
    pub phone_number: Option<&'a str>,
    /// The system-user token replies are sent with; `None` keeps it.
    pub access_token: Option<&'a str>,
    /// The Meta app (id, as in `whatsapp_cloud.app_secrets`) whose webhooks
    /// may speak for the number; `None` keeps it.
    pub meta_app_id: Option<&'a str>,
}

impl std::fmt::Debug for CloudMapping<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudMapping")
            .field("phone_number_id", &self.phone_number_id)
            .field("direction_id", &self.direction_id)
            .field("waba_id", &self.waba_id)
            .field("meta_app_id", &self.meta_app_id)
            .field("access_token", &self.access_token.map(|_| "[redacted]"))
            .finish()
    }
}

/// Maps a Cloud number to a direction (creating or updating it); its
/// existing dialogs pick the direction up. Returns its instance name.
pub async fn map(
    conn: &mut AsyncPgConnection,
    keys: &crate::secrets::Keys,
    m: &CloudMapping<'_>,
) -> Result<String, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    let name = instance_name(m.phone_number_id);
    let token = keys.seal_opt(crate::secrets::NUMBER_CLOUD_ACCESS_TOKEN, m.access_token)?;
    let token = token.as_deref();
    diesel::insert_into(w::whatsapp_phone_numbers)
        .values((
            w::instance_name.eq(&name),
            w::channel.eq(Channel::CloudApi),
            w::phone_number_id.eq(m.phone_number_id),
            w::webhook_secret.eq(""),
            w::direction_id.eq(m.direction_id),
            w::waba_id.eq(m.waba_id),
            w::phone_number.eq(m.phone_number),
            w::cloud_access_token.eq(token),
            w::meta_app_id.eq(m.meta_app_id),
        ))
        .on_conflict(w::phone_number_id)
        .do_update()
        .set((
            w::direction_id.eq(m.direction_id),
            w::waba_id.eq(coalesce(m.waba_id, w::waba_id)),
            w::phone_number.eq(coalesce(m.phone_number, w::phone_number)),
            w::cloud_access_token.eq(coalesce(token, w::cloud_access_token)),
            w::meta_app_id.eq(coalesce(m.meta_app_id, w::meta_app_id)),
        ))
        .execute(conn)
        .await?;
    attach_to_direction(conn, &name, m.direction_id).await?;
    Ok(name)
}

/// The number a webhook names, with the WABA the webhook came from noted.
/// A number nobody has mapped yet is registered without a direction, so
/// its customers' messages are kept: mapping it later gives their dialogs
/// its direction, and under `app_id`, the app that signed the webhook (a
/// later mapping with `--app` says otherwise). Does nothing to the row
/// when all is as known. The gateway calls it only after the number's app
/// was checked (`whatsapp_cloud.rs`).
pub async fn note_webhook_number(
    conn: &mut AsyncPgConnection,
    phone_number_id: &str,
    waba_id: &str,
    app_id: Option<&str>,
) -> Result<CloudNumber, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    let found = number(conn, phone_number_id).await?;
    let number = match found {
        Some(n) => n,
        None => {
            diesel::insert_into(w::whatsapp_phone_numbers)
                .values((
                    w::instance_name.eq(instance_name(phone_number_id)),
                    w::channel.eq(Channel::CloudApi),
                    w::phone_number_id.eq(phone_number_id),
                    w::webhook_secret.eq(""),
                    w::waba_id.eq(waba_id),
                    w::meta_app_id.eq(app_id),
                ))
                .on_conflict(w::phone_number_id)
                .do_nothing()
                .execute(conn)
                .await?;
            number(conn, phone_number_id)
                .await?
                .ok_or(diesel::result::Error::NotFound)?
        }
    };
    if number.waba_id.as_deref() == Some(waba_id) {
        return Ok(number);
    }
    diesel::update(w::whatsapp_phone_numbers.filter(w::phone_number_id.eq(phone_number_id)))
        .set(w::waba_id.eq(waba_id))
        .execute(conn)
        .await?;
    Ok(CloudNumber {
        waba_id: Some(waba_id.to_owned()),
        ..number
    })
}

/// The Cloud number with this `phone_number_id`, if known.
pub async fn number(
    conn: &mut AsyncPgConnection,
    phone_number_id: &str,
) -> Result<Option<CloudNumber>, diesel::result::Error> {
    use whatsapp_phone_numbers::dsl as w;
    w::whatsapp_phone_numbers
        .filter(w::phone_number_id.eq(phone_number_id))
        .select(CloudNumber::as_select())
        .get_result(conn)
        .await
        .optional()
}
