#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = qualification_agent::Settings::load()?;
        runtime::telemetry::init(&settings.common.log);
        qualification_agent::build(settings, runtime::shutdown_on_signals())
            .await?
            .run_until_stopped()
            .await
    };
    runtime::exit_code("qualification-agent", run.await)
}
