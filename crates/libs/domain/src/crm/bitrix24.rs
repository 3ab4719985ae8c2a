//! Bitrix24 event calls (apidocs.bitrix24.com, events; outgoing webhooks): `event=ONCRMDEALUPDATE&data[FIELDS][ID]=…
//! &ts=…&auth[domain]=…&auth[member_id]=…&auth[application_token]=…`, form-
//! encoded (or the JSON the docs show). Only the fact of a change: the
//! entity is read through the REST API.

use super::form::{self, FormError};
use serde::Serialize;

/// An event call. The application token authenticates it; it is never
/// serialized or printed.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub event: String,
    /// `deal`, `lead`, `contact`, … (from `ONCRM<ENTITY><ACTION>`).
    pub entity: Option<String>,
    /// `add`, `update`, `delete`, …
    pub action: Option<String>,
    pub id: Option<String>,
    pub domain: Option<String>,
    pub member_id: Option<String>,
    pub ts: Option<String>,
    #[serde(skip)]
    pub application_token: Option<String>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("event", &self.event)
            .field("id", &self.id)
            .field("domain", &self.domain)
            .field("application_token", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl Event {
    /// The same for every delivery of this call.
    pub fn key(&self) -> String {
        let text = serde_json::json!([self.event, self.id, self.ts]).to_string();
        crate::normalize::sha256_hex(&text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    Form(#[from] FormError),
    #[error("not a Bitrix24 event: no `event` in the body")]
    NoEvent,
}

/// The actions Bitrix24 puts at the end of a CRM event's name.
const ACTIONS: &[&str] = &["SETCATEGORY", "UPDATE", "DELETE", "RESTORE", "ADD"];

pub fn parse_event(body: &str) -> Result<Event, EventError> {
    let root = form::parse(body)?;
    let event = root
        .text_at(&["event"])
        .map(|e| e.trim().to_ascii_uppercase())
        .filter(|e| !e.is_empty())
        .ok_or(EventError::NoEvent)?;
    let (entity, action) = match event.strip_prefix("ONCRM").and_then(|rest| {
        ACTIONS.iter().find_map(|a| {
            let entity = rest.strip_suffix(a).filter(|e| !e.is_empty())?;
            Some((entity.to_ascii_lowercase(), a.to_ascii_lowercase()))
        })
    }) {
        Some((entity, action)) => (Some(entity), Some(action)),
        None => (None, None),
    };
    Ok(Event {
        entity,
        action,
        id: root.text_at(&["data", "FIELDS", "ID"]),
        domain: root.text_at(&["auth", "domain"]),
        member_id: root.text_at(&["auth", "member_id"]),
        ts: root.text_at(&["ts"]),
        application_token: root.text_at(&["auth", "application_token"]),
        event,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_real_form_body_and_the_documented_json_read_alike() {
        let form = "event=ONCRMDEALUPDATE&data%5BFIELDS%5D%5BID%5D=39&ts=1707749333&auth%5Bdomain%5D=b24-3tmral.bitrix24.ru\
            &auth%5Bmember_id%5D=51e2&auth%5Bapplication_token%5D=e57x";
        let e = parse_event(form).ok();
        assert_eq!(
            serde_json::to_value(&e).ok(),
            Some(
                json!({"event": "ONCRMDEALUPDATE", "entity": "deal", "action": "update", "id": "39",
                        "domain": "b24-3tmral.bitrix24.ru", "member_id": "51e2", "ts": "1707749333"})
            )
        );
        assert_eq!(e.and_then(|e| e.application_token).as_deref(), Some("e57x"));
        let json = r#"{"event": "ONCRMLEADADD", "data": {"FIELDS": {"ID": "7405"}}, "ts": "1766047124",
                       "auth": {"domain": "d.bitrix24.com", "member_id": "m", "application_token": "t"}}"#;
        let e = parse_event(json).ok();
        assert_eq!(e.as_ref().and_then(|e| e.entity.as_deref()), Some("lead"));
        assert_eq!(e.as_ref().and_then(|e| e.action.as_deref()), Some("add"));
        assert!(!format!("{e:?}").contains("\"t\""));
    }

    #[test]
    fn other_events_keep_their_name_and_a_body_without_one_is_refused() {
        let e = parse_event("event=ONAPPINSTALL").ok();
        assert_eq!(
            e.as_ref().map(|e| (e.entity.clone(), e.action.clone())),
            Some((None, None))
        );
        let e = parse_event("event=ONCRMDEALSETCATEGORY&data[FIELDS][ID]=1").ok();
        assert_eq!(e.and_then(|e| e.action).as_deref(), Some("setcategory"));
        assert_eq!(parse_event("data[FIELDS][ID]=1"), Err(EventError::NoEvent));
    }
}
