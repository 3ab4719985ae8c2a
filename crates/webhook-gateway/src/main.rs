#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = webhook_gateway::Settings::load()?;
    runtime::telemetry::init(&settings.common.log);
    let app = webhook_gateway::Application::build(settings, runtime::shutdown_on_signals()).await?;
    app.run_until_stopped().await
}
