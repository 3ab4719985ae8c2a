//! The messages that flow between the stages, versioned. Every payload is a
//! JSON object with a `v` field next to the message's own fields; a consumer
//! dead-letters a version it does not know instead of guessing.

use domain::ids::{DialogId, EventId};
use domain::level::Level;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

pub trait BusMessage: Serialize + DeserializeOwned {
    const ROUTING_KEY: &'static str;
    const VERSION: u16 = 1;
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("payload is not valid JSON for this message: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported message version {got} (this build reads {supported})")]
    Version { got: u16, supported: u16 },
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u16,
    #[serde(flatten)]
    body: T,
}

pub fn encode<M: BusMessage>(m: &M) -> serde_json::Value {
    serde_json::to_value(Envelope {
        v: M::VERSION,
        body: m,
    })
    .unwrap_or(serde_json::Value::Null)
}

pub fn decode<M: BusMessage>(bytes: &[u8]) -> Result<M, DecodeError> {
    #[derive(Deserialize)]
    struct V {
        v: u16,
    }
    let v: V = serde_json::from_slice(bytes)?;
    if v.v != M::VERSION {
        return Err(DecodeError::Version {
            got: v.v,
            supported: M::VERSION,
        });
    }
    let e: Envelope<M> = serde_json::from_slice(bytes)?;
    Ok(e.body)
}

/// A customer message was stored; `seq` is the dialog's buffer sequence after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReceived {
    pub dialog_id: DialogId,
    pub seq: i64,
    /// When the gateway took the message (Unix milliseconds): the buffer
    /// delay runs from here, not from when the buffer heard of it. Absent in
    /// messages queued by earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at_ms: Option<i64>,
}

impl BusMessage for MessageReceived {
    const ROUTING_KEY: &'static str = "message.received";
}

/// Fires after the buffer delay; acts only if `seq` is still the dialog's latest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferFlush {
    pub dialog_id: DialogId,
    pub seq: i64,
}

impl BusMessage for BufferFlush {
    const ROUTING_KEY: &'static str = "buffer.flush";
}

/// A customer's burst of messages is complete: qualify the dialog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DialogReady {
    pub dialog_id: DialogId,
    pub seq: i64,
}

impl BusMessage for DialogReady {
    const ROUTING_KEY: &'static str = "dialog.ready";
}

/// The buffer flushed: the bot may answer the dialog's unanswered messages
/// up to `seq`. The replica that flushed answers at once; this message is the
/// durable path (queued with a delay, it finds the reply done, or takes it
/// over after a crash) and carries the retries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyDue {
    pub dialog_id: DialogId,
    pub seq: i64,
}

impl BusMessage for ReplyDue {
    const ROUTING_KEY: &'static str = "reply.due";
}

/// A level was claimed for a dialog: send its event to Meta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapiEventQueued {
    pub dialog_id: DialogId,
    pub level: Level,
    pub event_id: EventId,
}

impl BusMessage for CapiEventQueued {
    const ROUTING_KEY: &'static str = "capi.event";
}

/// A CRM webhook reported a change (a `crm_changes` row) to evaluate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrmChanged {
    pub change_id: i64,
}

impl BusMessage for CrmChanged {
    const ROUTING_KEY: &'static str = "crm.changed";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_their_version_and_round_trip() {
        let m = DialogReady {
            dialog_id: DialogId::from(uuid::Uuid::nil()),
            seq: 3,
        };
        let json = encode(&m);
        assert_eq!(json["v"], 1);
        assert_eq!(json["seq"], 3);
        let bytes = serde_json::to_vec(&json).expect("serializes");
        assert_eq!(decode::<DialogReady>(&bytes).expect("decodes"), m);
    }

    #[test]
    fn unknown_versions_and_garbage_are_rejected() {
        let bytes = br#"{"v": 9, "dialog_id": "00000000-0000-0000-0000-000000000000", "seq": 1}"#;
        assert!(matches!(
            decode::<DialogReady>(bytes),
            Err(DecodeError::Version { got: 9, .. })
        ));
        assert!(matches!(
            decode::<DialogReady>(b"nope"),
            Err(DecodeError::Json(_))
        ));
    }
}
