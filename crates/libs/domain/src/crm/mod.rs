//! CRM as a conversion source (amoCRM/Kommo and Bitrix24): their webhook
//! bodies read by the documented rules, and a CRM entity's fields matched
//! against a direction's per-level rules. No I/O: the gateway stores the
//! webhooks, a consumer reads the entity through the CRM's API and asks
//! [`mapping::matched_levels`] what it reached.

pub mod amocrm;
pub mod bitrix24;
pub mod form;
pub mod mapping;
pub mod phone;
pub mod purchase;
