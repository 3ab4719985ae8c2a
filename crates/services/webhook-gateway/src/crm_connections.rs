//! The CRM connection a webhook names, found without letting a flood of
//! made-up ids slow real webhooks down:
//! - a known connection is read from the database once per `FRESH` (a
//!   changed secret applies within that time) and served from memory between;
//! - an id the database does not know is remembered as unknown for
//!   `UNKNOWN_FOR`, in a bounded map, so repeating it costs nothing;
//! - each id has at most one read in flight; everyone asking meanwhile waits
//!   for that one;
//! - reads of ids not known to exist share `MISS_READS` of the pool's
//!   connections, so however many arrive, the change writers and the
//!   refreshes of known connections keep theirs. A read that waits longer
//!   than `MISS_WAIT` for its turn is answered 503 (the CRM retries).

use domain::ids::ConnectionId;
use futures_util::{FutureExt, future::Shared};
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use storage::crm::Connection;
use tokio::sync::Semaphore;

const FRESH: Duration = Duration::from_secs(10);
const UNKNOWN_FOR: Duration = Duration::from_secs(5);
/// Ids remembered at most (known ones always fit: they are few).
const MAX_REMEMBERED: usize = 10_000;
const MISS_READS: usize = 2;
const MISS_WAIT: Duration = Duration::from_secs(2);

type Read = Shared<Pin<Box<dyn Future<Output = Result<Option<Connection>, String>> + Send>>>;

pub(crate) struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    store: storage::Store,
    main: runtime::MainRuntime,
    /// What each id was found to be, and when.
    seen: Mutex<HashMap<ConnectionId, (Option<Connection>, Instant)>>,
    reading: Mutex<HashMap<ConnectionId, Read>>,
    misses: Semaphore,
}

impl Connections {
    pub fn new(store: storage::Store, main: runtime::MainRuntime) -> Connections {
        Connections {
            inner: Arc::new(Inner {
                store,
                main,
                seen: Mutex::new(HashMap::new()),
                reading: Mutex::new(HashMap::new()),
                misses: Semaphore::new(MISS_READS),
            }),
        }
    }

    /// The connection `id`, or `None` when there is no such connection.
    pub async fn get(&self, id: ConnectionId) -> Result<Option<Connection>, String> {
        let known = match self.inner.remembered(id) {
            Remembered::Fresh(found) => return Ok(found),
            Remembered::Stale => true,
            Remembered::Nothing => false,
        };
        let read = {
            let mut reading = self.inner.reading.lock().map_err(|e| e.to_string())?;
            reading
                .entry(id)
                .or_insert_with(|| {
                    let inner = self.inner.clone();
                    let read: Pin<Box<dyn Future<Output = _> + Send>> =
                        Box::pin(async move { inner.read(id, known).await });
                    read.shared()
                })
                .clone()
        };
        read.await
    }
}

enum Remembered {
    Fresh(Option<Connection>),
    Stale,
    Nothing,
}

impl Inner {
    fn remembered(&self, id: ConnectionId) -> Remembered {
        let Ok(seen) = self.seen.lock() else {
            return Remembered::Nothing;
        };
        match seen.get(&id) {
            Some((found @ Some(_), at)) if at.elapsed() < FRESH => Remembered::Fresh(found.clone()),
            Some((None, at)) if at.elapsed() < UNKNOWN_FOR => Remembered::Fresh(None),
            Some((Some(_), _)) => Remembered::Stale,
            _ => Remembered::Nothing,
        }
    }

    /// The one read of `id` in flight; whoever asks meanwhile shares it.
    async fn read(
        self: Arc<Self>,
        id: ConnectionId,
        known: bool,
    ) -> Result<Option<Connection>, String> {
        let result = self.clone().read_from_database(id, known).await;
        if let Ok(found) = &result {
            self.remember(id, found.clone());
        }
        if let Ok(mut reading) = self.reading.lock() {
            reading.remove(&id);
        }
        result
    }

    async fn read_from_database(
        self: Arc<Self>,
        id: ConnectionId,
        known: bool,
    ) -> Result<Option<Connection>, String> {
        let _turn = if known {
            None
        } else {
            let permit = tokio::time::timeout(MISS_WAIT, self.misses.acquire())
                .await
                .map_err(|_| "too many lookups of unknown CRM connections".to_owned())?
                .map_err(|e| e.to_string())?;
            Some(permit)
        };
        let store = self.store.clone();
        let read = async move {
            let mut conn = store.pool().get().await.map_err(|e| e.to_string())?;
            storage::crm::connection(&mut conn, store.keys(), id)
                .await
                .map_err(|e| e.to_string())
        };
        self.main.run(read).await.map_err(|e| e.to_string())?
    }

    fn remember(&self, id: ConnectionId, found: Option<Connection>) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= MAX_REMEMBERED && !seen.contains_key(&id) {
            seen.retain(|_, (c, at)| match c {
                Some(_) => at.elapsed() < FRESH,
                None => at.elapsed() < UNKNOWN_FOR,
            });
            if seen.len() >= MAX_REMEMBERED {
                // Still full of fresh unknown ids (a flood): forget those,
                // never a known connection.
                seen.retain(|_, (c, _)| c.is_some());
            }
        }
        seen.insert(id, (found, Instant::now()));
    }
}
