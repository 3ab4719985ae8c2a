//! `sandbox crm-burst`: the amoCRM side of `scripts/bench-crm`. Puts N leads
//! (each in the given status, with a main contact whose phone is the
//! prefix and the lead's number) into a running sandbox, then posts every
//! lead's status webhook to webhook-gateway at the same moment, as amoCRM
//! would after a mass update, and prints (JSON) how long each answer took.

use crate::crm::amocrm::{Account, status_webhook};
use anyhow::Context;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct Burst {
    /// The running sandbox to put the leads in.
    #[arg(long, default_value = "http://127.0.0.1:8090")]
    pub sandbox: String,
    /// The connection's webhook URL (with its ?secret=).
    #[arg(long)]
    pub hook: String,
    #[arg(long, default_value_t = 1000)]
    pub leads: usize,
    /// Contact phones are this prefix and the lead's number, zero-padded to 7 digits.
    #[arg(long, default_value = "7900")]
    pub phone_prefix: String,
    #[arg(long, default_value_t = 142)]
    pub status_id: u64,
    #[arg(long, default_value = "clinic")]
    pub subdomain: String,
    #[arg(long, default_value = "29")]
    pub account_id: String,
}

#[derive(Debug, Serialize)]
pub struct BurstResult {
    pub posted: usize,
    pub answered_200: usize,
    pub failed: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// From the first post to the last answer.
    pub seconds: f64,
    /// Unix milliseconds when the burst started.
    pub started_ms: i64,
}

pub async fn run(b: &Burst) -> anyhow::Result<BurstResult> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(b.leads.max(1))
        .build()?;
    let sandbox = b.sandbox.trim_end_matches('/');
    let put = |path: String, body: serde_json::Value| {
        let client = client.clone();
        async move {
            let r = client
                .put(format!("{sandbox}{path}"))
                .json(&body)
                .send()
                .await
                .with_context(|| format!("PUT {path}"))?;
            anyhow::ensure!(r.status().is_success(), "PUT {path}: {}", r.status());
            anyhow::Ok(())
        }
    };
    let mut puts = futures_util::stream::iter(0..b.leads)
        .map(|i| {
            let phone = format!("{}{i:07}", b.phone_prefix);
            let (lead, contact) = (1_000_000 + i, 2_000_000 + i);
            let put = &put;
            async move {
                put(
                    format!("/sandbox/amocrm/contacts/{contact}"),
                    json!({"custom_fields_values": [{"field_id": 1, "field_code": "PHONE",
                           "values": [{"value": phone, "enum_code": "MOB"}]}]}),
                )
                .await?;
                put(
                    format!("/sandbox/amocrm/leads/{lead}"),
                    json!({"status_id": b.status_id, "pipeline_id": 936736,
                           "custom_fields_values": null, "contacts": [{"id": contact, "is_main": true}]}),
                )
                .await
            }
        })
        .buffer_unordered(32);
    while let Some(done) = puts.next().await {
        done?;
    }
    let account = Account {
        subdomain: b.subdomain.clone(),
        id: b.account_id.clone(),
        ..Account::default()
    };
    let bodies: Vec<String> = (0..b.leads)
        .map(|i| {
            let lead = json!({"status_id": b.status_id, "pipeline_id": 936736});
            status_webhook(
                &account,
                &(1_000_000 + i).to_string(),
                &lead,
                Some(&json!(99)),
            )
        })
        .collect();
    let started_ms = chrono::Utc::now().timestamp_millis();
    let started = Instant::now();
    let url = reqwest::Url::parse(&b.hook).context("--hook")?;
    let addr = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port_or_known_default().unwrap_or(80)
    );
    let target = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    };
    let posts = bodies.into_iter().map(|body| {
        let request = format!(
            "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let addr = addr.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let status = post_once(&addr, request.as_bytes()).await.unwrap_or(0);
            (status, t.elapsed().as_secs_f64() * 1000.0)
        })
    });
    let answers = futures_util::future::join_all(posts).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut times: Vec<f64> = Vec::with_capacity(answers.len());
    let mut ok = 0;
    for (status, ms) in answers.into_iter().flatten() {
        times.push(ms);
        ok += usize::from(status == 200);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        times
            .get(((times.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(BurstResult {
        posted: b.leads,
        answered_200: ok,
        failed: b.leads - ok,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: times.last().copied().unwrap_or(0.0),
        seconds,
        started_ms,
    })
}

/// One request on a new connection, as a CRM's webhook sender makes it: a
/// minimal HTTP/1.1 client, so that on a shared machine the load generator
/// costs as little CPU as it can. The answer's status code.
async fn post_once(addr: &str, request: &[u8]) -> std::io::Result<u16> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    stream.write_all(request).await?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head).await?;
    // "HTTP/1.1 200"
    let code = std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok(code)
}
