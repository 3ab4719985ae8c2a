#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = reports::Settings::load()?;
    runtime::telemetry::init(&settings.common.log);
    let app = reports::Application::build(settings, runtime::shutdown_on_signals()).await?;
    app.run_until_stopped().await
}
