#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = reports::Settings::load(None)?;
        if runtime::settings::check_requested() {
            return runtime::settings::config_check("reports", &settings.common);
        }
        runtime::telemetry::start(&settings.common);
        reports::build(settings, runtime::shutdown_on_signals())
            .await?
            .run_until_stopped()
            .await
    };
    runtime::exit_code("reports", run.await)
}
