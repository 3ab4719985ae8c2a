//! Every client of an outside HTTP API (Meta, the model, Evolution API, and
//! the CRM, Telegram and Cloud API clients as they arrive) is built and read
//! the same way here: one timeout for the whole request and a shorter one to
//! connect, kept-alive connections, transport errors described without the
//! URL (some URLs carry keys), and answers sorted by
//! [`domain::http_policy::classify`] with their `Retry-After`.

use chrono::Utc;
use std::time::Duration;

pub use domain::http_policy::{Class, MAX_RETRY_AFTER, classify};

/// Connecting takes at most this long (or the whole timeout, if shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client whose every request ends within `timeout`.
pub fn client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    let timeout = timeout.max(Duration::from_millis(1));
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .pool_max_idle_per_host(64)
        .build()
}

/// Why a request got no answer, without its URL.
pub fn transport_error(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else {
        format!("request failed: {}", e.without_url())
    }
}

/// The wait an answer's `Retry-After` header asks for, if it has a readable one.
pub fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let value = resp.headers().get(reqwest::header::RETRY_AFTER)?;
    domain::http_policy::retry_after(value.to_str().ok()?, Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

    #[tokio::test]
    async fn answers_are_classified_with_their_retry_after() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
            .mount(&server)
            .await;
        let http = client(Duration::from_secs(2)).ok();
        let resp = match http {
            Some(http) => http.get(server.uri()).send().await.ok(),
            None => None,
        };
        let Some(resp) = resp else {
            panic!("the fake answered nothing")
        };
        assert_eq!(classify(resp.status().as_u16()), Class::Throttled);
        assert_eq!(retry_after(&resp), Some(Duration::from_secs(7)));
    }

    #[tokio::test]
    async fn a_timeout_or_a_refused_connection_is_described_without_the_url() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(500)))
            .mount(&server)
            .await;
        let Ok(http) = client(Duration::from_millis(50)) else {
            panic!("client")
        };
        let secret_url = format!("{}/hook?key=s3cret", server.uri());
        let err = http.get(&secret_url).send().await.err();
        assert_eq!(err.map(transport_error).as_deref(), Some("timed out"));
        // Nothing listens on port 9 of loopback (discard): refused at once.
        let err = http
            .get("http://127.0.0.1:9/x?key=s3cret")
            .send()
            .await
            .err();
        let text = err.map(transport_error).unwrap_or_default();
        assert!(text.starts_with("request failed:"), "{text}");
        assert!(
            !text.contains("s3cret") && !text.contains("127.0.0.1:9"),
            "{text}"
        );
    }
}
