//! End-to-end tests, one binary per area (each test binary links the
//! whole workspace, so few binaries build fast). Reporting: the daily report, the analytics API (with results per ad) and the dashboard (with a browser).

mod ads_api;
mod customers_api;
mod dashboard_browser;
mod exports;
mod health_api;
mod reports;
mod reports_api;
mod retention;
mod setup_access;
mod setup_browser;
mod setup_oauth;
