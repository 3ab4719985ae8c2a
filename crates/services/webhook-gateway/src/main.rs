#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = webhook_gateway::Settings::load(None)?;
        if runtime::settings::check_requested() {
            return runtime::settings::config_check("webhook-gateway", &settings.common);
        }
        runtime::telemetry::start(&settings.common);
        webhook_gateway::build(settings, runtime::shutdown_on_signals())
            .await?
            .run_until_stopped()
            .await
    };
    runtime::exit_code("webhook-gateway", run.await)
}
