#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = webhook_gateway::Settings::load()?;
        runtime::telemetry::init(&settings.common.log);
        let app =
            webhook_gateway::Application::build(settings, runtime::shutdown_on_signals()).await?;
        app.run_until_stopped().await
    };
    runtime::exit_code("webhook-gateway", run.await)
}
