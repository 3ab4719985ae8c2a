//! CRM authorisations under way (OAuth from the set-up pages): a state is
//! stored hashed with what the callback needs, taken once, only by the
//! session that started it, before it expires.

use crate::schema::crm_oauth_states;
use crate::secrets::{self, Keys};
use chrono::{DateTime, Utc};
use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use domain::ids::UserAccountId;
use domain::level::CrmType;
use secrecy::SecretString;

/// What an authorisation started with (the secret in the clear here;
/// sealed when stored).
pub struct Pending {
    pub account: UserAccountId,
    pub crm_type: CrmType,
    pub base_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub redirect_uri: String,
    pub default_region: String,
    /// Bitrix24: what its events carry in `auth[application_token]`.
    pub application_token: Option<SecretString>,
}

pub async fn start(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    state_hash: &str,
    session_hash: &str,
    p: &Pending,
    expires_at: DateTime<Utc>,
) -> Result<(), diesel::result::Error> {
    use crm_oauth_states::dsl as o;
    diesel::delete(o::crm_oauth_states.filter(o::expires_at.lt(diesel::dsl::now)))
        .execute(conn)
        .await?;
    let sealed = keys.seal(
        secrets::CRM_OAUTH_STATE_CLIENT_SECRET,
        secrecy::ExposeSecret::expose_secret(&p.client_secret),
    )?;
    let application_token = p
        .application_token
        .as_ref()
        .map(|t| {
            keys.seal(
                secrets::CRM_OAUTH_STATE_APPLICATION_TOKEN,
                secrecy::ExposeSecret::expose_secret(t),
            )
        })
        .transpose()?;
    diesel::insert_into(o::crm_oauth_states)
        .values((
            o::state_hash.eq(state_hash),
            o::session_hash.eq(session_hash),
            o::user_account_id.eq(p.account),
            o::crm_type.eq(p.crm_type),
            o::base_url.eq(&p.base_url),
            o::client_id.eq(&p.client_id),
            o::client_secret.eq(sealed),
            o::redirect_uri.eq(&p.redirect_uri),
            o::default_region.eq(&p.default_region),
            o::application_token.eq(application_token),
            o::expires_at.eq(expires_at),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Takes (deletes) the authorisation whose state hashes to `state_hash`, if
/// this session started it and it has not expired; `None` otherwise (a
/// state of another session stays for that session).
pub async fn take(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    state_hash: &str,
    session_hash: &str,
) -> Result<Option<Pending>, diesel::result::Error> {
    use crm_oauth_states::dsl as o;
    type Row = (
        UserAccountId,
        CrmType,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
    );
    let row: Option<Row> = diesel::delete(
        o::crm_oauth_states
            .filter(o::state_hash.eq(state_hash))
            .filter(o::session_hash.eq(session_hash))
            .filter(o::expires_at.gt(diesel::dsl::now)),
    )
    .returning((
        o::user_account_id,
        o::crm_type,
        o::base_url,
        o::client_id,
        o::client_secret,
        o::redirect_uri,
        o::default_region,
        o::application_token,
    ))
    .get_result(conn)
    .await
    .optional()?;
    row.map(
        |(account, crm_type, base_url, client_id, sealed, redirect_uri, default_region, app)| {
            let client_secret = keys
                .open(secrets::CRM_OAUTH_STATE_CLIENT_SECRET, Some(&sealed))?
                .unwrap_or_else(|| SecretString::from(""));
            let application_token =
                keys.open(secrets::CRM_OAUTH_STATE_APPLICATION_TOKEN, app.as_deref())?;
            Ok(Pending {
                account,
                crm_type,
                base_url,
                client_id,
                client_secret,
                redirect_uri,
                default_region,
                application_token,
            })
        },
    )
    .transpose()
}
