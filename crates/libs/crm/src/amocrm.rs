//! amoCRM/Kommo API v4 (amocrm.ru/developers, developers.kommo.com): `Authorization: Bearer`, hal+json
//! answers, 204 for nothing, 429 `{"retry_after": …}` when over 7 requests/s.

use crate::{CrmError, DEFAULT_THROTTLE};
use outbound::Class;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

#[derive(Clone)]
pub struct AmoClient {
    http: reqwest::Client,
    base_url: String,
    token: SecretString,
}

impl AmoClient {
    /// `base_url` is the account's address (`https://x.amocrm.ru`); `http`
    /// an `outbound::client`, shared.
    pub fn new(http: reqwest::Client, base_url: &str, token: SecretString) -> Self {
        AmoClient {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// A lead with its contacts' ids (`_embedded.contacts[] = {id, is_main}`).
    pub async fn lead(&self, id: &str) -> Result<Value, CrmError> {
        self.get(&format!("/api/v4/leads/{id}"), &[("with", "contacts")])
            .await
    }

    pub async fn contact(&self, id: &str) -> Result<Value, CrmError> {
        self.get(&format!("/api/v4/contacts/{id}"), &[]).await
    }

    /// The account (`{id, name, subdomain, currency, …}`): `currency` is the
    /// ISO code lead prices are in.
    pub async fn account(&self) -> Result<Value, CrmError> {
        self.get("/api/v4/account", &[]).await
    }

    /// The lead pipelines with their statuses
    /// (`_embedded.pipelines[] = {id, name, _embedded.statuses[] = {id, name}}`).
    pub async fn pipelines(&self) -> Result<Value, CrmError> {
        self.get("/api/v4/leads/pipelines", &[]).await
    }

    /// Every custom field of `entity` (`leads`, `contacts`, `companies`),
    /// page after page (250 a page): `{id, name, code, type, enums: [{id, value}]}`.
    pub async fn custom_fields(&self, entity: &str) -> Result<Vec<Value>, CrmError> {
        let mut all = Vec::new();
        for page in 1.. {
            let page = page.to_string();
            let answer = match self
                .get(
                    &format!("/api/v4/{entity}/custom_fields"),
                    &[("page", &page), ("limit", "250")],
                )
                .await
            {
                // 204: past the last page.
                Err(CrmError::NotFound) => break,
                other => other?,
            };
            if let Some(items) = answer["_embedded"]["custom_fields"].as_array() {
                all.extend(items.iter().cloned());
            }
            if answer["_links"]["next"].is_null() {
                break;
            }
        }
        Ok(all)
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, CrmError> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base_url))
            .query(query)
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| CrmError::Unavailable(outbound::transport_error(e)))?;
        let status = resp.status().as_u16();
        let header_wait = outbound::retry_after(&resp);
        if status == 204 {
            return Err(CrmError::NotFound);
        }
        let body: Option<Value> = resp.json().await.ok();
        let message = || {
            body.as_ref()
                .and_then(|b| b.get("detail").or_else(|| b.get("title")))
                .and_then(Value::as_str)
                .map_or_else(|| format!("HTTP {status}"), str::to_owned)
        };
        match outbound::classify(status) {
            Class::Success => {
                body.ok_or_else(|| CrmError::Unavailable("the answer is not JSON".into()))
            }
            Class::Throttled => Err(CrmError::Throttled {
                retry_after: body
                    .as_ref()
                    .and_then(|b| b.get("retry_after"))
                    .and_then(Value::as_u64)
                    .map(Duration::from_secs)
                    .or(header_wait)
                    .unwrap_or(DEFAULT_THROTTLE),
            }),
            Class::Transient => Err(CrmError::Unavailable(message())),
            // 403 after repeated 429s is amoCRM blocking us, not a permission.
            Class::Auth if status == 403 && message().contains("block") => {
                Err(CrmError::Throttled {
                    retry_after: header_wait.unwrap_or(DEFAULT_THROTTLE),
                })
            }
            Class::Auth => Err(CrmError::Auth(message())),
            Class::Permanent if status == 404 => Err(CrmError::NotFound),
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
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{header, method, path, query_param},
    };

    fn client(server: &MockServer) -> AmoClient {
        let http =
            outbound::client(Duration::from_secs(2)).unwrap_or_else(|e| panic!("client: {e}"));
        AmoClient::new(http, &server.uri(), SecretString::from("amo-token"))
    }

    #[tokio::test]
    async fn reads_the_lead_with_its_contacts_with_the_bearer_token() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/api/v4/leads/5765922"))
            .and(query_param("with", "contacts"))
            .and(header("authorization", "Bearer amo-token"))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(json!({"id": 5765922, "status_id": 143})),
            )
            .expect(1)
            .mount(&server)
            .await;
        assert_eq!(
            client(&server).lead("5765922").await,
            Ok(json!({"id": 5765922, "status_id": 143}))
        );
    }

    #[tokio::test]
    async fn failures_are_classified() {
        let server = MockServer::start().await;
        let answer = |p: &str, r: ResponseTemplate| Mock::given(path(p.to_owned())).respond_with(r);
        answer(
            "/api/v4/contacts/1",
            ResponseTemplate::new(429)
                .set_body_json(json!({"title": "Too Many Requests", "retry_after": 300})),
        )
        .mount(&server)
        .await;
        answer("/api/v4/contacts/2", ResponseTemplate::new(204))
            .mount(&server)
            .await;
        answer(
            "/api/v4/contacts/3",
            ResponseTemplate::new(401)
                .set_body_json(json!({"title": "Unauthorized", "detail": "token expired"})),
        )
        .mount(&server)
        .await;
        answer("/api/v4/contacts/4", ResponseTemplate::new(502))
            .mount(&server)
            .await;
        answer("/api/v4/contacts/5", ResponseTemplate::new(404))
            .mount(&server)
            .await;
        let c = client(&server);
        assert_eq!(
            c.contact("1").await,
            Err(CrmError::Throttled {
                retry_after: Duration::from_secs(300)
            })
        );
        assert_eq!(c.contact("2").await, Err(CrmError::NotFound));
        assert_eq!(
            c.contact("3").await,
            Err(CrmError::Auth("token expired".into()))
        );
        assert!(matches!(
            c.contact("4").await,
            Err(CrmError::Unavailable(_))
        ));
        assert_eq!(c.contact("5").await, Err(CrmError::NotFound));
        let err = c
            .contact("3")
            .await
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!err.contains("amo-token"), "{err}");
    }
}
