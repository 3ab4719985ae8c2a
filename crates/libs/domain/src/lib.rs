//! The pure domain of the WhatsApp/CRM → Meta Conversions API pipeline:
//! conversion levels, Meta's normalization and hashing, Evolution API webhook
//! parsing, and the CAPI event payload. No I/O lives here.

#[macro_use]
mod text_enum;

pub mod account;
pub mod ad_source;
pub mod analytics;
pub mod api_key;
pub mod capi_event;
pub mod conversation;
pub mod crm;
pub mod customer;
pub mod delivery;
pub mod duration;
pub mod event_names;
pub mod evolution;
pub mod health;
pub mod http_policy;
pub mod ids;
pub mod level;
pub mod limits;
pub mod meta_errors;
pub mod normalize;
pub mod qualification;
pub mod report;
pub mod signing_key;
pub mod usage;
pub mod whatsapp_cloud;
