//! The bot's turn after a buffer flush. Qualification never waits on it: the
//! dialog is handed to qualification in the flush's own transaction, before
//! the bot is asked for anything.

use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// Answers a dialog whose buffer just flushed.
pub trait Replier: Send + Sync {
    fn reply<'a>(&'a self, dialog_id: Uuid) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}

/// No bot configured: the dialog is only qualified.
pub struct NoBot;

impl Replier for NoBot {
    fn reply<'a>(&'a self, dialog_id: Uuid) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>> {
        Box::pin(async move {
            tracing::debug!(%dialog_id, "no bot reply: replies are not configured");
        })
    }
}
