//! End-to-end tests, one binary per area (each test binary links the
//! whole workspace, so few binaries build fast). Conversation: the bot's replies, qualification by the model, and levels from CRM changes.

mod bot;
mod crm_levels;
mod qualification;
