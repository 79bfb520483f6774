//! A sandbox service's state: one sled tree, changed only through [`Ledger`]'s
//! transactions, with each change recorded under its idempotency key, so a
//! repeated call (a retry after a crash) returns the first call's result and
//! changes nothing.
//!
//! A transaction holds the tree's lock, reads through its own pending writes
//! and the tree's buffered ones, and ends all or nothing. A buffered ledger
//! keeps its writes in memory until [`Ledger::flush`], which the run store calls
//! just before each group commit: a service's effect reaches the disk in the
//! same flush as, or before, the step that caused it, and a crash before that
//! flush loses both (the step runs again, with the same key). An unbuffered
//! ledger writes each transaction as one atomic sled batch at once.
//!
//! In PostgreSQL (a store shared by workers) a ledger is a service's rows of
//! `sagaflow.sandbox`; its transaction is a database transaction that holds the
//! service's lock row, so the lock is the database's, across every worker.
//!
//! Keys: `<kind>/<id>` records (JSON), `seq/<kind>` id counters,
//! `idem/<operation>/<key>` results of calls already made.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use crate::services::{ActionError, Ctx};
use crate::store::postgres::sandbox::{SandboxTable, SandboxTx};

/// What a transaction body returns: a value, or an error that aborts it.
pub(crate) type TxResult<T> = Result<T, ActionError>;

/// Aborts the transaction with a business error; nothing it wrote stays.
pub(crate) fn abort<T>(e: ActionError) -> TxResult<T> {
    Err(e)
}

fn storage(e: impl std::fmt::Display) -> ActionError {
    ActionError::new("unavailable", format!("the sandbox store failed: {e}"))
}

/// Writes not yet in the store: `None` removes.
type Writes = BTreeMap<String, Option<Vec<u8>>>;

/// What a transaction reads beneath its own writes.
enum Source<'a> {
    Sled(&'a sled::Tree),
    Postgres(&'a SandboxTx<'a>),
}

/// The view of a ledger inside a transaction: its records, the writes buffered
/// for them, and this transaction's own.
pub(crate) struct Tx<'a> {
    source: Source<'a>,
    buffered: &'a Writes,
    pending: std::cell::RefCell<Writes>,
}

impl Tx<'_> {
    fn raw(&self, key: &str) -> TxResult<Option<Vec<u8>>> {
        if let Some(pending) = self.pending.borrow().get(key).or_else(|| self.buffered.get(key)) {
            return Ok(pending.clone());
        }
        match self.source {
            Source::Sled(tree) => Ok(tree.get(key).map_err(storage)?.map(|v| v.to_vec())),
            Source::Postgres(tx) => tx.get(key).map_err(storage),
        }
    }

    pub(crate) fn get<T: DeserializeOwned>(&self, key: &str) -> TxResult<Option<T>> {
        match self.raw(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(storage),
        }
    }

    /// Writes a record; a known secret's value in it is kept as `***` (the
    /// sandbox's trees live in the data directory, which never holds one).
    pub(crate) fn put<T: Serialize>(&self, key: &str, value: &T) -> TxResult<()> {
        let bytes = if crate::base::secrets::any() {
            let mut json = serde_json::to_value(value).map_err(storage)?;
            crate::base::secrets::mask_json(&mut json);
            serde_json::to_vec(&json).map_err(storage)?
        } else {
            serde_json::to_vec(value).map_err(storage)?
        };
        self.pending.borrow_mut().insert(key.to_owned(), Some(bytes));
        Ok(())
    }

    pub(crate) fn remove(&self, key: &str) -> TxResult<()> {
        self.pending.borrow_mut().insert(key.to_owned(), None);
        Ok(())
    }

    /// The record at `key`, or `not_found` naming `what` and `id`.
    pub(crate) fn require<T: DeserializeOwned>(&self, key: &str, what: &str, id: &str) -> TxResult<T> {
        match self.get::<T>(key)? {
            Some(record) => Ok(record),
            None => abort(crate::services::errors::not_found(what, id)),
        }
    }

    /// The id an undo names: the one given, or the one in the result of the
    /// forward call made with the idempotency key `key` (by any of
    /// `operations`), found even when that call's answer was lost. `None`:
    /// that call made nothing (it failed, or never came), so there is nothing
    /// to undo. Neither given: `invalid_input`. DSL.md A1.
    pub(crate) fn undo_target<T: DeserializeOwned>(
        &self,
        id: Option<&str>,
        key: Option<&str>,
        operations: &[&str],
        id_of: impl Fn(T) -> String,
    ) -> TxResult<Option<String>> {
        if let Some(id) = id {
            return Ok(Some(id.to_owned()));
        }
        let Some(key) = key else {
            let message = "name what to undo: its id, or `key`, the idempotency key of the call that made it \
                           (`{{step.key}}` in a compensate)";
            return abort(ActionError::new("invalid_input", message));
        };
        for operation in operations {
            if let Some(done) = self.get::<T>(&done_key(operation, key))? {
                return Ok(Some(id_of(done)));
            }
        }
        Ok(None)
    }

    /// Whether `key` names a forward call by `operation` that made nothing (it
    /// failed, or never came): an undo by that key then has nothing to do.
    /// No key: false (the undo names its effect another way).
    pub(crate) fn made_nothing(&self, operation: &str, key: Option<&str>) -> TxResult<bool> {
        match key {
            Some(key) => Ok(self.raw(&done_key(operation, key))?.is_none()),
            None => Ok(false),
        }
    }

    /// The next number of a kind's counter, from 1.
    pub(crate) fn next_number(&self, kind: &str) -> TxResult<u64> {
        let key = format!("seq/{kind}");
        let n = self.get::<u64>(&key)?.unwrap_or(0) + 1;
        self.put(&key, &n)?;
        Ok(n)
    }

    /// The next free id of a kind: `<prefix>-<n>`, n from 1, skipping ids
    /// the seed took.
    pub(crate) fn next_id(&self, kind: &str, prefix: &str) -> TxResult<String> {
        loop {
            let id = format!("{prefix}-{}", self.next_number(kind)?);
            if self.raw(&format!("{kind}/{id}"))?.is_none() {
                return Ok(id);
            }
        }
    }
}

