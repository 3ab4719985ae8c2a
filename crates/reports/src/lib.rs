//! reports: daily conversation reports, the analytics/ROI API and the
//! dashboard. For now it serves only `/health` and `/ready`.

use runtime::{CancellationToken, CommonSettings, Runtime};

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
}

const DEFAULTS: &str = r#"
[http]
port = 8084
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Settings> {
        let (common, _) = runtime::load_settings::<serde::de::IgnoredAny>(DEFAULTS, None)?;
        Ok(Settings { common })
    }
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new("reports", &settings.common, stop)?;
    runtime.serve(&settings.common, |_| {})?;
    Ok(runtime)
}
