//! Where a claimed level's CAPI event stands, and how each attempt at
//! sending it ended.

crate::text_enum! {
    /// A delivery's state (`capi_deliveries.status`).
    pub enum DeliveryStatus {
        /// Claimed, not yet finished: a sender may lease it.
        Pending = "pending",
        Success = "success",
        Error = "error",
        Skipped = "skipped",
    }
}

crate::text_enum! {
    /// How one attempt ended (`capi_events_log.status`); it also closes the
    /// delivery with the same word.
    pub enum AttemptStatus {
        Success = "success",
        Error = "error",
        Skipped = "skipped",
    }
}

impl From<AttemptStatus> for DeliveryStatus {
    fn from(s: AttemptStatus) -> Self {
        match s {
            AttemptStatus::Success => DeliveryStatus::Success,
            AttemptStatus::Error => DeliveryStatus::Error,
            AttemptStatus::Skipped => DeliveryStatus::Skipped,
        }
    }
}
