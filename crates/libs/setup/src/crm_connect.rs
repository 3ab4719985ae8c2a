//! A new CRM connection, however its tokens came (`capi crm connect` from
//! standard input, or the OAuth pages): stored sealed and audited in one
//! transaction, the trail naming its host and which secrets are set.

use crate::{Actor, Result, SetupError, audit};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use domain::ids::ConnectionId;
use serde_json::json;
use storage::crm::NewConnection;
use storage::secrets::Keys;

/// An http(s) address, or a refusal naming `what`.
pub fn check_http_url(what: &str, url: &str) -> Result<()> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(SetupError::invalid(format!(
            "{what} must be an http(s) URL"
        )))
    }
}

/// The address's host (a Bitrix24 incoming webhook URL holds its secret in
/// the path, so the trail keeps the host only).
pub fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or_default()
}

pub async fn create(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    actor: &Actor,
    new: &NewConnection<'_>,
) -> Result<ConnectionId> {
    conn.transaction(async |conn| {
        let id = storage::crm::create_connection(conn, keys, new).await?;
        let set = |v: Option<&str>| audit::secret_state(v.is_some());
        let after = json!({
            "crm_type": new.crm_type, "host": host(new.base_url),
            "oauth_client_id": new.oauth_client_id,
            "access_token": set(new.access_token), "refresh_token": set(new.refresh_token),
            "client_secret": set(new.oauth_client_secret), "webhook_secret": set(new.webhook_secret),
            "application_token": set(new.application_token),
        });
        let target = format!("crm connection {id}");
        let owner = Some(new.user_account_id);
        audit::record(conn, actor, owner, "crm.connect", &target, None::<&()>, Some(&after)).await?;
        Ok(id)
    })
    .await
}
