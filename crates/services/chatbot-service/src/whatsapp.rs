//! Where the bot's reply goes: through the Evolution instance or the Cloud
//! API number the dialog came in on. The route is settled before the model
//! is asked, so a dialog that cannot be answered costs no model call.

use crate::evolution::Evolution;
use chrono::{DateTime, Utc};
use domain::{
    conversation::{Author, Message},
    evolution::ApiVersion,
    whatsapp_cloud::{Channel, Recipient, within_service_window},
};
use meta_graph::{Graph, MessageRefused};
use secrecy::SecretString;
use storage::replies::ReplyContext;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Not reached, timed out, HTTP 5xx/408/429 or a rate limit: worth retrying.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request itself is wrong (unknown number, bad key or token, …).
    #[error("rejected (HTTP {status}): {message}")]
    Rejected { status: u16, message: String },
    /// The Cloud API refused a free-form message: the customer wrote more
    /// than 24 hours ago.
    #[error("outside the 24-hour customer service window: {0}")]
    WindowClosed(String),
}

impl From<MessageRefused> for SendError {
    fn from(r: MessageRefused) -> SendError {
        match r {
            MessageRefused::Unavailable(m) => SendError::Unavailable(m),
            MessageRefused::WindowClosed(m) => SendError::WindowClosed(m),
            MessageRefused::Rejected { status, message } => SendError::Rejected { status, message },
        }
    }
}

/// How one reply is sent.
pub enum Route {
    Evolution {
        key: SecretString,
        version: ApiVersion,
        number: String,
    },
    Cloud {
        phone_number_id: String,
        token: SecretString,
        to: Recipient,
    },
}

impl Route {
    /// The API's name, for logs and reasons.
    pub fn api(&self) -> &'static str {
        match self {
            Route::Evolution { .. } => "evolution",
            Route::Cloud { .. } => "cloud_api",
        }
    }
}

/// The clients replies go out through.
pub struct Senders {
    /// `None` when `bot.evolution_base_url` is not set.
    pub evolution: Option<Evolution>,
    /// The Cloud API (Meta's Graph API).
    pub cloud: Graph,
}

impl Senders {
    /// The route for a reply in this dialog now, or why there is none.
    pub fn route(
        &self,
        ctx: &ReplyContext,
        history: &[Message],
        now: DateTime<Utc>,
    ) -> Result<Route, &'static str> {
        match ctx.channel {
            Channel::Evolution => {
                if self.evolution.is_none() {
                    return Err("no_evolution_base_url");
                }
                let key = ctx
                    .evolution_api_key
                    .clone()
                    .ok_or("no_evolution_api_key")?;
                let number = ctx.target.recipient().ok_or("no_recipient")?;
                Ok(Route::Evolution {
                    key,
                    version: ctx.evolution_api_version.unwrap_or(ApiVersion::V2),
                    number,
                })
            }
            Channel::CloudApi => {
                let last_customer = history
                    .iter()
                    .filter(|m| m.author == Author::Customer)
                    .map(|m| m.sent_at)
                    .max()
                    .ok_or("no_customer_message")?;
                if !within_service_window(last_customer, now) {
                    return Err("outside_24h_window");
                }
                let phone_number_id = ctx.phone_number_id.clone().ok_or("no_phone_number_id")?;
                let token = ctx.cloud_access_token.clone().ok_or("no_cloud_api_token")?;
                let to = match ctx.target.phone_digits() {
                    Some(phone) => Recipient::Phone(phone),
                    None => Recipient::UserId(
                        ctx.target
                            .contact_lid
                            .clone()
                            .filter(|u| !u.is_empty())
                            .ok_or("no_recipient")?,
                    ),
                };
                Ok(Route::Cloud {
                    phone_number_id,
                    token,
                    to,
                })
            }
        }
    }

    /// Sends `text` along `route`; the message id the API assigned, if it said.
    pub async fn send(
        &self,
        instance_name: &str,
        route: &Route,
        text: &str,
    ) -> Result<Option<String>, SendError> {
        match route {
            Route::Evolution {
                key,
                version,
                number,
            } => match &self.evolution {
                Some(e) => {
                    e.send_text(instance_name, key, *version, number, text)
                        .await
                }
                None => Err(SendError::Rejected {
                    status: 0,
                    message: "bot.evolution_base_url is not set".into(),
                }),
            },
            Route::Cloud {
                phone_number_id,
                token,
                to,
            } => Ok(self
                .cloud
                .send_text(phone_number_id, token, to, text)
                .await?),
        }
    }
}
