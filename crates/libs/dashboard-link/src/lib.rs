//! Sign-in links to the dashboard. `capi dashboard-link` makes one; the
//! `reports` service checks it (`/dashboard/login`) with the same secret.
//! Both read the `[reports]` keys below from here, so the link's shape, its
//! secret's strength rule and its defaults live in one place.

use chrono::Utc;
use domain::api_key::{LinkGrant, Role, link_nonce, sign_link};
use domain::ids::UserAccountId;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The defaults of the keys this crate reads, merged under every
/// service's and the CLI's own defaults.
pub const DEFAULTS: &str = r#"
[reports]
dashboard_secret = ""
public_url = "http://127.0.0.1:8084"
link_ttl = "15m"
"#;

/// The `[reports]` keys a sign-in link needs (the section's other keys are
/// the reports service's and are ignored here).
#[derive(Debug, Clone, Deserialize)]
pub struct LinkSettings {
    /// Signs dashboard links and session cookies; the dashboard is off
    /// while empty. `capi dashboard-link` needs the same value.
    pub dashboard_secret: SecretString,
    /// How the dashboard is reached from a browser (printed links).
    pub public_url: String,
    /// How long a dashboard link lasts.
    #[serde(deserialize_with = "domain::duration::deserialize")]
    pub link_ttl: std::time::Duration,
}

impl LinkSettings {
    /// A sign-in link to the account's dashboard with `role`, valid for
    /// `link_ttl` and once, while the account's dashboard generation is
    /// `generation` (`storage::dashboard::generation`); with its expiry
    /// (Unix seconds).
    pub fn link(
        &self,
        account: UserAccountId,
        generation: i32,
        role: Role,
    ) -> anyhow::Result<(String, i64)> {
        let secret = secret(&self.dashboard_secret)?.ok_or_else(|| {
            anyhow::anyhow!(
                "reports.dashboard_secret is not set (CAPI_REPORTS__DASHBOARD_SECRET): the dashboard is off"
            )
        })?;
        Ok(link(
            public_url(&self.public_url),
            &secret,
            account,
            generation,
            role,
            self.link_ttl,
        ))
    }
}

/// The public address without a trailing `/`.
pub fn public_url(url: &str) -> &str {
    url.trim_end_matches('/')
}

/// The secret links are signed with: `None` when it is not set (the
/// dashboard is off), an error naming the setting when it is set but weak
/// (`domain::signing_key`), so a guessable secret never signs.
pub fn secret(value: &SecretString) -> anyhow::Result<Option<Vec<u8>>> {
    let secret = value.expose_secret().trim();
    if secret.is_empty() {
        return Ok(None);
    }
    domain::signing_key::decode_strong(
        secret,
        "reports.dashboard_secret",
        "CAPI_REPORTS__DASHBOARD_SECRET",
    )?;
    Ok(Some(secret.as_bytes().to_vec()))
}

/// The link and when it expires (Unix seconds): it signs in once, while the
/// account's dashboard generation is still `generation`.
pub fn link(
    public_url: &str,
    secret: &[u8],
    account: UserAccountId,
    generation: i32,
    role: Role,
    ttl: std::time::Duration,
) -> (String, i64) {
    let expires = Utc::now().timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 2);
    let grant = LinkGrant {
        account,
        generation,
        expires_unix: expires,
        nonce: link_nonce(),
        role,
    };
    let url = format!(
        "{public_url}/dashboard/login?token={}",
        sign_link(secret, &grant)
    );
    (url, expires)
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::api_key::verify_link;

    #[test]
    fn a_link_verifies_with_its_secret_only_and_an_unset_secret_makes_none() {
        // 32 distinct bytes, as hex (a strong key).
        let secret: String = (0u8..32).map(|b| format!("{:02x}", b * 7 + 3)).collect();
        let settings = LinkSettings {
            dashboard_secret: SecretString::from(secret.clone()),
            public_url: "https://dash.example/".into(),
            link_ttl: std::time::Duration::from_secs(60),
        };
        let account = domain::ids::UserAccountId::from(uuid::Uuid::new_v4());
        let made = settings.link(account, 3, Role::Editor);
        let (url, expires) = match made {
            Ok(l) => l,
            Err(e) => panic!("{e:#}"),
        };
        let token = url
            .strip_prefix("https://dash.example/dashboard/login?token=")
            .unwrap_or_default();
        let now = Utc::now().timestamp();
        assert!((now + 55..=now + 65).contains(&expires));
        let grant = verify_link(secret.as_bytes(), token, now);
        assert!(
            grant.is_some_and(|g| g.account == account
                && g.generation == 3
                && g.role == Role::Editor)
        );
        assert!(verify_link(b"another-secret-another-secret-another", token, now).is_none());
        let off = LinkSettings {
            dashboard_secret: SecretString::from(""),
            ..settings
        };
        let err = off
            .link(account, 3, Role::Viewer)
            .err()
            .map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("reports.dashboard_secret is not set")));
    }
}
