//! `/analytics/capi-health` and the dashboard's health section: each
//! direction's CAPI status as `capi doctor` judges it (`domain::health`
//! on `storage::health`'s facts), and a banner per refusal the business
//! must fix in Meta (an expired token, a dataset not shared).

use chrono::{DateTime, Utc};
use domain::health::{Facts, Health};
use domain::ids::{DirectionId, UserAccountId};
use serde::Serialize;
use storage::{AsyncPgConnection, DbError, doctor::Scope};

#[derive(Debug, Clone, Serialize)]
pub struct DirectionHealth {
    pub direction_id: DirectionId,
    pub name: String,
    #[serde(flatten)]
    pub health: Health,
    #[serde(flatten)]
    pub facts: Facts,
}

#[derive(Debug, Clone, Serialize)]
pub struct CapiHealth {
    pub user_account_id: UserAccountId,
    pub checked_at: DateTime<Utc>,
    pub directions: Vec<DirectionHealth>,
}

impl CapiHealth {
    /// The directions whose health carries a banner (Meta refused a token or a dataset).
    pub fn banners(&self) -> impl Iterator<Item = (&DirectionHealth, &domain::health::Banner)> {
        self.directions
            .iter()
            .filter_map(|d| d.health.banner.as_ref().map(|b| (d, b)))
    }
}

pub async fn capi_health(
    conn: &mut AsyncPgConnection,
    account: UserAccountId,
) -> Result<CapiHealth, DbError> {
    let now = Utc::now();
    let scope = Scope {
        user_account: Some(account),
        direction: None,
    };
    let directions = storage::health::direction_facts(conn, scope)
        .await?
        .into_iter()
        .map(|d| DirectionHealth {
            direction_id: d.direction_id,
            name: d.name,
            health: domain::health::assess(&d.facts, now),
            facts: d.facts,
        })
        .collect();
    Ok(CapiHealth {
        user_account_id: account,
        checked_at: now,
        directions,
    })
}
