//! Mapping a WhatsApp Cloud API number (Meta's phone number id) to a
//! direction and, when asked, subscribing the app to its WhatsApp Business
//! Account (`POST /{waba_id}/subscribed_apps`), without which Meta sends the
//! number's messages nowhere. Audited with the token as "set"/"unset".

use crate::{Actor, Result, SetupError, audit, directions, given, meta_id};
use diesel_async::{AsyncConnection, AsyncPgConnection};
use domain::ids::{DirectionId, UserAccountId};
use serde_json::json;
use storage::cloud_numbers::CloudMapping;
use storage::secrets::Keys;

/// What to map.
#[derive(Debug, Clone, Default)]
pub struct CloudNumber {
    pub phone_number_id: String,
    pub direction: Option<DirectionId>,
    pub waba_id: Option<String>,
    pub phone: Option<String>,
    /// The system-user token the bot replies with (and the subscription is
    /// made with); `None` keeps the stored one.
    pub access_token: Option<String>,
    /// The Meta app (its id in `whatsapp_cloud.app_secrets`).
    pub app: Option<String>,
    /// Subscribe the app to the WABA (needs the WABA id and a token given).
    pub subscribe: bool,
}

/// The instance name the number is known by.
pub async fn map(
    conn: &mut AsyncPgConnection,
    keys: &Keys,
    graph: &meta_graph::Graph,
    actor: &Actor,
    account: Option<UserAccountId>,
    n: &CloudNumber,
) -> Result<String> {
    let id = n.phone_number_id.trim();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 32 {
        return Err(SetupError::invalid(
            "the phone number id is Meta's id of the number: digits only",
        ));
    }
    meta_id("the WhatsApp Business Account id", given(&n.waba_id))?;
    meta_id("the Meta app id", given(&n.app))?;
    let Some(direction) = n.direction else {
        return Err(SetupError::invalid("a number is mapped to a direction"));
    };
    let d = directions::find(conn, account, direction).await?;
    let token = given(&n.access_token);
    if n.subscribe {
        let (Some(waba), Some(token)) = (given(&n.waba_id), token) else {
            return Err(SetupError::invalid(
                "subscribing the app to the WABA needs the WABA id and the number's access token",
            ));
        };
        graph
            .subscribe_app(waba, token)
            .await
            .map_err(|e| SetupError::Upstream(format!("Meta refused the subscription: {e}")))?;
    }
    conn.transaction(async |conn| {
        let instance = storage::cloud_numbers::map(
            conn,
            keys,
            &CloudMapping {
                phone_number_id: id,
                direction_id: direction,
                waba_id: given(&n.waba_id),
                phone_number: given(&n.phone),
                access_token: token,
                meta_app_id: given(&n.app),
            },
        )
        .await?;
        let after = json!({"phone_number_id": id, "instance": instance, "direction_id": direction,
            "waba_id": given(&n.waba_id), "phone_number": given(&n.phone), "meta_app_id": given(&n.app),
            "access_token": if token.is_some() { audit::secret_state(true) } else { json!("kept") },
            "app_subscribed": n.subscribe});
        let target = format!("number {id}");
        audit::record(conn, actor, Some(d.user_account_id), "number.map", &target, None::<&()>, Some(&after)).await?;
        Ok(instance)
    })
    .await
}
