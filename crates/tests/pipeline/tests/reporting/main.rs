//! End-to-end tests, one binary per area (each test binary links the
//! whole workspace, so few binaries build fast). Reporting: the daily report, the analytics API and the dashboard (with a browser).

mod dashboard_browser;
mod reports;
mod reports_api;
