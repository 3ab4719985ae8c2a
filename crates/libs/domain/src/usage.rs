//! What the model is used for, as its cost is counted.

crate::text_enum! {
    /// What a model call was for (`llm_usage_daily.purpose`).
    pub enum Purpose {
        Qualification = "qualification",
        Reply = "reply",
        Onboarding = "onboarding",
    }
}
