//! What a user account (a customer of this product) chooses for itself.

crate::text_enum! {
    /// The language of the account's reports (`user_accounts.report_language`).
    pub enum ReportLanguage {
        Ru = "ru",
        En = "en",
    }
}
