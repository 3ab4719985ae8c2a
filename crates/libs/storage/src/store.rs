//! The database handle a process holds: the pool and the keys its stored
//! credentials are sealed with. Passed to whoever needs either; nothing is
//! looked up from process-wide state.

use crate::{DbPool, secrets::Keys};

#[derive(Clone)]
pub struct Store {
    pool: DbPool,
    keys: Keys,
}

impl Store {
    pub fn new(pool: DbPool, keys: Keys) -> Store {
        Store { pool, keys }
    }

    pub fn pool(&self) -> &DbPool {
        &self.pool
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }
}
