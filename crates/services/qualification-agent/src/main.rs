#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = qualification_agent::Settings::load(None)?;
        if runtime::settings::check_requested() {
            return runtime::settings::config_check("qualification-agent", &settings.common);
        }
        runtime::telemetry::start(&settings.common);
        qualification_agent::build(settings, runtime::shutdown_on_signals())
            .await?
            .run_until_stopped()
            .await
    };
    runtime::exit_code("qualification-agent", run.await)
}
