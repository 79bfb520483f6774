//! A sandbox service's state: one sled tree, changed only through [`Ledger`]'s
//! transactions, with each change recorded under its idempotency key, so a
//! repeated call (a retry after a crash) returns the first call's result and
//! changes nothing.
//!
//! A transaction holds the tree's lock (one per tree in the process; sled's
//! directory lock keeps other processes out), reads through its own pending
//! writes, and ends in one atomic sled batch: all of its writes or none. That
//! is serialisable, and cheaper than sled's optimistic transactions, which
//! retry without end on a hot key (every run reserving the same product).
//!
//! Keys: `<kind>/<id>` records (JSON), `seq/<kind>` id counters,
//! `idem/<operation>/<key>` results of calls already made.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use crate::services::{ActionError, Ctx};

/// What a transaction body returns: a value, or an error that aborts it.
pub type TxResult<T> = Result<T, ActionError>;

/// Aborts the transaction with a business error; nothing it wrote stays.
pub fn abort<T>(e: ActionError) -> TxResult<T> {
    Err(e)
}

fn storage(e: impl std::fmt::Display) -> ActionError {
    ActionError::new("unavailable", format!("the sandbox store failed: {e}"))
}

/// The view of a tree inside a transaction: the tree plus its pending writes.
pub struct Tx<'a> {
    tree: &'a sled::Tree,
    pending: std::cell::RefCell<BTreeMap<String, Option<Vec<u8>>>>,
}

impl Tx<'_> {
    fn raw(&self, key: &str) -> TxResult<Option<Vec<u8>>> {
        if let Some(pending) = self.pending.borrow().get(key) {
            return Ok(pending.clone());
        }
        Ok(self.tree.get(key).map_err(storage)?.map(|v| v.to_vec()))
    }

    pub fn get<T: DeserializeOwned>(&self, key: &str) -> TxResult<Option<T>> {
        match self.raw(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(storage),
        }
    }

    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> TxResult<()> {
        let bytes = serde_json::to_vec(value).map_err(storage)?;
        self.pending.borrow_mut().insert(key.to_owned(), Some(bytes));
        Ok(())
    }

    pub fn remove(&self, key: &str) -> TxResult<()> {
        self.pending.borrow_mut().insert(key.to_owned(), None);
        Ok(())
    }

    /// The next free id of a kind: `<prefix>-<n>`, n from 1, skipping ids
    /// the seed took.
    pub fn next_id(&self, kind: &str, prefix: &str) -> TxResult<String> {
        let key = format!("seq/{kind}");
        let mut n = self.get::<u64>(&key)?.unwrap_or(0);
        loop {
            n += 1;
            let id = format!("{prefix}-{n}");
            if self.raw(&format!("{kind}/{id}"))?.is_none() {
                self.put(&key, &n)?;
                return Ok(id);
            }
        }
    }
}

/// One lock per tree name in the process.
fn lock_of(name: &[u8]) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<Vec<u8>, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    locks.entry(name.to_vec()).or_default().clone()
}

/// One sandbox service's tree.
#[derive(Clone)]
pub struct Ledger {
    tree: sled::Tree,
    lock: Arc<Mutex<()>>,
}

impl Ledger {
    pub fn new(tree: sled::Tree) -> Ledger {
        let lock = lock_of(&tree.name());
        Ledger { tree, lock }
    }

    /// Runs `body` once per (operation, idempotency key): a repeat gets the
    /// first success back and changes nothing. A failure is not remembered, so a
    /// retry tries again (stock may have come back).
    pub fn once<T>(&self, operation: &str, ctx: &Ctx, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T, ActionError>
    where
        T: Serialize + DeserializeOwned,
    {
        let key = format!("idem/{operation}/{}", ctx.idempotency_key);
        self.transact(|tx| {
            if let Some(done) = tx.get::<T>(&key)? {
                return Ok(done);
            }
            let result = body(tx)?;
            tx.put(&key, &result)?;
            Ok(result)
        })
    }

    /// Runs `body` alone on the tree: all of its writes, in one atomic batch, or none.
    pub fn transact<T>(&self, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T, ActionError> {
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let tx = Tx { tree: &self.tree, pending: Default::default() };
        let result = body(&tx)?;
        let pending = tx.pending.into_inner();
        if !pending.is_empty() {
            let mut batch = sled::Batch::default();
            for (key, value) in pending {
                match value {
                    Some(v) => batch.insert(key.as_bytes(), v),
                    None => batch.remove(key.as_bytes()),
                }
            }
            self.tree.apply_batch(batch).map_err(storage)?;
        }
        Ok(result)
    }

    /// Every record of a kind, by id order.
    pub fn all(&self, kind: &str) -> Result<Vec<Json>, ActionError> {
        let prefix = format!("{kind}/");
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(prefix.as_bytes()) {
            let (_, value) = item.map_err(storage)?;
            out.push(serde_json::from_slice(&value).map_err(storage)?);
        }
        Ok(out)
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    pub fn clear(&self) -> Result<(), ActionError> {
        let _held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.tree.clear().map_err(storage)
    }
}
