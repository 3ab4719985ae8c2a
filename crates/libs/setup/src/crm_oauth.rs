//! Connecting amoCRM or Bitrix24 from the browser by OAuth: the set-up page
//! starts the authorisation (a single-use state bound to the session, 20
//! minutes), the callback exchanges the code for the first token pair, which
//! goes straight into sealed storage as a new connection. A callback whose
//! state is unknown, spent, expired or another session's is refused, as is
//! one coming back for another account's or portal's host.

use crate::{Actor, Result, SetupError};
use ::crm::oauth::{OAuthApp, exchange_amocrm, exchange_bitrix24};
use diesel_async::AsyncPgConnection;
use domain::ids::{ConnectionId, UserAccountId};
use domain::level::CrmType;
use secrecy::SecretString;
use storage::crm::NewConnection;
use storage::crm_oauth::{self, Pending};
use storage::secrets::Keys;

/// How long an authorisation may take (amoCRM's codes last 20 minutes).
pub const STATE_TTL_MINUTES: i64 = 20;

/// What the editor gives to start.
pub struct Start {
    pub crm: CrmType,
    /// amoCRM: the account's address (https://clinic.amocrm.ru); Bitrix24:
    /// the portal's (https://clinic.bitrix24.ru).
    pub base_url: String,
    /// The integration's (amoCRM) or app's (Bitrix24) id and secret.
    pub client_id: String,
    pub client_secret: String,
    /// Bitrix24: the application token its events carry.
    pub application_token: Option<String>,
    pub default_region: String,
}

/// Where the CRMs' consent pages and token servers are.
pub struct Endpoints<'a> {
    /// amoCRM's consent page (`https://www.amocrm.ru/oauth`).
    pub amocrm_authorize: &'a str,
    /// Bitrix24's token server (`https://oauth.bitrix.info/oauth/token/`).
    pub bitrix24_token: &'a str,
}

/// Starts an authorisation; the address of the CRM's consent page to send
/// the browser to (it comes back to `redirect_uri`).
pub async fn start(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    account: UserAccountId,
    session_hash: &str,
    endpoints: &Endpoints<'_>,
    redirect_uri: &str,
    s: &Start,
) -> Result<String> {
    let base_url = s.base_url.trim().trim_end_matches('/');
    let what = match s.crm {
        CrmType::AmoCrm => "the account's address",
        CrmType::Bitrix24 => "the portal's address",
    };
    crate::crm_connect::check_http_url(what, base_url)?;
    if s.client_id.trim().is_empty() {
        return Err(SetupError::invalid(
            "the integration's (app's) id is needed",
        ));
    }
    if s.client_secret.trim().is_empty() {
        return Err(SetupError::invalid(
            "the integration's (app's) secret key is needed",
        ));
    }
    let application_token = s
        .application_token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if s.crm == CrmType::Bitrix24 && application_token.is_none() {
        return Err(SetupError::invalid(
            "Bitrix24's application token is needed (its events are checked against it)",
        ));
    }
    let state = domain::api_key::random_secret();
    let pending = Pending {
        account,
        crm_type: s.crm,
        base_url: base_url.to_owned(),
        client_id: s.client_id.trim().to_owned(),
        client_secret: SecretString::from(s.client_secret.trim().to_owned()),
        redirect_uri: redirect_uri.to_owned(),
        default_region: s.default_region.clone(),
        application_token: application_token.map(|t| SecretString::from(t.to_owned())),
    };
    let expires = chrono::Utc::now() + chrono::Duration::minutes(STATE_TTL_MINUTES);
    crm_oauth::start(
        conn,
        keys,
        &domain::api_key::hash(&state),
        session_hash,
        &pending,
        expires,
    )
    .await?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", &pending.client_id)
        .append_pair("state", &state);
    Ok(match s.crm {
        CrmType::AmoCrm => {
            query.append_pair("mode", "post_message");
            format!("{}?{}", endpoints.amocrm_authorize, query.finish())
        }
        CrmType::Bitrix24 => format!("{base_url}/oauth/authorize/?{}", query.finish()),
    })
}

