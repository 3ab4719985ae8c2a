#[tokio::main]
async fn main() -> std::process::ExitCode {
    let run = async {
        let settings = chatbot_service::Settings::load()?;
        runtime::telemetry::init(&settings.common.log);
        let app =
            chatbot_service::Application::build(settings, runtime::shutdown_on_signals()).await?;
        app.run_until_stopped().await
    };
    runtime::exit_code("chatbot-service", run.await)
}
