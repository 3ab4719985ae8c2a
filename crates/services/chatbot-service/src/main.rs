#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = chatbot_service::Settings::load(None)?;
        if runtime::settings::check_requested() {
            return runtime::settings::config_check("chatbot-service", &settings.common);
        }
        runtime::telemetry::start(&settings.common);
        chatbot_service::build(settings, runtime::shutdown_on_signals())
            .await?
            .run_until_stopped()
            .await
    };
    runtime::exit_code("chatbot-service", run.await)
}
