#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = capi_sender::Settings::load(None)?;
        if runtime::settings::check_requested() {
            return runtime::settings::config_check("capi-sender", &settings.common);
        }
        runtime::telemetry::start(&settings.common);
        capi_sender::build(settings, runtime::shutdown_on_signals())
            .await?
            .run_until_stopped()
            .await
    };
    runtime::exit_code("capi-sender", run.await)
}
