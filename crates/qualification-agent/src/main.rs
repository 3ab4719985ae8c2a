#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = qualification_agent::Settings::load()?;
    runtime::telemetry::init(&settings.common.log);
    let app = qualification_agent::Application::build(settings, runtime::shutdown_on_signals()).await?;
    app.run_until_stopped().await
}