/// The callback's parameters.
pub struct Callback<'a> {
    pub state: &'a str,
    pub code: &'a str,
    /// The host the CRM says the code is for (amoCRM `referer`, Bitrix24
    /// `domain`).
    pub host: &'a str,
    /// Bitrix24: the portal's member id.
    pub member_id: Option<&'a str>,
}

/// Finishes an authorisation: the new connection and the webhook path to
/// give the CRM (amoCRM's holds the webhook's secret).
#[allow(clippy::too_many_arguments)]
pub async fn finish(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    http: &reqwest::Client,
    endpoints: &Endpoints<'_>,
    actor: &Actor,
    account: UserAccountId,
    session_hash: &str,
    crm: CrmType,
    cb: &Callback<'_>,
) -> Result<(ConnectionId, String)> {
    let pending = crm_oauth::take(conn, keys, &domain::api_key::hash(cb.state), session_hash)
        .await?
        .filter(|p| p.account == account && p.crm_type == crm)
        .ok_or_else(|| {
            SetupError::invalid(
                "this authorisation is unknown, already used, expired or another session's: start it again from the set-up page",
            )
        })?;
    let expected = crate::crm_connect::host(&pending.base_url);
    if cb.host != expected {
        return Err(SetupError::invalid(format!(
            "the authorisation came back for {}, not {expected}: start it again",
            cb.host
        )));
    }
    if cb.code.trim().is_empty() {
        return Err(SetupError::invalid(
            "the CRM sent no code: start the authorisation again",
        ));
    }
    let app = OAuthApp {
        client_id: pending.client_id.clone(),
        client_secret: pending.client_secret.clone(),
        redirect_uri: Some(pending.redirect_uri.clone()),
    };
    let pair = match crm {
        CrmType::AmoCrm => exchange_amocrm(http, &pending.base_url, &app, cb.code.trim()).await,
        CrmType::Bitrix24 => {
            exchange_bitrix24(http, endpoints.bitrix24_token, &app, cb.code.trim()).await
        }
    }
    .map_err(|e| SetupError::Upstream(format!("the CRM refused the authorisation: {e}")))?;
    let expose = |s: &SecretString| secrecy::ExposeSecret::expose_secret(s).to_owned();
    let (access, refresh, client_secret) = (
        expose(&pair.access_token),
        expose(&pair.refresh_token),
        expose(&app.client_secret),
    );
    let application_token = pending.application_token.as_ref().map(expose);
    let expires_at = chrono::Utc::now()
        + chrono::Duration::from_std(pair.expires_in).unwrap_or(chrono::Duration::hours(1));
    let secret = domain::api_key::random_secret();
    let subdomain = expected.split('.').next().unwrap_or_default().to_owned();
    let rest = format!("{}/rest/", pending.base_url);
    let common = NewConnection {
        access_token: Some(&access),
        refresh_token: Some(&refresh),
        token_expires_at: Some(expires_at),
        oauth_client_id: Some(&app.client_id),
        oauth_client_secret: Some(&client_secret),
        default_region: &pending.default_region,
        ..NewConnection::new(account, crm, &pending.base_url)
    };
    let new = match crm {
        CrmType::AmoCrm => NewConnection {
            webhook_secret: Some(&secret),
            account_subdomain: Some(&subdomain),
            oauth_redirect_uri: Some(&pending.redirect_uri),
            ..common
        },
        CrmType::Bitrix24 => NewConnection {
            base_url: &rest,
            member_id: cb.member_id,
            application_token: application_token.as_deref(),
            ..common
        },
    };
    let id = crate::crm_connect::create(conn, keys, actor, &new).await?;
    Ok(match crm {
        CrmType::AmoCrm => (id, format!("/webhooks/amocrm/{id}?secret={secret}")),
        CrmType::Bitrix24 => (id, format!("/webhooks/bitrix24/{id}")),
    })
}
