#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = capi_sender::Settings::load()?;
        runtime::telemetry::init(&settings.common.log);
        let app = capi_sender::Application::build(settings, runtime::shutdown_on_signals()).await?;
        app.run_until_stopped().await
    };
    runtime::exit_code("capi-sender", run.await)
}
