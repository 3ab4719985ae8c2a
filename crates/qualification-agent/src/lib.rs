//! qualification-agent: decides a dialog's conversion levels and claims each
//! level exactly once (a unique row per dialog and level, written with the
//! outbox message for capi-sender in one transaction), so replicas racing on
//! the same dialog queue one event.

mod decide;

use runtime::{CancellationToken, CommonSettings, Runtime};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Settings {
    pub common: CommonSettings,
}

const DEFAULTS: &str = r#"
[http]
port = 8082
"#;

impl Settings {
    pub fn load() -> anyhow::Result<Settings> {
        let (common, _) = runtime::load_settings::<serde::de::IgnoredAny>(DEFAULTS, None)?;
        Ok(Settings { common })
    }
}

/// Builds the service: it runs until `stop` is cancelled (`Runtime::run_until_stopped`).
pub async fn build(settings: Settings, stop: CancellationToken) -> anyhow::Result<Runtime> {
    let mut runtime = Runtime::new("qualification-agent", &settings.common, stop)?;
    runtime.serve(&settings.common, |_| {})?;
    let agent = Arc::new(decide::Agent {
        pool: runtime.pool.clone(),
        outbox_wake: runtime.outbox_wake.clone(),
    });
    let work = bus::consume(
        runtime.bus.clone(),
        bus::Queue::QualificationDialogs,
        runtime.stop.clone(),
        move |m| {
            let agent = agent.clone();
            async move { agent.handle(m).await }
        },
    );
    runtime.spawn_worker(work);
    runtime.spawn_outbox_relay();
    Ok(runtime)
}
