//! The pure domain of the WhatsApp/CRM → Meta Conversions API pipeline:
//! conversion levels, Meta's normalization and hashing, Evolution API webhook
//! parsing, and the CAPI event payload. No I/O lives here.

pub mod capi;
pub mod evolution;
pub mod level;
pub mod meta_errors;
pub mod normalize;
pub mod qualification;
