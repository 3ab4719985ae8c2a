//! Meta's Graph API, the one client every part of the system calls it
//! through: capi-sender (the Conversions API events call), reports (ad
//! insights for the spend sync), `capi doctor` and `capi direction dataset`
//! (a pixel, the WABA's dataset) and chatbot-service (the WhatsApp Cloud
//! API messages call). The base URL and the version are one `[meta]`
//! setting ([`GraphSettings`]); the version string is written here once.
//! What an answer means is `domain::meta_errors` for all of them.

mod dataset;
mod events;
mod messages;
mod read;
mod subscribed_apps;

pub use events::{Answer, EventsRequest};
pub use messages::MessageRefused;
pub use read::GraphError;

use serde::Deserialize;
use std::time::Duration;

/// The Graph API version every call uses unless `meta.graph_version` says otherwise.
pub const DEFAULT_GRAPH_VERSION: &str = "v26.0";
/// Meta's Graph API host.
pub const DEFAULT_GRAPH_BASE_URL: &str = "https://graph.facebook.com";

/// `[meta]` as far as reaching the Graph API goes; each service reads these
/// two keys of the one `[meta]` section (capi-sender reads more of it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GraphSettings {
    /// e.g. `https://graph.facebook.com` (a test points it at a fake).
    #[serde(default = "default_base_url")]
    pub graph_base_url: String,
    /// e.g. `v26.0`.
    #[serde(default = "default_version")]
    pub graph_version: String,
}

impl Default for GraphSettings {
    fn default() -> Self {
        GraphSettings {
            graph_base_url: default_base_url(),
            graph_version: default_version(),
        }
    }
}

/// For `#[serde(default = …)]` on a section that holds these keys itself.
pub fn default_base_url() -> String {
    DEFAULT_GRAPH_BASE_URL.to_owned()
}

/// For `#[serde(default = …)]` on a section that holds these keys itself.
pub fn default_version() -> String {
    DEFAULT_GRAPH_VERSION.to_owned()
}

/// A Graph API client: one `reqwest` client (the outside-HTTP policy of
/// `outbound`) and where Graph is.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    base_url: String,
    version: String,
}

impl Graph {
    /// Every request ends after `timeout`.
    pub fn new(settings: &GraphSettings, timeout: Duration) -> reqwest::Result<Graph> {
        Ok(Graph {
            http: outbound::client(timeout)?,
            base_url: settings.graph_base_url.trim_end_matches('/').to_owned(),
            version: settings.graph_version.trim_matches('/').to_owned(),
        })
    }

    /// `{base}/{version}/{path}`.
    pub fn url(&self, path: &str) -> String {
        format!(
            "{}/{}/{}",
            self.base_url,
            self.version,
            path.trim_start_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{meta_errors::Verdict, whatsapp_cloud::Recipient};
    use serde_json::json;
    use wiremock::{
        Mock, MockServer, ResponseTemplate,
        matchers::{body_json, body_partial_json, header, method, path, query_param},
    };

    async fn graph(server: &MockServer) -> Graph {
        let settings = GraphSettings {
            graph_base_url: format!("{}/", server.uri()),
            ..GraphSettings::default()
        };
        Graph::new(&settings, Duration::from_secs(5)).unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn every_call_goes_to_the_one_base_url_and_version() {
        let server = MockServer::start().await;
        let g = graph(&server).await;
        assert_eq!(
            g.url("/123/events"),
            format!("{}/v26.0/123/events", server.uri())
        );
        Mock::given(method("POST"))
            .and(path(format!("/{DEFAULT_GRAPH_VERSION}/777/events")))
            .and(header("content-type", "application/json"))
            .and(body_json(json!({
                "access_token": "tok",
                "test_event_code": "TEST1",
                "data": [{"event_name": "Purchase"}, {"event_name": "Lead"}]
            })))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"events_received": 1})))
            .expect(1)
            .mount(&server)
            .await;
        let a = g
            .send_events(
                "777",
                &"tok".to_owned().into(),
                None,
                &EventsRequest {
                    data: &[
                        serde_json::value::to_raw_value(&json!({"event_name": "Purchase"}))
                            .expect("raw"),
                        serde_json::value::to_raw_value(&json!({"event_name": "Lead"}))
                            .expect("raw"),
                    ],
                    test_event_code: Some(" TEST1 "),
                    partner_agent: Some("  "),
                },
            )
            .await;
        assert_eq!(a.status, Some(200));
        assert_eq!(a.body, Some(json!({"events_received": 1})));
    }

    #[tokio::test]
    async fn reads_are_sorted_by_metas_error_codes_without_the_token() {
        let server = MockServer::start().await;
        let g = graph(&server).await;
        Mock::given(method("GET"))
            .and(path("/v26.0/act_1/insights"))
            .and(query_param("level", "campaign"))
            .and(header("authorization", "Bearer secret-token"))
            .respond_with(ResponseTemplate::new(400).set_body_json(
                json!({"error": {"message": "User request limit reached", "code": 17, "fbtrace_id": "X"}}),
            ))
            .mount(&server)
            .await;
        let e = g
            .get("act_1/insights", &[("level", "campaign")], "secret-token")
            .await
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert_eq!((e.verdict, e.status), (Verdict::Throttled, Some(400)));
        assert_eq!(e.message, "Meta answered 400: User request limit reached");
        assert!(!format!("{e} {e:?}").contains("secret-token"));
        // Nobody listening: transient, no status.
        let gone = Graph::new(
            &GraphSettings {
                graph_base_url: "http://127.0.0.1:9".into(),
                ..GraphSettings::default()
            },
            Duration::from_secs(2),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let e = gone
            .get("x", &[], "t")
            .await
            .err()
            .unwrap_or_else(|| panic!("refused"));
        assert_eq!((e.verdict, e.status), (Verdict::Transient, None));
    }

    #[tokio::test]
    async fn the_wabas_dataset_is_read_or_created() {
        let server = MockServer::start().await;
        let g = graph(&server).await;
        Mock::given(method("GET"))
            .and(path("/v26.0/555/dataset"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"data": []})))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/v26.0/555/dataset"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({"id": 98765})))
            .mount(&server)
            .await;
        assert_eq!(g.waba_dataset("555", "t", false).await.ok(), Some(None));
        assert_eq!(
            g.waba_dataset("555", "t", true).await.ok(),
            Some(Some("98765".to_owned()))
        );
    }

    #[tokio::test]
    async fn a_cloud_api_refusal_says_whether_to_retry() {
        let server = MockServer::start().await;
        let g = graph(&server).await;
        Mock::given(method("POST"))
            .and(path("/v26.0/10/messages"))
            .and(body_partial_json(
                json!({"messaging_product": "whatsapp", "to": "5511999999999"}),
            ))
            .respond_with(ResponseTemplate::new(400).set_body_json(json!({"error": {
                "message": "Re-engagement message", "code": 131047,
                "error_data": {"details": "more than 24 hours"}}})))
            .mount(&server)
            .await;
        let refused = g
            .send_text(
                "10",
                &"t".to_owned().into(),
                &Recipient::Phone("5511999999999".into()),
                "Oi",
            )
            .await;
        assert_eq!(
            refused,
            Err(MessageRefused::WindowClosed(
                "(131047) Re-engagement message: more than 24 hours".into()
            ))
        );
    }
}
