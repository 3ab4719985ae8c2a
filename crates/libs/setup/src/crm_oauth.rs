//! Connecting amoCRM from the browser by OAuth: the set-up page starts the
//! authorisation (a single-use state bound to the session, 20 minutes), the
//! callback exchanges the code for the first token pair, which goes
//! straight into sealed storage as a new connection. A callback whose state
//! is unknown, spent, expired or another session's is refused, as is one
//! coming back from another account's host.

use crate::{Actor, Result, SetupError, audit};
use ::crm::oauth::{OAuthApp, exchange_amocrm};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use domain::ids::{ConnectionId, UserAccountId};
use domain::level::CrmType;
use secrecy::SecretString;
use serde_json::json;
use storage::crm::NewConnection;
use storage::crm_oauth::{self, Pending};
use storage::secrets::Keys;

/// How long an authorisation may take (amoCRM's codes last 20 minutes).
pub const STATE_TTL_MINUTES: i64 = 20;

/// An http(s) address, or a refusal naming `what`.
pub fn check_http_url(what: &str, url: &str) -> Result<()> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(SetupError::invalid(format!(
            "{what} must be an http(s) URL"
        )))
    }
}

/// What the editor gives to start.
pub struct AmoStart {
    /// The account's address, e.g. https://clinic.amocrm.ru.
    pub base_url: String,
    /// The integration's id and secret key.
    pub client_id: String,
    pub client_secret: String,
    pub default_region: String,
}

fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or_default()
}

/// Starts an authorisation; the address of amoCRM's consent page to send
/// the browser to.
#[allow(clippy::too_many_arguments)]
pub async fn start_amocrm(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    account: UserAccountId,
    session_hash: &str,
    authorize_url: &str,
    redirect_uri: &str,
    s: &AmoStart,
) -> Result<String> {
    let base_url = s.base_url.trim().trim_end_matches('/');
    check_http_url("the account's address", base_url)?;
    if s.client_id.trim().is_empty() {
        return Err(SetupError::invalid("the integration's id is needed"));
    }
    if s.client_secret.trim().is_empty() {
        return Err(SetupError::invalid(
            "the integration's secret key is needed",
        ));
    }
    let state = domain::api_key::random_secret();
    let pending = Pending {
        account,
        crm_type: CrmType::AmoCrm,
        base_url: base_url.to_owned(),
        client_id: s.client_id.trim().to_owned(),
        client_secret: SecretString::from(s.client_secret.trim().to_owned()),
        redirect_uri: redirect_uri.to_owned(),
        default_region: s.default_region.clone(),
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
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &pending.client_id)
        .append_pair("state", &state)
        .append_pair("mode", "post_message")
        .finish();
    Ok(format!("{authorize_url}?{query}"))
}

/// The callback's parameters.
pub struct Callback<'a> {
    pub state: &'a str,
    pub code: &'a str,
    /// The account's host amoCRM says the code is for.
    pub referer: &'a str,
}

/// Finishes an authorisation: the new connection and the webhook path to
/// paste into amoCRM (it holds the webhook's secret).
pub async fn finish_amocrm(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    http: &reqwest::Client,
    actor: &Actor,
    account: UserAccountId,
    session_hash: &str,
    cb: &Callback<'_>,
) -> Result<(ConnectionId, String)> {
    let pending = crm_oauth::take(conn, keys, &domain::api_key::hash(cb.state), session_hash)
        .await?
        .filter(|p| p.account == account && p.crm_type == CrmType::AmoCrm)
        .ok_or_else(|| {
            SetupError::invalid(
                "this authorisation is unknown, already used, expired or another session's: start it again from the set-up page",
            )
        })?;
    let expected = host(&pending.base_url);
    if cb.referer != expected {
        return Err(SetupError::invalid(format!(
            "the authorisation came back for {}, not {expected}: start it again",
            cb.referer
        )));
    }
    if cb.code.trim().is_empty() {
        return Err(SetupError::invalid(
            "amoCRM sent no code: start the authorisation again",
        ));
    }
    let app = OAuthApp {
        client_id: pending.client_id.clone(),
        client_secret: pending.client_secret.clone(),
        redirect_uri: Some(pending.redirect_uri.clone()),
    };
    let pair = exchange_amocrm(http, &pending.base_url, &app, cb.code.trim())
        .await
        .map_err(|e| SetupError::Upstream(format!("amoCRM refused the authorisation: {e}")))?;
    let secret = domain::api_key::random_secret();
    let subdomain = expected.split('.').next().unwrap_or_default().to_owned();
    let expose = |s: &SecretString| secrecy::ExposeSecret::expose_secret(s).to_owned();
    let (access, refresh, client_secret) = (
        expose(&pair.access_token),
        expose(&pair.refresh_token),
        expose(&app.client_secret),
    );
    let expires_at = chrono::Utc::now()
        + chrono::Duration::from_std(pair.expires_in).unwrap_or(chrono::Duration::hours(24));
    conn.transaction(async |conn| {
        let id = storage::crm::create_connection(
            conn,
            keys,
            &NewConnection {
                access_token: Some(&access),
                webhook_secret: Some(&secret),
                account_subdomain: Some(&subdomain),
                refresh_token: Some(&refresh),
                token_expires_at: Some(expires_at),
                oauth_client_id: Some(&app.client_id),
                oauth_client_secret: Some(&client_secret),
                oauth_redirect_uri: Some(&pending.redirect_uri),
                default_region: &pending.default_region,
                ..NewConnection::new(account, CrmType::AmoCrm, &pending.base_url)
            },
        )
        .await?;
        let after = json!({"crm_type": "amocrm", "base_url": pending.base_url, "client_id": app.client_id,
            "access_token": "set", "refresh_token": "set", "client_secret": "set", "webhook_secret": "set"});
        let target = format!("crm connection {id}");
        audit::record(conn, actor, Some(account), "crm.connect", &target, None::<&()>, Some(&after)).await?;
        Ok((id, format!("/webhooks/amocrm/{id}?secret={secret}")))
    })
    .await
}
