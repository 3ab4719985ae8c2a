//! `sandbox`: a local Meta Conversions API for development and tests.

use clap::{Parser, Subcommand};
use sandbox::{Faults, Sandbox, customers::Crowd};

#[derive(Parser)]
#[command(
    name = "sandbox",
    about = "A local stand-in for Meta's Conversions API, an OpenAI-compatible model, Evolution API, amoCRM and Bitrix24 (not for production)"
)]
struct Args {
    #[arg(long, env = "SANDBOX_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "SANDBOX_PORT", default_value_t = 8090)]
    port: u16,
    /// Milliseconds added to every answer.
    #[arg(long, env = "SANDBOX_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests answered 500, 0..1.
    #[arg(long, env = "SANDBOX_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,
    /// Share of requests answered as throttled, 0..1.
    #[arg(long, env = "SANDBOX_THROTTLE_RATE", default_value_t = 0.0)]
    throttle_rate: f64,
    /// Milliseconds added to every chat completion (the bot's model).
    #[arg(long, env = "SANDBOX_LLM_LATENCY_MS", default_value_t = 0)]
    llm_latency_ms: u64,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Play WhatsApp customers: post their messages to webhook-gateway as
    /// Evolution API would, then print (JSON) when each dialog's last message
    /// was accepted. The load for benchmarks.
    Customers(Crowd),
    /// Put N amoCRM leads into a running sandbox and post all their status
    /// webhooks to webhook-gateway at once; print (JSON) the answer times.
    CrmBurst(sandbox::crm_burst::Burst),
    /// Post one customer message to webhook-gateway as Meta's WhatsApp Cloud
    /// API would (signed with the app secret); print the gateway's answer.
    CloudWebhook(sandbox::cloud_webhook::CloudMessage),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let a = Args::parse();
    match a.command {
        Some(Command::Customers(crowd)) => {
            let run = async {
                let posted = sandbox::customers::post(&crowd).await?;
                println!("{}", serde_json::to_string(&posted)?);
                anyhow::Ok(())
            };
            return runtime::exit_code("sandbox customers", run.await);
        }
        Some(Command::CrmBurst(burst)) => {
            let run = async {
                let result = sandbox::crm_burst::run(&burst).await?;
                println!("{}", serde_json::to_string(&result)?);
                anyhow::Ok(())
            };
            return runtime::exit_code("sandbox crm-burst", run.await);
        }
        Some(Command::CloudWebhook(m)) => {
            let run = async {
                let (status, answer) = sandbox::cloud_webhook::post(&m).await?;
                println!("{answer}");
                anyhow::ensure!(status == 200, "the gateway answered HTTP {status}");
                anyhow::Ok(())
            };
            return runtime::exit_code("sandbox cloud-webhook", run.await);
        }
        None => {}
    }
    runtime::telemetry::init(&runtime::settings::LogSettings {
        format: runtime::settings::LogFormat::Pretty,
        filter: "info".into(),
    });
    let faults = Faults {
        latency_ms: a.latency_ms,
        error_rate: a.error_rate,
        throttle_rate: a.throttle_rate,
        ..Faults::default()
    };
    let run = async {
        let listener = std::net::TcpListener::bind((a.host.as_str(), a.port))?;
        tracing::info!(
            port = a.port,
            "sandbox listening: Meta POST /{{version}}/{{pixel_id}}/events, LLM POST /v1/chat/completions, Evolution POST /message/sendText/{{instance}}, GET /sandbox/stats"
        );
        let llm = sandbox::assistant::LlmFaults {
            latency_ms: a.llm_latency_ms,
            fail_next: 0,
        };
        sandbox::serve(
            listener,
            actix_web::web::Data::new(Sandbox::with_llm(faults, llm)),
        )?
        .await?;
        anyhow::Ok(())
    };
    runtime::exit_code("sandbox", run.await)
}
