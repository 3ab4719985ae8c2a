//! The Conversions API: `POST {base}/{version}/{pixel_id}/events`.

use crate::Graph;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};
use serde_json::{Value, value::RawValue};
use std::time::{Duration, Instant};

/// One `/{pixel_id}/events` request: the events as built (their JSON is
/// written into the body as it is, in one pass), with the request's test
/// code and partner agent.
pub struct EventsRequest<'a, E> {
    pub data: &'a [E],
    pub test_event_code: Option<&'a str>,
    pub partner_agent: Option<&'a str>,
}

/// The body as sent: the request plus the credentials.
#[derive(Serialize)]
struct Body<'a, E: AsRef<RawValue>> {
    #[serde(serialize_with = "raw_events")]
    data: &'a [E],
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_agent: Option<&'a str>,
    access_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    appsecret_proof: Option<&'a str>,
}

fn non_blank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn raw_events<E: AsRef<RawValue>, S: Serializer>(data: &&[E], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(data.iter().map(AsRef::as_ref))
}

/// What came back: Meta's HTTP status and body, or why nothing did. The
/// caller decides with `domain::meta_errors::verdict` (a batch's answer is
/// read per event, so it is returned whole).
#[derive(Debug, Clone)]
pub struct Answer {
    /// `None` when Meta could not be reached or did not answer in time.
    pub status: Option<u16>,
    pub body: Option<Value>,
    pub transport_error: Option<String>,
    /// The wait Meta's `Retry-After` asked for, if it sent one.
    pub retry_after: Option<Duration>,
    pub duration: Duration,
}

impl Graph {
    /// Sends `request` with `access_token` (and `appsecret_proof`) added.
    /// Neither is part of anything returned.
    pub async fn send_events<E: AsRef<RawValue>>(
        &self,
        pixel_id: &str,
        token: &SecretString,
        proof: Option<&str>,
        request: &EventsRequest<'_, E>,
    ) -> Answer {
        let url = self.url(&format!("{pixel_id}/events"));
        let body = Body {
            data: request.data,
            test_event_code: non_blank(request.test_event_code),
            partner_agent: non_blank(request.partner_agent),
            access_token: token.expose_secret(),
            appsecret_proof: proof,
        };
        let started = Instant::now();
        match self.http.post(&url).json(&body).send().await {
            Err(e) => Answer {
                status: None,
                body: None,
                transport_error: Some(format!(
                    "Meta did not answer: {}",
                    outbound::transport_error(e)
                )),
                retry_after: None,
                duration: started.elapsed(),
            },
            Ok(resp) => {
                let status = resp.status().as_u16();
                let retry_after = outbound::retry_after(&resp);
                let text = resp.text().await.unwrap_or_default();
                let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
                Answer {
                    status: Some(status),
                    body: Some(body),
                    transport_error: None,
                    retry_after,
                    duration: started.elapsed(),
                }
            }
        }
    }
}
