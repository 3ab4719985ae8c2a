//! `sandbox customers`: plays WhatsApp customers the way Evolution API reports
//! them — `messages.upsert` webhooks posted to webhook-gateway, a burst of a
//! few messages per dialog — and records when each dialog's last message was
//! accepted. Benchmarks use it as their load: it keeps its connections open
//! and costs a fraction of the CPU a script would on the measured machine.

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
    /// webhook-gateway's base URL; several, comma-separated, are used in
    /// turn (dialog by dialog) and a retry goes to the next one, as a load
    /// balancer would.
    #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:8080")]
    pub gateway: Vec<String>,
    /// Evolution instances, comma-separated; dialogs are spread over them.
    #[arg(long, value_delimiter = ',', required = true)]
    pub instances: Vec<String>,
    /// The instances' webhook secret.
    #[arg(long, env = "SANDBOX_WEBHOOK_SECRET")]
    pub secret: String,
    #[arg(long, default_value_t = 1000)]
    pub dialogs: usize,
    /// Messages per dialog, sent one after another (with `--mix`, each
    /// dialog's script decides).
    #[arg(long, default_value_t = 3)]
    pub messages: usize,
    /// Dialogs being written at once (without `--rate`).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// New dialogs a second, each started on time however slow the others
    /// are (0: as fast as `--concurrency` allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Milliseconds between a dialog's messages.
    #[arg(long, default_value_t = 0)]
    pub gap_ms: u64,
    /// Every dialog starts from a Click-to-WhatsApp ad: its first message
    /// carries the ad's `externalAdReply` with a click id (`CLID<phone>`).
    #[arg(long)]
    pub ad: bool,
    /// Dialogs by index mod 3 write scripts that reach level 1 (Lead), 2
    /// (CompleteRegistration) and 3 (Schedule) with the sandbox's model.
    #[arg(long)]
    pub mix: bool,
    /// Retry a webhook that got no answer, a 5xx or a 429 for up to this
    /// many seconds, as Evolution API ≥ 2.3 does (0: fail at once).
    #[arg(long, default_value_t = 0)]
    pub retry_for: u64,
    /// Phones are this prefix and the dialog's number, zero-padded to 7 digits.
    #[arg(long, default_value = "7900")]
    pub phone_prefix: String,
}

/// What was posted: per phone, when each message was accepted.
#[derive(Debug, Serialize)]
pub struct Posted {
    pub webhooks: usize,
    pub seconds: f64,
    /// Each phone's last accepted message, in Unix milliseconds.
    pub last_sent_ms: BTreeMap<String, i64>,
    /// When each phone's second message (when it has one) was posted (its
    /// first try), in Unix milliseconds.
    pub second_posted_ms: BTreeMap<String, i64>,
    /// Events each phone's script should reach (`--mix`; else its message count capped at 1).
    pub expected_levels: BTreeMap<String, usize>,
    /// Webhooks posted again after no answer, a 5xx or a 429.
    pub retries: usize,
    /// Webhooks never accepted (answered 4xx, or retried past `--retry-for`).
    pub undelivered: usize,
    /// From posting a webhook to its 2xx (retries included), over every
    /// accepted webhook: median, 99th percentile and the slowest, in ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The scripts of `--mix`: the sandbox's model reads the first as interest
/// only, the second as qualified, the third as booked.
const SCRIPTS: [&[&str]; 3] = [
    &["Hello, I saw your ad", "What are your opening hours?"],
    &[
        "Hello, how much is it?",
        "My budget is around 100, it is for myself",
    ],
    &[
        "Hello, I saw your ad. My budget is around 100",
        "It is for myself",
        "Great, book me for Friday at 11",
    ],
];

/// One dialog's result.
struct Written {
    phone: String,
    accepted_ms: Vec<i64>,
    /// When each accepted webhook was first posted.
    posted_ms: Vec<i64>,
    /// How long each accepted webhook took, in ms.
    took_ms: Vec<f64>,
    expected_levels: usize,
    retries: usize,
    undelivered: usize,
}

/// Posts every dialog's messages. Without `--retry-for` it fails on the first
/// webhook not answered 2xx; with it, such webhooks are retried and those
/// never accepted are counted.
pub async fn post(crowd: &Crowd) -> anyhow::Result<Posted> {
    anyhow::ensure!(!crowd.instances.is_empty(), "no instances to write to");
    anyhow::ensure!(!crowd.gateway.is_empty(), "no gateway to write to");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(crowd.concurrency)
        .build()?;
    let started = Instant::now();
    let sent_at = chrono::Utc::now().timestamp();
    let written: Vec<anyhow::Result<Written>> = if crowd.rate > 0.0 {
        // Open loop: dialog d starts at d / rate whatever the others do.
        let mut tasks = tokio::task::JoinSet::new();
        for d in 0..crowd.dialogs {
            let due = started + Duration::from_secs_f64(d as f64 / crowd.rate);
            tokio::time::sleep_until(due.into()).await;
            let (client, crowd) = (client.clone(), crowd.clone());
            tasks.spawn(async move { dialog(&client, &crowd, d, sent_at).await });
        }
        let mut out = Vec::with_capacity(crowd.dialogs);
        while let Some(r) = tasks.join_next().await {
            out.push(r.map_err(anyhow::Error::from).and_then(|w| w));
        }
        out
    } else {
        futures_util::stream::iter(0..crowd.dialogs)
            .map(|d| dialog(&client, crowd, d, sent_at))
            .buffer_unordered(crowd.concurrency.max(1))
            .collect()
            .await
    };
    let mut posted = Posted {
        webhooks: 0,
        seconds: started.elapsed().as_secs_f64(),
        last_sent_ms: BTreeMap::new(),
        second_posted_ms: BTreeMap::new(),
        expected_levels: BTreeMap::new(),
        retries: 0,
        undelivered: 0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        max_ms: 0.0,
    };
    let mut took = Vec::new();
    for w in written {
        let w = w?;
        posted.webhooks += w.accepted_ms.len() + w.undelivered;
        posted.retries += w.retries;
        posted.undelivered += w.undelivered;
        if let Some(&last) = w.accepted_ms.last() {
            posted.last_sent_ms.insert(w.phone.clone(), last);
        }
        // Only where every message got in is the second one the second.
        if w.undelivered == 0
            && let Some(&second) = w.posted_ms.get(1)
        {
            posted.second_posted_ms.insert(w.phone.clone(), second);
        }
        posted.expected_levels.insert(w.phone, w.expected_levels);
        took.extend(w.took_ms);
    }
    took.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((took.len() as f64 * q).ceil() as usize).saturating_sub(1);
        took.get(i).copied().unwrap_or_default()
    };
    (posted.p50_ms, posted.p99_ms, posted.max_ms) = (at(0.5), at(0.99), at(1.0));
    Ok(posted)
}

