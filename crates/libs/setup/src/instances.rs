//! Connecting an Evolution API instance: map it to a direction, keep its
//! API key sealed, and point its webhook at the gateway through Evolution's
//! own endpoint, read back to confirm; audited without the secret or key.

use crate::evolution::{Evolution, Webhook};
use crate::{Actor, Result, SetupError, audit, directions, given};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use domain::evolution::ApiVersion;
use domain::ids::{DirectionId, UserAccountId};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use storage::secrets::Keys;

/// What to connect.
#[derive(Debug, Clone)]
pub struct ConnectInstance {
    pub instance: String,
    pub direction: DirectionId,
    /// The instance's WhatsApp number, for lists.
    pub phone: Option<String>,
    /// Its Evolution API key (instance token or global key); `None` keeps
    /// the one stored.
    pub api_key: Option<String>,
    /// `None`: the stored version (v2 for a new instance).
    pub version: Option<ApiVersion>,
    /// The webhook secret; `None` keeps the stored one (a new one is made
    /// for a new instance).
    pub secret: Option<String>,
}

/// What was connected: where Evolution now posts, and the secret it sends.
#[derive(Debug, Clone)]
pub struct Connected {
    pub webhook_url: String,
    pub webhook_secret: String,
    pub evolution: Value,
}

/// 1–100 visible ASCII characters, none of which ends or escapes a URL
/// path segment (`/ ? # % \\`): the name goes into the gateway's webhook
/// path as it is.
pub fn check_instance_name(name: &str) -> Result<()> {
    let fits = |b: u8| b.is_ascii_graphic() && !b"/?#%\\".contains(&b);
    if name.is_empty() || name.len() > 100 || !name.bytes().all(fits) {
        return Err(SetupError::invalid(
            "an instance name is 1 to 100 characters without spaces, '/', '?', '#', '%' or '\\'",
        ));
    }
    Ok(())
}

/// The gateway's webhook URL for the instance.
pub fn webhook_url(gateway_url: &str, instance: &str) -> String {
    format!(
        "{}/webhooks/evolution/{instance}",
        gateway_url.trim_end_matches('/')
    )
}

#[allow(clippy::too_many_arguments)]
pub async fn connect(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    evolution: Option<&Evolution>,
    gateway_url: &str,
    actor: &Actor,
    account: Option<UserAccountId>,
    c: &ConnectInstance,
) -> Result<Connected> {
    check_instance_name(&c.instance)?;
    let Some(evolution) = evolution else {
        return Err(SetupError::invalid(
            "Evolution API's address is not set (bot.evolution_base_url): the webhook cannot be set",
        ));
    };
    let direction = directions::find(conn, account, c.direction).await?;
    let before = storage::directions::instance_row(conn, &c.instance).await?;
    if let Some(b) = &before
        && let Some(owner) = account
    {
        // An instance mapped to another account's direction is not this one's to take.
        if let Some(d) = b.direction_id
            && directions::find(conn, Some(owner), d).await.is_err()
        {
            return Err(SetupError::NotFound(format!(
                "no instance {} of this account",
                c.instance
            )));
        }
    }
    let stored = storage::directions::instance_evolution(conn, keys, &c.instance).await?;
    let api_key = match (given(&c.api_key), &stored) {
        (Some(k), _) => k.to_owned(),
        (None, Some((Some(k), _))) => expose(k),
        _ => {
            return Err(SetupError::invalid(
                "the instance's Evolution API key is needed to set its webhook",
            ));
        }
    };
    let version = c
        .version
        .or(stored.as_ref().map(|s| s.1))
        .unwrap_or(ApiVersion::V2);
    let secret = match given(&c.secret) {
        Some(s) if s.len() < 16 => {
            return Err(SetupError::invalid(
                "a webhook secret is at least 16 characters",
            ));
        }
        Some(s) => s.to_owned(),
        None => match storage::directions::instance(conn, keys, &c.instance).await? {
            Some(i) if !expose(&i.webhook_secret).is_empty() => expose(&i.webhook_secret),
            _ => domain::api_key::random_secret(),
        },
    };
    let url = webhook_url(gateway_url, &c.instance);
    // v1 takes no custom headers: the secret rides in the query, which the
    // gateway also reads.
    let set_url = match version {
        ApiVersion::V2 => url.clone(),
        ApiVersion::V1 => format!("{url}?secret={secret}"),
    };
    let confirmed = evolution
        .set_webhook(
            &c.instance,
            &api_key,
            version,
            &Webhook {
                url: &set_url,
                secret: &secret,
            },
        )
        .await?;
    let view =
        |row: Option<storage::directions::InstanceRow>, key_set: bool, hook: Option<&str>| {
            row.map(|r| {
                json!({"instance": r.instance_name, "direction_id": r.direction_id,
                   "phone_number": r.phone_number, "webhook_url": hook,
                   "webhook_secret": audit::secret_state(true),
                   "evolution_api_key": audit::secret_state(key_set)})
            })
        };
    let key_was_set = matches!(stored, Some((Some(_), _)));
    conn.transaction(async |conn| {
        storage::directions::map_instance(
            conn,
            keys,
            &c.instance,
            c.direction,
            &secret,
            given(&c.phone),
        )
        .await?;
        storage::directions::set_instance_bot(
            conn,
            keys,
            &c.instance,
            Some(&api_key),
            Some(version),
            None,
        )
        .await?;
        let after = storage::directions::instance_row(conn, &c.instance).await?;
        let target = format!("instance {}", c.instance);
        audit::record(
            conn,
            actor,
            Some(direction.user_account_id),
            "instance.connect",
            &target,
            view(before, key_was_set, None).as_ref(),
            view(after, true, Some(&url)).as_ref(),
        )
        .await?;
        Ok::<_, SetupError>(())
    })
    .await?;
    let mut evolution = confirmed;
    evolution["url"] = Value::from(url.clone());
    Ok(Connected {
        webhook_url: url,
        webhook_secret: secret,
        evolution,
    })
}

