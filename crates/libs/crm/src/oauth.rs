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

/// amoCRM: a new pair for `refresh_token`.
pub async fn refresh_amocrm(
    http: &reqwest::Client,
    base_url: &str,
    app: &OAuthApp,
    refresh_token: &SecretString,
) -> Result<TokenPair, CrmError> {
    let resp = http
        .post(format!(
            "{}/oauth2/access_token",
            base_url.trim_end_matches('/')
        ))
        .json(&json!({
            "client_id": app.client_id,
            "client_secret": app.client_secret.expose_secret(),
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.expose_secret(),
            "redirect_uri": app.redirect_uri.as_deref().unwrap_or_default(),
        }))
        .send()
        .await;
    answer(resp).await
}

/// amoCRM: the first pair, for the code its authorisation page sent back
/// to `app.redirect_uri` (valid 20 minutes, once).
pub async fn exchange_amocrm(
    http: &reqwest::Client,
    base_url: &str,
    app: &OAuthApp,
    code: &str,
) -> Result<TokenPair, CrmError> {
    let resp = http
        .post(format!(
            "{}/oauth2/access_token",
            base_url.trim_end_matches('/')
        ))
        .json(&json!({
            "client_id": app.client_id,
            "client_secret": app.client_secret.expose_secret(),
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": app.redirect_uri.as_deref().unwrap_or_default(),
        }))
        .send()
        .await;
    answer(resp).await
}

/// Bitrix24: a new pair for `refresh_token` from the OAuth server at
/// `oauth_url` (`https://oauth.bitrix.info/oauth/token/`).
pub async fn refresh_bitrix24(
    http: &reqwest::Client,
    oauth_url: &str,
    app: &OAuthApp,
    refresh_token: &SecretString,
) -> Result<TokenPair, CrmError> {
    let resp = http
        .get(oauth_url)
        .query(&[
            ("grant_type", "refresh_token"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
            ("refresh_token", refresh_token.expose_secret()),
        ])
        .send()
        .await;
    answer(resp).await
}

/// Bitrix24: the first pair, for the code the portal's consent sent back
/// (from the OAuth server at `oauth_url`).
pub async fn exchange_bitrix24(
    http: &reqwest::Client,
    oauth_url: &str,
    app: &OAuthApp,
    code: &str,
) -> Result<TokenPair, CrmError> {
    let resp = http
        .get(oauth_url)
        .query(&[
            ("grant_type", "authorization_code"),
            ("client_id", app.client_id.as_str()),
            ("client_secret", app.client_secret.expose_secret()),
            ("code", code),
        ])
        .send()
        .await;
    answer(resp).await
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
