//! Storing CRM changes fast when a CRM fires many webhooks at once (a mass
//! update in amoCRM posts one per lead, all together): requests hand their
//! changes to a few writer tasks, and each writer stores whatever has
//! gathered meanwhile in one transaction — one multi-row insert of the
//! changes, one of their `crm.changed` outbox rows, one commit — then
//! answers every request in it. Nothing is answered before its commit.

use bus::messages::{BusMessage, CrmChanged, encode};
use diesel_async::AsyncConnection;
use domain::ids::ConnectionId;
use serde_json::Value;
use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};
use storage::crm::NewChange;
use tokio::sync::{Notify, mpsc, oneshot};

/// Writers storing batches side by side.
const WRITERS: usize = 4;
/// The outbox relay is woken once webhooks have been quiet this long (at
/// most `RELAY_MAX_DEFER` after the first commit): publishing a mass
/// update's messages would otherwise take the CPU its answers need. A CRM
/// change is read back at the CRM's pace anyway; nothing waits on this.
const RELAY_QUIET: Duration = Duration::from_millis(50);
const RELAY_MAX_DEFER: Duration = Duration::from_millis(300);
/// Changes one transaction stores at most.
const MAX_BATCH: usize = 500;

/// A change as the request parsed it.
pub(crate) struct Change {
    pub entity: String,
    pub action: String,
    pub entity_id: String,
    /// The same for every delivery of the change.
    pub key: String,
    pub change: Value,
}

struct Job {
    connection_id: ConnectionId,
    changes: Vec<Change>,
    /// How many of the job's changes were new, or why storing failed.
    reply: oneshot::Sender<Result<usize, String>>,
}

pub(crate) struct ChangeStore {
    jobs: mpsc::Sender<Job>,
}

impl ChangeStore {
    /// Starts the writers on the current (the service's main) runtime.
    pub fn start(pool: storage::DbPool, outbox_wake: Arc<Notify>) -> ChangeStore {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let committed = Arc::new(Notify::new());
        tokio::spawn(wake_relay_when_quiet(committed.clone(), outbox_wake));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(rx.clone(), pool.clone(), committed.clone()));
        }
        ChangeStore { jobs }
    }

    /// Stores the changes (each once per connection) with their queue
    /// messages; how many were new.
    pub async fn store(
        &self,
        connection_id: ConnectionId,
        changes: Vec<Change>,
    ) -> Result<usize, String> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                connection_id,
                changes,
                reply,
            })
            .await
            .map_err(|_| "the change store has stopped".to_owned())?;
        answer
            .await
            .map_err(|_| "the change store has stopped".to_owned())?
    }
}

async fn wake_relay_when_quiet(committed: Arc<Notify>, outbox_wake: Arc<Notify>) {
    loop {
        committed.notified().await;
        let first = Instant::now();
        while first.elapsed() < RELAY_MAX_DEFER
            && tokio::time::timeout(RELAY_QUIET, committed.notified())
                .await
                .is_ok()
        {}
        outbox_wake.notify_one();
    }
}

async fn write_batches(
    jobs: Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>,
    pool: storage::DbPool,
    outbox_wake: Arc<Notify>,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut rx = jobs.lock().await;
            let Some(first) = rx.recv().await else {
                return;
            };
            let mut n = first.changes.len();
            batch.push(first);
            while n < MAX_BATCH {
                let Ok(job) = rx.try_recv() else { break };
                n += job.changes.len();
                batch.push(job);
            }
        }
        match write(&pool, &batch).await {
            Ok(new) => answer(batch, new, &outbox_wake),
            // One job's changes may be what the database refused: each job
            // alone, so the others are not turned away with it.
            Err(_) if batch.len() > 1 => {
                for job in batch {
                    let one = [job];
                    match write(&pool, &one).await {
                        Ok(new) => answer(one, new, &outbox_wake),
                        Err(e) => refuse(one, &e),
                    }
                }
            }
            Err(e) => refuse(batch, &e),
        }
    }
}

fn answer(jobs: impl IntoIterator<Item = Job>, new: Vec<usize>, outbox_wake: &Notify) {
    if new.iter().any(|n| *n > 0) {
        outbox_wake.notify_one();
    }
    for (job, n) in jobs.into_iter().zip(new) {
        let _ = job.reply.send(Ok(n));
    }
}

fn refuse(jobs: impl IntoIterator<Item = Job>, e: &str) {
    tracing::warn!(error = %e, "could not store CRM changes");
    for job in jobs {
        let _ = job.reply.send(Err(e.to_owned()));
    }
}

/// One transaction for the batch; per job, how many of its changes were new.
async fn write(pool: &storage::DbPool, batch: &[Job]) -> Result<Vec<usize>, String> {
    let rows: Vec<(ConnectionId, NewChange<'_>)> = batch
        .iter()
        .flat_map(|job| {
            job.changes.iter().map(|c| {
                (
                    job.connection_id,
                    NewChange {
                        entity: &c.entity,
                        action: &c.action,
                        entity_id: &c.entity_id,
                        key: &c.key,
                        change: &c.change,
                    },
                )
            })
        })
        .collect();
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    let stored = conn
        .transaction::<_, storage::DbError, _>(async |c| {
            let stored = storage::crm::record_changes(c, &rows).await?;
            let messages: Vec<Value> = stored
                .iter()
                .map(|(change_id, _, _)| {
                    encode(&CrmChanged {
                        change_id: *change_id,
                    })
                })
                .collect();
            storage::outbox::enqueue_many(c, CrmChanged::ROUTING_KEY, &messages).await?;
            Ok(stored)
        })
        .await
        .map_err(|e| e.to_string())?;
    // A change is new for the first job that brought it.
    let mut new: HashSet<(ConnectionId, &str)> = stored
        .iter()
        .map(|(_, connection, key)| (*connection, key.as_str()))
        .collect();
    Ok(batch
        .iter()
        .map(|job| {
            job.changes
                .iter()
                .filter(|c| new.remove(&(job.connection_id, c.key.as_str())))
                .count()
        })
        .collect())
}
