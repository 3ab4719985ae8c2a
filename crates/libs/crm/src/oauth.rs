//! OAuth 2.0 refresh (developers.kommo.com oauth; apidocs.bitrix24.com oauth): amoCRM `POST {account}/oauth2/access_token`
//! (JSON, the redirect URI again), Bitrix24 `GET https://oauth.bitrix.info/oauth/token/`
//! (query). Either spends the refresh token used: the new pair must be
//! stored before anyone refreshes again (the caller holds the connection's
//! row lock for that).

use crate::CrmError;
use outbound::Class;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;

/// The integration (amoCRM) or application (Bitrix24) that owns the tokens.
#[derive(Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: SecretString,
    /// amoCRM only.
    pub redirect_uri: Option<String>,
}

/// A refreshed pair.
#[derive(Clone)]
pub struct TokenPair {
    pub access_token: SecretString,
    pub refresh_token: SecretString,
    pub expires_in: Duration,
}

#[derive(Deserialize)]
struct Answer {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
}

/// What a token request trades for a pair: a refresh token, or the code
/// the CRM's consent sent back (the first pair).
#[derive(Clone, Copy)]
enum Grant<'a> {
    Refresh(&'a str),
    Code(&'a str),
}

impl<'a> Grant<'a> {
    /// `grant_type` and the parameter that carries the grant.
    fn fields(self) -> [(&'static str, &'a str); 2] {
        match self {
            Grant::Refresh(t) => [("grant_type", "refresh_token"), ("refresh_token", t)],
            Grant::Code(c) => [("grant_type", "authorization_code"), ("code", c)],
        }
    }
}

/// amoCRM: `POST {account}/oauth2/access_token` (JSON, the redirect URI again).
async fn amocrm_token(
    http: &reqwest::Client,
    base_url: &str,
    app: &OAuthApp,
    grant: Grant<'_>,
) -> Result<TokenPair, CrmError> {
    let mut body = json!({
        "client_id": app.client_id,
        "client_secret": app.client_secret.expose_secret(),
        "redirect_uri": app.redirect_uri.as_deref().unwrap_or_default(),
    });
    for (k, v) in grant.fields() {
        body[k] = json!(v);
    }
    let url = format!("{}/oauth2/access_token", base_url.trim_end_matches('/'));
    answer(http.post(url).json(&body).send().await).await
}

/// Bitrix24: `GET {oauth_url}?…` (query).
async fn bitrix24_token(
    http: &reqwest::Client,
    oauth_url: &str,
    app: &OAuthApp,
    grant: Grant<'_>,
) -> Result<TokenPair, CrmError> {
    let [grant_type, carried] = grant.fields();
    let query = [
        grant_type,
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.expose_secret()),
        carried,
    ];
    answer(http.get(oauth_url).query(&query).send().await).await
}

/// amoCRM: a new pair for `refresh_token`.
pub async fn refresh_amocrm(
    http: &reqwest::Client,
    base_url: &str,
    app: &OAuthApp,
    refresh_token: &SecretString,
) -> Result<TokenPair, CrmError> {
    let grant = Grant::Refresh(refresh_token.expose_secret());
    amocrm_token(http, base_url, app, grant).await
}

/// amoCRM: the first pair, for the code its consent page sent back to
/// `app.redirect_uri` (valid 20 minutes, once).
pub async fn exchange_amocrm(
    http: &reqwest::Client,
    base_url: &str,
    app: &OAuthApp,
    code: &str,
) -> Result<TokenPair, CrmError> {
    amocrm_token(http, base_url, app, Grant::Code(code)).await
}

/// Bitrix24: a new pair for `refresh_token` from the OAuth server at
/// `oauth_url` (`https://oauth.bitrix.info/oauth/token/`).
pub async fn refresh_bitrix24(
    http: &reqwest::Client,
    oauth_url: &str,
    app: &OAuthApp,
    refresh_token: &SecretString,
) -> Result<TokenPair, CrmError> {
    let grant = Grant::Refresh(refresh_token.expose_secret());
    bitrix24_token(http, oauth_url, app, grant).await
}

/// Bitrix24: the first pair, for the code the portal's consent sent back.
pub async fn exchange_bitrix24(
    http: &reqwest::Client,
    oauth_url: &str,
    app: &OAuthApp,
    code: &str,
) -> Result<TokenPair, CrmError> {
    bitrix24_token(http, oauth_url, app, Grant::Code(code)).await
}

async fn answer(resp: reqwest::Result<reqwest::Response>) -> Result<TokenPair, CrmError> {
    let resp = resp.map_err(|e| CrmError::Unavailable(outbound::transport_error(e)))?;
    let status = resp.status().as_u16();
    let body: Option<Value> = resp.json().await.ok();
    match outbound::classify(status) {
        Class::Success => {
            let a: Answer = body
                .and_then(|b| serde_json::from_value(b).ok())
                .ok_or_else(|| {
                    CrmError::Unavailable("the token answer has no token pair".into())
                })?;
            Ok(TokenPair {
                access_token: SecretString::from(a.access_token),
                refresh_token: SecretString::from(a.refresh_token),
                expires_in: Duration::from_secs(a.expires_in),
            })
        }
        Class::Throttled => Err(CrmError::Throttled {
            retry_after: crate::DEFAULT_THROTTLE,
        }),
        Class::Transient => Err(CrmError::Unavailable(format!(
            "token refresh: HTTP {status}"
        ))),
        // A spent or revoked refresh token, a wrong client: only an operator
        // (a new authorisation) can fix it. The answer's text names no secret.
        Class::Auth | Class::Permanent => {
            let said = body
                .as_ref()
                .and_then(|b| {
                    ["hint", "detail", "error_description", "error"]
                        .iter()
                        .find_map(|k| b.get(*k).and_then(Value::as_str))
                })
                .unwrap_or("refused");
            Err(CrmError::Auth(format!(
                "the token request was refused (HTTP {status}): {said}"
            )))
        }
    }
}
