//! End-to-end tests, one binary per area (each test binary links the
//! whole workspace, so few binaries build fast). Platform: credentials at rest, no secret in logs, closed sets against the schema, and the sandbox's fakes, one settings file for every service.

mod closed_sets;
mod no_secrets_in_logs;
mod sandbox;
mod secrets_at_rest;
mod settings_file;
