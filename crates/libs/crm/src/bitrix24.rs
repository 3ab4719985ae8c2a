//! Bitrix24 REST (apidocs.bitrix24.com) through an incoming webhook,
//! `POST https://{portal}/rest/{user}/{secret}/{method}.json`, or as an
//! OAuth app, `POST {client_endpoint}{method}.json` with `auth` in the JSON
//! body; answers `{"result": …}` or `{"error", "error_description"}`. The
//! webhook URL holds a secret: it never appears in an error.

use crate::{CrmError, DEFAULT_THROTTLE};
use outbound::Class;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use std::time::Duration;

/// How long a full bucket is left to drain when the portal does not say.
pub const QUERY_LIMIT_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Bitrix24Client {
    http: reqwest::Client,
    rest_url: SecretString,
    /// OAuth: the access token sent as `auth`.
    auth: Option<SecretString>,
}

impl Bitrix24Client {
    /// `rest_url`: the incoming webhook URL, or an OAuth app's
    /// `client_endpoint` (`https://{portal}/rest/`) with `auth` its access token.
    pub fn new(http: reqwest::Client, rest_url: SecretString, auth: Option<SecretString>) -> Self {
        Bitrix24Client {
            http,
            rest_url,
            auth,
        }
    }

    /// `crm.{entity}.fields`: every field of the entity type, by its key
    /// (`{"UF_CRM_…": {type, isMultiple, title, listLabel, items: [{ID, VALUE}]}}`).
    pub async fn fields(&self, entity: &str) -> Result<Value, CrmError> {
        self.call(&format!("crm.{entity}.fields"), &json!({})).await
    }

    /// `crm.deal.get`, `crm.lead.get` or `crm.contact.get` for `entity`.
    pub async fn entity(&self, entity: &str, id: &str) -> Result<Value, CrmError> {
        self.call(&format!("crm.{entity}.get"), &json!({"id": id}))
            .await
    }

    /// A deal's contacts: `[{CONTACT_ID, IS_PRIMARY, …}]`.
    pub async fn deal_contacts(&self, id: &str) -> Result<Value, CrmError> {
        self.call("crm.deal.contact.items.get", &json!({"id": id}))
            .await
    }

    /// One method call; its `result`.
    pub async fn call(&self, method: &str, params: &Value) -> Result<Value, CrmError> {
        let base = self.rest_url.expose_secret().trim_end_matches('/');
        let mut params = params.clone();
        if let (Some(token), Some(p)) = (&self.auth, params.as_object_mut()) {
            p.insert(
                "auth".into(),
                Value::String(token.expose_secret().to_owned()),
            );
        }
        let resp = self
            .http
            .post(format!("{base}/{method}.json"))
            .json(&params)
            .send()
            .await
            .map_err(|e| CrmError::Unavailable(outbound::transport_error(e)))?;
        let status = resp.status().as_u16();
        let header_wait = outbound::retry_after(&resp);
        let body: Option<Value> = resp.json().await.ok();
        let field = |k: &str| {
            body.as_ref()
                .and_then(|b| b.get(k))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (code, description) = (field("error"), field("error_description"));
        let message = || {
            [code.as_str(), description.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join(": ")
        };
        // 503 QUERY_LIMIT_EXCEEDED is the leaky bucket (it drains 2
        // requests/s: a moment's wait), not an outage; the per-method time
        // budget (OPERATION_TIME_LIMIT) and OVERLOAD_LIMIT take longer.
        let wait = match code.as_str() {
            "QUERY_LIMIT_EXCEEDED" => Some(QUERY_LIMIT_WAIT),
            "OPERATION_TIME_LIMIT" | "OVERLOAD_LIMIT" => Some(DEFAULT_THROTTLE),
            _ => None,
        };
        if let Some(wait) = wait {
            return Err(CrmError::Throttled {
                retry_after: header_wait.unwrap_or(wait),
            });
        }
        match outbound::classify(status) {
            Class::Success => body
                .and_then(|mut b| b.get_mut("result").map(Value::take))
                .ok_or_else(|| CrmError::Unavailable("the answer has no result".into())),
            Class::Throttled => Err(CrmError::Throttled {
                retry_after: header_wait.unwrap_or(DEFAULT_THROTTLE),
            }),
            Class::Transient => Err(CrmError::Unavailable(format!(
                "HTTP {status} {}",
                message()
            ))),
            Class::Auth => Err(CrmError::Auth(message())),
            // crm.*.get answers 400 with an empty `error` and "Not found".
            _ if description.to_ascii_lowercase().contains("not found") => Err(CrmError::NotFound),
            Class::Permanent
                if matches!(
                    code.as_str(),
                    "expired_token" | "NO_AUTH_FOUND" | "INVALID_CREDENTIALS"
                ) =>
            {
                Err(CrmError::Auth(message()))
            }
            Class::Permanent => Err(CrmError::Rejected {
                status,
                message: message(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_json, method, path},
    };

    fn http(timeout: Duration) -> reqwest::Client {
        outbound::client(timeout).unwrap_or_else(|e| panic!("client: {e}"))
    }

    fn client(server: &MockServer) -> Bitrix24Client {
        let url = format!("{}/rest/1/hook-secret/", server.uri());
        Bitrix24Client::new(http(Duration::from_secs(2)), SecretString::from(url), None)
    }

    #[tokio::test]
    async fn calls_the_method_with_a_json_body_and_returns_its_result() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/rest/1/hook-secret/crm.deal.get.json"))
            .and(body_json(json!({"id": "410"})))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"result": {"ID": "410", "STAGE_ID": "WON"}, "time": {}})),
            )
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            client(&server).entity("deal", "410").await,
            Ok(json!({"ID": "410", "STAGE_ID": "WON"}))
        );
    }

    #[tokio::test]
    async fn limits_expired_tokens_and_missing_entities_are_told_apart() {
        let server = MockServer::start().await;
        let answer = |m: &str, r: ResponseTemplate| {
            Mock::given(path(format!("/rest/1/hook-secret/{m}.json"))).respond_with(r)
        };
        answer(
            "crm.lead.get",
            ResponseTemplate::new(503).set_body_json(
                json!({"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}),
            ),
        )
        .mount(&server)
        .await;
        answer("crm.contact.get", ResponseTemplate::new(401).set_body_json(json!({"error": "expired_token", "error_description": "The access token provided has expired."})))
            .mount(&server).await;
        answer(
            "crm.deal.get",
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": "", "error_description": "Not found"})),
        )
        .mount(&server)
        .await;
        answer(
            "crm.quote.get",
            ResponseTemplate::new(500).set_body_json(json!({"error": "INTERNAL_SERVER_ERROR"})),
        )
        .mount(&server)
        .await;
        let c = client(&server);
        assert_eq!(
            c.entity("lead", "1").await,
            Err(CrmError::Throttled {
                retry_after: QUERY_LIMIT_WAIT
            })
        );
        assert!(
            matches!(c.entity("contact", "1").await, Err(CrmError::Auth(m)) if m.contains("expired_token"))
        );
        assert_eq!(c.entity("deal", "1").await, Err(CrmError::NotFound));
        let err = c.entity("quote", "1").await;
        assert!(matches!(&err, Err(CrmError::Unavailable(_))), "{err:?}");
        // Nothing reached: the error names no URL (it holds the webhook's secret).
        let gone = Bitrix24Client::new(
            http(Duration::from_secs(1)),
            SecretString::from("http://127.0.0.1:9/rest/1/hook-secret/".to_owned()),
            None,
        );
        let err = gone
            .entity("deal", "1")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("unavailable") && !err.contains("hook-secret"),
            "{err}"
        );
    }
}
