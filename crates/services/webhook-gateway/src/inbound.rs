//! What every WhatsApp source does with a parsed message: store it once and
//! queue the buffer step in the same transaction.

use crate::State;
use bus::messages::{BusMessage, MessageReceived, encode};
use diesel_async::AsyncConnection;
use runtime::ApiError;
use storage::conversations::{self, NewMessage, Queued, Recorded};

/// Stores one message (a repeat of a known one stores nothing) and queues
/// the buffer step through the outbox; `"stored"` or `"duplicate"`.
pub async fn store(
    state: &State,
    conn: &mut storage::AsyncPgConnection,
    new: NewMessage<'_>,
) -> Result<&'static str, ApiError> {
    let received_at_ms = Some(chrono::Utc::now().timestamp_millis());
    let recorded = conn
        .transaction::<_, storage::DbError, _>(async |conn| {
            let announce = |dialog_id, seq| {
                let msg = MessageReceived {
                    dialog_id,
                    seq,
                    received_at_ms,
                };
                Some(Queued {
                    routing_key: MessageReceived::ROUTING_KEY,
                    payload: encode(&msg),
                    delay_ms: 0,
                })
            };
            conversations::record_message(conn, &new, announce).await
        })
        .await
        .map_err(ApiError::unavailable)?;
    let (instance, message_id) = (new.instance_name, new.message_id);
    match recorded {
        Recorded::Duplicate => {
            tracing::debug!(%instance, %message_id, "duplicate webhook ignored");
            Ok("duplicate")
        }
        Recorded::Stored { dialog_id, .. } => {
            state.outbox_wake.notify_one();
            tracing::info!(
                %instance, %dialog_id, %message_id, from_me = new.from_me,
                has_ctwa_clid = new.ctwa_clid.is_some(), from_ad = new.from_ad, "message stored"
            );
            Ok("stored")
        }
    }
}
