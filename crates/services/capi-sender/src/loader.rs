//! Loads and leases deliveries for many messages at once: concurrent
//! handlers' requests are gathered for a moment and served by two statements
//! (one context query, one lease update) instead of two per event.

use chrono::Utc;
use domain::delivery::DeliveryStatus;
use domain::ids::EventId;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use storage::{Store, deliveries::DeliveryContext};
use tokio::sync::{mpsc, oneshot};

/// Most requests served by one round of statements.
const MAX_GATHER: usize = 1000;
/// How long the first request of a round waits for company.
const GATHER_WINDOW: Duration = Duration::from_millis(3);

/// Ad accounts Meta is throttling, and until when.
pub type Throttled = Arc<Mutex<HashMap<ThrottleKey, Instant>>>;

/// Whose requests Meta throttles: the ad account, or without one the
/// token (the first 8 bytes of its SHA-256). Kept inline in each waiting
/// event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThrottleKey {
    AdAccount(uuid::Uuid),
    Token([u8; 8]),
}

pub enum Loaded {
    /// No claim with this event id: the message is not ours to send.
    Missing,
    /// Finished already (a redelivered or replayed message).
    Finished(DeliveryStatus),
    /// Its ad account is throttled: try again after this long, no attempt used.
    Throttled(Duration),
    /// Another sender holds the lease: look again after this long.
    Leased(Duration),
    /// Ours to send, as this attempt.
    Ready(Box<DeliveryContext>, Lease),
}

/// A lease this sender took.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// The attempt number: the fencing token.
    pub attempt: i32,
    /// The previous attempt's request may have reached Meta (see
    /// `storage::deliveries::Taken`).
    pub uncertain: bool,
}

/// A delivery is looked up by its event id (unique: a purchase shares its
/// dialog and level with the customer's other purchases).
type Request = (EventId, oneshot::Sender<Result<Loaded, String>>);

/// How long leases last.
#[derive(Debug, Clone, Copy)]
pub struct Leasing {
    pub lease: Duration,
    /// Extra wait before taking over an event whose request may have left
    /// (`meta.uncertain_grace`).
    pub uncertain_grace: Duration,
}

#[derive(Clone)]
pub struct Loader {
    tx: mpsc::Sender<Request>,
}

/// Throttling is per ad account; without one, per token (`token`: the
/// opened `ctx.access_token`).
pub fn throttle_key(ctx: &DeliveryContext, token: Option<&str>) -> Option<ThrottleKey> {
    use sha2::{Digest, Sha256};
    let token = token.map(str::trim).filter(|t| !t.is_empty())?;
    Some(match ctx.ad_account_id {
        Some(id) => ThrottleKey::AdAccount(id),
        None => {
            let mut prefix = [0u8; 8];
            prefix.copy_from_slice(&Sha256::digest(token.as_bytes())[..8]);
            ThrottleKey::Token(prefix)
        }
    })
}

impl Loader {
    pub fn start(store: Store, leasing: Leasing, throttled: Throttled) -> Loader {
        let (tx, rx) = mpsc::channel(MAX_GATHER * 4);
        tokio::spawn(gather(rx, store, leasing, throttled));
        Loader { tx }
    }

    pub async fn load(&self, event_id: &EventId) -> anyhow::Result<Loaded> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((event_id.clone(), reply))
            .await
            .map_err(|_| anyhow::anyhow!("the loader stopped"))?;
        answer.await?.map_err(|e| anyhow::anyhow!(e))
    }
}