/// A dialog's message texts and the levels they reach.
fn script(crowd: &Crowd, d: usize) -> (Vec<String>, usize) {
    if crowd.mix {
        let class = d % SCRIPTS.len();
        let lines = SCRIPTS[class].iter().map(|t| (*t).to_owned()).collect();
        (lines, class + 1)
    } else {
        let lines = (0..crowd.messages)
            .map(|i| format!("message {} of dialog {d}", i + 1))
            .collect();
        (lines, usize::from(crowd.messages >= 2))
    }
}

async fn dialog(
    client: &reqwest::Client,
    crowd: &Crowd,
    d: usize,
    sent_at: i64,
) -> anyhow::Result<Written> {
    let instance = &crowd.instances[d % crowd.instances.len()];
    let phone = format!("{}{d:07}", crowd.phone_prefix);
    let (lines, expected_levels) = script(crowd, d);
    let mut w = Written {
        phone: phone.clone(),
        accepted_ms: Vec::with_capacity(lines.len()),
        posted_ms: Vec::with_capacity(lines.len()),
        took_ms: Vec::with_capacity(lines.len()),
        expected_levels,
        retries: 0,
        undelivered: 0,
    };
    for (i, text) in lines.iter().enumerate() {
        if i > 0 && crowd.gap_ms > 0 {
            tokio::time::sleep(Duration::from_millis(crowd.gap_ms)).await;
        }
        let mut data = json!({
            "key": {"remoteJid": format!("{phone}@s.whatsapp.net"), "fromMe": false, "id": format!("C{phone}-{sent_at}-{i}")},
            "message": {"conversation": text},
            "messageTimestamp": sent_at,
        });
        if crowd.ad && i == 0 {
            data["contextInfo"] = json!({
                "externalAdReply": {"sourceType": "ad", "sourceId": "120200000000000003", "ctwaClid": format!("CLID{phone}")},
                "conversionSource": "FB_Ads",
            });
        }
        let body = json!({"event": "messages.upsert", "instance": instance, "data": data});
        let posted_at = Instant::now();
        let posted_ms = chrono::Utc::now().timestamp_millis();
        match deliver(client, crowd, d, instance, &body, &mut w.retries).await? {
            Some(at) => {
                w.accepted_ms.push(at);
                w.posted_ms.push(posted_ms);
                w.took_ms.push(posted_at.elapsed().as_secs_f64() * 1000.0);
            }
            None => w.undelivered += 1,
        }
    }
    Ok(w)
}

/// Posts one webhook, retrying (on the next gateway) while `--retry-for`
/// allows; the time it was accepted, or `None` if it never was.
async fn deliver(
    client: &reqwest::Client,
    crowd: &Crowd,
    d: usize,
    instance: &str,
    body: &serde_json::Value,
    retries: &mut usize,
) -> anyhow::Result<Option<i64>> {
    let deadline = Instant::now() + Duration::from_secs(crowd.retry_for);
    let mut wait = Duration::from_millis(200);
    for turn in 0.. {
        let gateway = &crowd.gateway[(d + turn) % crowd.gateway.len()];
        let url = format!(
            "{}/webhooks/evolution/{instance}",
            gateway.trim_end_matches('/')
        );
        let answer = client
            .post(&url)
            .header("X-Webhook-Secret", &crowd.secret)
            .json(body)
            .send()
            .await;
        let failure = match answer {
            Ok(r) if r.status().is_success() => {
                return Ok(Some(chrono::Utc::now().timestamp_millis()));
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let retryable = status.is_server_error() || status.as_u16() == 429;
                if !retryable && crowd.retry_for > 0 {
                    return Ok(None);
                }
                format!("webhook-gateway answered {status}: {text}")
            }
            Err(e) => format!("posting to {url}: {e}"),
        };
        if Instant::now() + wait > deadline {
            if crowd.retry_for > 0 {
                return Ok(None);
            }
            anyhow::bail!(failure);
        }
        *retries += 1;
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(2));
    }
    Ok(None)
}
