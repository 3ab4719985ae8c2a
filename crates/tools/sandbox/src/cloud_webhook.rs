//! `sandbox cloud-webhook`: posts one customer message to webhook-gateway
//! the way Meta's WhatsApp Cloud API does — a `whatsapp_business_account`
//! payload signed with the app secret in `X-Hub-Signature-256` — and prints
//! the gateway's answer. `scripts/demo cloud` talks through it.

use serde_json::{Value, json};

#[derive(Debug, Clone, clap::Args)]
pub struct CloudMessage {
    /// webhook-gateway's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub gateway: String,
    /// The Meta app secret the gateway checks (`whatsapp_cloud.app_secrets`).
    #[arg(long, env = "SANDBOX_CLOUD_APP_SECRET")]
    pub app_secret: String,
    #[arg(long)]
    pub phone_number_id: String,
    /// `entry[].id`: the WhatsApp Business Account.
    #[arg(long)]
    pub waba_id: String,
    /// The customer's phone, digits.
    #[arg(long)]
    pub from: String,
    #[arg(long)]
    pub text: String,
    /// The wamid (a new one when not given).
    #[arg(long)]
    pub message_id: Option<String>,
    /// Sent from a click-to-WhatsApp ad with this click id.
    #[arg(long)]
    pub ctwa_clid: Option<String>,
    /// The ad's id (`referral.source_id`).
    #[arg(long, default_value = "120226305854810726")]
    pub ad_id: String,
    #[arg(long, default_value = "Demo customer")]
    pub name: String,
}

/// The payload Meta would send for `m`.
pub fn payload(m: &CloudMessage) -> Value {
    let id = m
        .message_id
        .clone()
        .unwrap_or_else(|| format!("wamid.SB{}", uuid::Uuid::new_v4().simple()));
    let mut message = json!({
        "from": m.from, "id": id, "timestamp": chrono::Utc::now().timestamp().to_string(),
        "type": "text", "text": {"body": m.text}
    });
    if let Some(clid) = &m.ctwa_clid {
        message["referral"] = json!({
            "source_url": "https://fb.me/sandbox", "source_id": m.ad_id, "source_type": "ad",
            "headline": "Chat with us", "media_type": "image", "ctwa_clid": clid
        });
    }
    json!({"object": "whatsapp_business_account", "entry": [{"id": m.waba_id, "changes": [{
        "field": "messages",
        "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": m.phone_number_id},
            "contacts": [{"profile": {"name": m.name}, "wa_id": m.from}],
            "messages": [message]
        }
    }]}]})
}

/// Signs and posts; the gateway's status and answer.
pub async fn post(m: &CloudMessage) -> anyhow::Result<(u16, Value)> {
    let body = serde_json::to_vec(&payload(m))?;
    let signature = domain::whatsapp_cloud::sign(m.app_secret.as_bytes(), &body);
    let resp = reqwest::Client::new()
        .post(format!(
            "{}/webhooks/whatsapp-cloud",
            m.gateway.trim_end_matches('/')
        ))
        .header("content-type", "application/json")
        .header("X-Hub-Signature-256", signature)
        .body(body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_posted_payload_is_one_the_gateway_parses_as_an_ad_click() {
        let m = CloudMessage {
            gateway: String::new(),
            app_secret: "s".into(),
            phone_number_id: "555001".into(),
            waba_id: "777001".into(),
            from: "16505551234".into(),
            text: "Hi".into(),
            message_id: Some("wamid.X".into()),
            ctwa_clid: Some("ARclick".into()),
            ad_id: "42".into(),
            name: "Ana".into(),
        };
        let parsed = domain::whatsapp_cloud::parse(&payload(&m)).expect("parses");
        assert_eq!(parsed.len(), 1);
        let p = &parsed[0];
        assert_eq!(
            (
                p.phone_number_id.as_str(),
                p.waba_id.as_str(),
                p.message_id.as_str()
            ),
            ("555001", "777001", "wamid.X")
        );
        assert_eq!(p.phone.as_deref(), Some("16505551234"));
        assert_eq!(p.ctwa_clid.as_deref(), Some("ARclick"));
        assert_eq!(p.ad_id.as_deref(), Some("42"));
        assert!(p.from_ad);
        assert_eq!(p.text.as_deref(), Some("Hi"));
    }
}
