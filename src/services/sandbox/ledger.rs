//! A sandbox service's state: one sled tree, changed only in transactions, with
//! each change recorded under its idempotency key, so a repeated call (a retry
//! after a crash) returns the first call's result and changes nothing.
//!
//! Keys: `<kind>/<id>` records (JSON), `seq/<kind>` id counters,
//! `idem/<operation>/<key>` results of calls already made.

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::services::{ActionError, Ctx};

/// What a transaction body returns: a value, or an error that aborts it.
pub type TxResult<T> = Result<T, ConflictableTransactionError<ActionError>>;

/// Aborts the transaction with a business error; nothing it wrote stays.
pub fn abort<T>(e: ActionError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(e))
}

/// The view of a tree inside a transaction.
pub struct Tx<'a>(&'a TransactionalTree);

fn storage(e: impl std::fmt::Display) -> ActionError {
    ActionError::new("unavailable", format!("the sandbox store failed: {e}"))
}

impl Tx<'_> {
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> TxResult<Option<T>> {
        match self.0.get(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).or_else(|e| abort(storage(e))),
        }
    }

    pub fn put<T: Serialize>(&self, key: &str, value: &T) -> TxResult<()> {
        let bytes = serde_json::to_vec(value).or_else(|e| abort(storage(e)))?;
        self.0.insert(key, bytes)?;
        Ok(())
    }

    pub fn remove(&self, key: &str) -> TxResult<()> {
        self.0.remove(key)?;
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
            if self.0.get(format!("{kind}/{id}"))?.is_none() {
                self.put(&key, &n)?;
                return Ok(id);
            }
        }
    }
}

/// One sandbox service's tree.
#[derive(Clone)]
pub struct Ledger {
    tree: sled::Tree,
}

impl Ledger {
    pub fn new(tree: sled::Tree) -> Ledger {
        Ledger { tree }
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

    /// Runs `body` in a transaction: all of its writes or none.
    pub fn transact<T>(&self, body: impl Fn(&Tx) -> TxResult<T>) -> Result<T, ActionError> {
        use sled::transaction::TransactionError;
        self.tree.transaction(|t| body(&Tx(t))).map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => storage(e),
        })
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
        self.tree.clear().map_err(storage)
    }
}
