#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = reports::Settings::load()?;
        runtime::telemetry::init(&settings.common.log);
        let app = reports::Application::build(settings, runtime::shutdown_on_signals()).await?;
        app.run_until_stopped().await
    };
    runtime::exit_code("reports", run.await)
}