fn expose(s: &SecretString) -> String {
    s.expose_secret().to_owned()
}

/// Maps an instance to a direction without touching Evolution (`capi
/// instance map`: the operator sets the webhook by hand with the secret).
pub async fn map(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    actor: &Actor,
    instance: &str,
    direction: DirectionId,
    secret: &str,
    phone: Option<&str>,
) -> Result<()> {
    check_instance_name(instance)?;
    conn.transaction(async |conn| {
        let d = directions::find(conn, None, direction).await?;
        let before = storage::directions::instance_row(conn, instance).await?;
        storage::directions::map_instance(conn, keys, instance, direction, secret, phone).await?;
        let after = storage::directions::instance_row(conn, instance).await?;
        let with_secret = |r: Option<storage::directions::InstanceRow>| {
            r.map(|r| {
                json!({"instance": r.instance_name, "direction_id": r.direction_id,
                             "phone_number": r.phone_number, "webhook_secret": "set"})
            })
        };
        let target = format!("instance {instance}");
        audit::record(
            conn,
            actor,
            Some(d.user_account_id),
            "instance.map",
            &target,
            with_secret(before).as_ref(),
            with_secret(after).as_ref(),
        )
        .await
    })
    .await
}

/// How the bot sends through the instance (`capi instance bot`): its
/// Evolution API key (`None` keeps it), the API's version, on/off.
pub async fn set_bot(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    actor: &Actor,
    instance: &str,
    api_key: Option<&str>,
    version: Option<ApiVersion>,
    enabled: Option<bool>,
) -> Result<()> {
    conn.transaction(async |conn| {
        let Some(row) = storage::directions::instance_row(conn, instance).await? else {
            return Err(SetupError::NotFound(format!("no instance {instance}")));
        };
        let owner = match row.direction_id {
            Some(d) => Some(directions::find(conn, None, d).await?.user_account_id),
            None => None,
        };
        storage::directions::set_instance_bot(conn, keys, instance, api_key, version, enabled).await?;
        let after = json!({"evolution_api_key": if api_key.is_some() { audit::secret_state(true) } else { json!("kept") },
                           "evolution_api_version": version, "bot_enabled": enabled});
        let target = format!("instance {instance}");
        audit::record(conn, actor, owner, "instance.bot", &target, None::<&()>, Some(&after)).await
    })
    .await
}
