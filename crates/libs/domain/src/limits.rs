//! How much one webhook body from outside may ask of us. Each limit sits
//! far above what the real senders post (amoCRM's keys nest 8 deep,
//! its webhooks carry tens of pairs per lead; Evolution and the Cloud API post
//! one message per webhook, a few at most) and far below what keeps a
//! worker busy: every parser stops at the first limit it meets, in time
//! linear in what it read so far.

/// Parts in one form key: `leads[update][0][custom_fields][1][values][0][enum]`
/// has 8.
pub const FORM_MAX_DEPTH: usize = 32;
/// `name=value` pairs in one form body (an amoCRM mass update posts one lead
/// per webhook: a few hundred pairs with many custom fields).
pub const FORM_MAX_PAIRS: usize = 10_000;
/// Messages in one WhatsApp webhook (Evolution's `data[]`, all of a Cloud API
/// body's `entry[].changes[].value.messages[]`).
pub const WEBHOOK_MAX_MESSAGES: usize = 100;
/// `entry[].changes[]` in one Cloud API webhook, messages or not.
pub const WEBHOOK_MAX_CHANGES: usize = 100;

/// A body over one of the limits: refused whole, nothing stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the body has more than {limit} {what} (the limit for one webhook)")]
pub struct LimitExceeded {
    pub what: &'static str,
    pub limit: usize,
}

impl LimitExceeded {
    pub const fn new(what: &'static str, limit: usize) -> LimitExceeded {
        LimitExceeded { what, limit }
    }
}