async fn gather(
    mut rx: mpsc::Receiver<Request>,
    store: Store,
    leasing: Leasing,
    throttled: Throttled,
) {
    while let Some(first) = rx.recv().await {
        let mut round = vec![first];
        let window = tokio::time::sleep(GATHER_WINDOW);
        tokio::pin!(window);
        while round.len() < MAX_GATHER {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(r) => round.push(r),
                    None => break,
                },
                _ = &mut window => break,
            }
        }
        let (store, throttled) = (store.clone(), throttled.clone());
        tokio::spawn(async move {
            match serve(&store, leasing, &throttled, &round).await {
                Ok(mut loaded) => {
                    for (_, reply) in round {
                        let _ = reply.send(Ok(loaded.pop_front().unwrap_or(Loaded::Missing)));
                    }
                }
                Err(e) => {
                    let msg = format!("{e:#}");
                    for (_, reply) in round {
                        let _ = reply.send(Err(msg.clone()));
                    }
                }
            }
        });
    }
}

async fn serve(
    store: &Store,
    leasing: Leasing,
    throttled: &Throttled,
    round: &[Request],
) -> anyhow::Result<std::collections::VecDeque<Loaded>> {
    let mut conn = store.pool().get().await?;
    let keys: Vec<EventId> = round.iter().map(|(k, _)| k.clone()).collect();
    let contexts = storage::deliveries::delivery_contexts(&mut conn, &keys).await?;
    let mut by_key: HashMap<EventId, DeliveryContext> = contexts
        .into_iter()
        .map(|c| (c.event_id.clone(), c))
        .collect();
    let now = Instant::now();
    let throttled_until = |ctx: &DeliveryContext| {
        let token = ctx
            .access_token
            .open(store.keys(), storage::secrets::AD_ACCESS_TOKEN)
            .ok()
            .flatten();
        let key = throttle_key(
            ctx,
            token.as_ref().map(secrecy::ExposeSecret::expose_secret),
        )?;
        let until = *throttled.lock().ok()?.get(&key)?;
        until.checked_duration_since(now)
    };
    // Each pending delivery's throttle wait, its token opened once.
    let waits: HashMap<i64, Option<Duration>> = by_key
        .values()
        .filter(|c| c.status == DeliveryStatus::Pending)
        .map(|c| (c.delivery_id, throttled_until(c)))
        .collect();
    let throttled_for = |c: &DeliveryContext| waits.get(&c.delivery_id).copied().flatten();
    let mut to_lease = Vec::new();
    for (k, _) in round {
        if let Some(c) = by_key.get(k)
            && c.status == DeliveryStatus::Pending
            && throttled_for(c).is_none()
        {
            to_lease.push(c.delivery_id);
        }
    }
    to_lease.sort_unstable();
    to_lease.dedup();
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(60);
    let leased: HashMap<i64, Lease> = storage::deliveries::lease_many(
        &mut conn,
        &to_lease,
        secs(leasing.lease),
        secs(leasing.uncertain_grace),
    )
    .await?
    .into_iter()
    .map(|t| {
        let lease = Lease {
            attempt: t.attempt,
            uncertain: t.uncertain,
        };
        (t.delivery_id, lease)
    })
    .collect();
    let mut out = std::collections::VecDeque::with_capacity(round.len());
    for (key, _) in round {
        let loaded = match by_key.get(key) {
            None => Loaded::Missing,
            Some(c) if c.status != DeliveryStatus::Pending => Loaded::Finished(c.status),
            Some(c) => match (throttled_for(c), leased.get(&c.delivery_id)) {
                (Some(wait), _) => Loaded::Throttled(wait),
                (None, Some(lease)) => match by_key.remove(key) {
                    Some(ctx) => Loaded::Ready(Box::new(ctx), *lease),
                    None => Loaded::Missing,
                },
                (None, None) => {
                    // A lease runs out at `lease_until`; an uncertain one
                    // (its request left) a grace later.
                    let grace = if c.sending_at.is_some() {
                        leasing.uncertain_grace
                    } else {
                        Duration::ZERO
                    };
                    let wait = c
                        .lease_until
                        .map(|t| t + chrono::Duration::from_std(grace).unwrap_or_default())
                        .and_then(|t| (t - Utc::now()).to_std().ok())
                        .unwrap_or_default();
                    Loaded::Leased(wait + Duration::from_secs(1))
                }
            },
        };
        out.push_back(loaded);
    }
    Ok(out)
}
