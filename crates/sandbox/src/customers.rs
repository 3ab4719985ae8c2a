//! `sandbox customers`: plays WhatsApp customers the way Evolution API reports
//! them — `messages.upsert` webhooks posted to webhook-gateway, a burst of a
//! few messages per dialog — and records when each dialog's last message was
//! accepted. Benchmarks use it as their load: it keeps its connections open
//! and costs a fraction of the CPU a script would on the measured machine.

use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

/// Who writes, where to, and how fast.
#[derive(Debug, Clone, clap::Args)]
pub struct Crowd {
    /// webhook-gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// Evolution instances, comma-separated; dialogs are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    pub instances: Vec<String>,
    /// The instances' webhook secret.
    #[arg(long, env = "SANDBOX_WEBHOOK_SECRET")]
    pub secret: String,
    #[arg(long, default_value_t = 1000)]
    pub dialogs: usize,
    /// Messages per dialog, sent one after another.
    #[arg(long, default_value_t = 3)]
    pub messages: usize,
    /// Dialogs being written at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Phones are this prefix and the dialog's number, zero-padded to 7 digits.
    #[arg(long, default_value = "7900")]
    pub phone_prefix: String,
}

/// What was posted: each phone's last accepted message, in Unix milliseconds.
#[derive(Debug, Serialize)]
pub struct Posted {
    pub webhooks: usize,
    pub seconds: f64,
    pub last_sent_ms: BTreeMap<String, i64>,
}

/// Posts every dialog's messages; fails on the first webhook not answered 200.
pub async fn post(crowd: &Crowd) -> anyhow::Result<Posted> {
    anyhow::ensure!(!crowd.instances.is_empty(), "no instances to write to");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(crowd.concurrency)
        .build()?;
    let started = Instant::now();
    let sent_at = chrono::Utc::now().timestamp();
    let mut dialogs = futures_util::stream::iter(0..crowd.dialogs)
        .map(|d| dialog(&client, crowd, d, sent_at))
        .buffer_unordered(crowd.concurrency.max(1));
    let mut last_sent_ms = BTreeMap::new();
    while let Some(done) = dialogs.next().await {
        let (phone, at) = done?;
        last_sent_ms.insert(phone, at);
    }
    Ok(Posted {
        webhooks: crowd.dialogs * crowd.messages,
        seconds: started.elapsed().as_secs_f64(),
        last_sent_ms,
    })
}

async fn dialog(
    client: &reqwest::Client,
    crowd: &Crowd,
    d: usize,
    sent_at: i64,
) -> anyhow::Result<(String, i64)> {
    let instance = &crowd.instances[d % crowd.instances.len()];
    let phone = format!("{}{d:07}", crowd.phone_prefix);
    let url = format!(
        "{}/webhooks/evolution/{instance}",
        crowd.gateway.trim_end_matches('/')
    );
    for i in 0..crowd.messages {
        let body = json!({
            "event": "messages.upsert",
            "instance": instance,
            "data": {
                "key": {"remoteJid": format!("{phone}@s.whatsapp.net"), "fromMe": false, "id": format!("C{phone}-{sent_at}-{i}")},
                "message": {"conversation": format!("message {} of dialog {d}", i + 1)},
                "messageTimestamp": sent_at,
            }
        });
        let response = client
            .post(&url)
            .header("X-Webhook-Secret", &crowd.secret)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("posting to {url}"))?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "webhook-gateway answered {status}: {}",
            response.text().await.unwrap_or_default()
        );
    }
    Ok((phone, chrono::Utc::now().timestamp_millis()))
}