/// Where the result of the call by `operation` with idempotency key `key` is kept.
fn done_key(operation: &str, key: &str) -> String {
    format!("idem/{operation}/{key}")
}

/// Where a ledger's records are.
#[derive(Clone)]
enum Place {
    /// A sled tree; `buffered`: writes wait for [`Ledger::flush`].
    Sled { tree: sled::Tree, buffered: bool },
    /// A service's rows in PostgreSQL.
    Postgres { table: Arc<SandboxTable>, service: &'static str },
}

/// One sandbox service's records. Clones share the lock and the buffer.
#[derive(Clone)]
pub(crate) struct Ledger {
    place: Place,
    /// The writes not yet in sled; its lock serialises the transactions.
    buffer: Arc<Mutex<Writes>>,
}

fn apply(tree: &sled::Tree, writes: &Writes) -> Result<(), ActionError> {
    if writes.is_empty() {
        return Ok(());
    }
    let mut batch = sled::Batch::default();
    for (key, value) in writes {
        match value {
            Some(v) => batch.insert(key.as_bytes(), v.as_slice()),
            None => batch.remove(key.as_bytes()),
        }
    }
    tree.apply_batch(batch).map_err(storage)
}

impl Ledger {
    /// `buffered`: keep writes until [`Ledger::flush`] (when a run store flushes them).
    pub(crate) fn new(tree: sled::Tree, buffered: bool) -> Ledger {
        Ledger { place: Place::Sled { tree, buffered }, buffer: Arc::default() }
    }

    /// A service's ledger in PostgreSQL's sandbox table.
    pub(crate) fn postgres(table: Arc<SandboxTable>, service: &'static str) -> Ledger {
        Ledger { place: Place::Postgres { table, service }, buffer: Arc::default() }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Writes> {
        self.buffer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the buffered writes to sled, as one atomic batch; on a failure
    /// they stay buffered for the next try. (PostgreSQL's ledgers buffer nothing.)
    pub(crate) fn flush(&self) -> Result<(), ActionError> {
        let Place::Sled { tree, .. } = &self.place else { return Ok(()) };
        let mut buffer = self.buffer();
        apply(tree, &buffer)?;
        buffer.clear();
        Ok(())
    }

    /// Runs `body` once per (operation, idempotency key): a repeat gets the
    /// first success back and changes nothing. A failure is not remembered, so a
    /// retry tries again (stock may have come back).
    pub(crate) fn once<T>(
        &self,
        operation: &str,
        ctx: &Ctx,
        body: impl Fn(&Tx) -> TxResult<T>,
    ) -> Result<T, ActionError>
    where
        T: Serialize + DeserializeOwned,
    {
        let key = done_key(operation, &ctx.idempotency_key);
        self.transact(|tx| {
            if let Some(done) = tx.get::<T>(&key)? {
                return Ok(done);
            }
            let result = body(tx)?;
            tx.put(&key, &result)?;
            Ok(result)
        })
    }

    /// Runs `body` alone on the ledger: all of its writes or none.
    pub(crate) fn transact<T>(&self, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T, ActionError> {
        let mut buffer = self.buffer();
        match &self.place {
            Place::Sled { tree, buffered } => {
                let tx = Tx { source: Source::Sled(tree), buffered: &buffer, pending: Default::default() };
                let result = body(&tx)?;
                let pending = tx.pending.into_inner();
                if *buffered {
                    buffer.extend(pending);
                } else {
                    apply(tree, &pending)?;
                }
                Ok(result)
            }
            Place::Postgres { table, service } => {
                let held = table.begin(service).map_err(storage)?;
                let empty = Writes::new();
                let tx = Tx { source: Source::Postgres(&held), buffered: &empty, pending: Default::default() };
                // A failed body drops `held`: its transaction rolls back.
                let result = body(&tx)?;
                let pending = tx.pending.into_inner();
                held.commit(&pending).map_err(storage)?;
                Ok(result)
            }
        }
    }

    /// Every record of a kind, by id order.
    pub(crate) fn all(&self, kind: &str) -> Result<Vec<Json>, ActionError> {
        self.flush()?;
        let prefix = format!("{kind}/");
        let values: Vec<Vec<u8>> = match &self.place {
            Place::Sled { tree, .. } => tree
                .scan_prefix(prefix.as_bytes())
                .map(|item| item.map(|(_, v)| v.to_vec()).map_err(storage))
                .collect::<Result<_, _>>()?,
            Place::Postgres { table, service } => table.scan(service, &prefix).map_err(storage)?,
        };
        values.iter().map(|v| serde_json::from_slice(v).map_err(storage)).collect()
    }

    pub(crate) fn is_empty(&self) -> Result<bool, ActionError> {
        match &self.place {
            Place::Sled { tree, .. } => Ok(tree.is_empty() && self.buffer().is_empty()),
            Place::Postgres { table, service } => table.is_empty(service).map_err(storage),
        }
    }

    pub(crate) fn clear(&self) -> Result<(), ActionError> {
        let mut buffer = self.buffer();
        buffer.clear();
        match &self.place {
            Place::Sled { tree, .. } => tree.clear().map_err(storage),
            Place::Postgres { table, service } => table.clear(service).map_err(storage),
        }
    }
}
