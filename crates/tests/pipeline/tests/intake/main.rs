//! End-to-end tests, one binary per area (each test binary links the
//! whole workspace, so few binaries build fast). Intake: the gateway's webhooks (Evolution, the Cloud API, amoCRM and Bitrix24) — what is stored, what is refused and why.

mod crm_webhooks;
mod gateway;
mod one_person;
mod whatsapp_cloud;
