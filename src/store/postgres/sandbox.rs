//! The sandbox services' records in PostgreSQL (`sagaflow.sandbox`), for the
//! sandbox's ledgers. A service's transaction takes its row of
//! `sandbox_locks` FOR UPDATE first, so the services' invariants (never
//! overbooked, one seat each) hold across every worker of the database, as a
//! process's lock keeps them in one. It commits asynchronously: the WAL is
//! flushed in order, so the effect is on disk no later than the synchronous
//! group commit that journals the step that made it.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::pool::{Exclusive, Held};
use super::{block_on, pg_error, PgStore};
use crate::store::StoreError;

/// The sandbox's table, on a connection of its own.
pub(crate) struct SandboxTable {
    /// Keeps the connection's task alive.
    _runtime: Arc<super::PgRuntime>,
    client: Exclusive,
    shown: String,
}

/// Writes of a transaction: `None` removes.
pub(crate) type Writes = BTreeMap<String, Option<Vec<u8>>>;

impl PgStore {
    /// The sandbox services' table, on a new connection.
    pub(crate) fn sandbox(&self) -> Result<Arc<SandboxTable>, StoreError> {
        Ok(Arc::new(SandboxTable {
            _runtime: self.runtime.clone(),
            client: self.connect_more(),
            shown: self.shown.clone(),
        }))
    }
}

/// A service's transaction: its lock held until commit (or drop: rolled back).
pub(crate) struct SandboxTx<'a> {
    client: Held<'a>,
    service: String,
    table: &'a SandboxTable,
    open: bool,
}

impl SandboxTable {
    fn lock(&self) -> Result<Held<'_>, StoreError> {
        block_on(self.client.lock())
    }

    fn error(&self, what: &str, e: tokio_postgres::Error) -> StoreError {
        pg_error(&self.shown, what, e)
    }

    /// Begins a transaction of `service`, alone on it across every worker.
    pub(crate) fn begin(&self, service: &str) -> Result<SandboxTx<'_>, StoreError> {
        let begin = || async {
            let mut client = self.client.lock().await?;
            let begun = client.batch_execute("BEGIN; SET LOCAL synchronous_commit = off").await;
            let begun = begun.map_err(|e| self.error("cannot begin a sandbox transaction", e));
            begun.inspect_err(|e| client.failed(e)).map(|()| client)
        };
        // Once more on a new connection if the database ended this one (a restart).
        let client = block_on(super::again_if_lost(begin))?;
        let tx = SandboxTx { client, service: service.to_owned(), table: self, open: true };
        let locked = block_on(tx.client.execute(
            "INSERT INTO sagaflow.sandbox_locks (service) VALUES ($1) ON CONFLICT (service) DO UPDATE SET service = EXCLUDED.service",
            &[&tx.service],
        ));
        locked.map_err(|e| self.error("cannot lock a sandbox service", e))?;
        Ok(tx)
    }

    /// Every record of `service` whose key starts with `prefix`, by key.
    pub(crate) fn scan(&self, service: &str, prefix: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let client = self.lock()?;
        let pattern = format!("{}%", prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
        let rows = block_on(client.query(
            "SELECT value::text FROM sagaflow.sandbox WHERE service = $1 AND key LIKE $2 ORDER BY key",
            &[&service, &pattern],
        ))
        .map_err(|e| self.error("cannot read the sandbox", e))?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0).into_bytes()).collect())
    }

    pub(crate) fn is_empty(&self, service: &str) -> Result<bool, StoreError> {
        let client = self.lock()?;
        let row = block_on(client.query_opt("SELECT 1 FROM sagaflow.sandbox WHERE service = $1 LIMIT 1", &[&service]))
            .map_err(|e| self.error("cannot read the sandbox", e))?;
        Ok(row.is_none())
    }

    pub(crate) fn clear(&self, service: &str) -> Result<(), StoreError> {
        let client = self.lock()?;
        block_on(client.execute("DELETE FROM sagaflow.sandbox WHERE service = $1", &[&service]))
            .map(drop)
            .map_err(|e| self.error("cannot clear the sandbox", e))
    }
}

impl SandboxTx<'_> {
    pub(crate) fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let row = block_on(self.client.query_opt(
            "SELECT value::text FROM sagaflow.sandbox WHERE service = $1 AND key = $2",
            &[&self.service, &key],
        ))
        .map_err(|e| self.table.error("cannot read the sandbox", e))?;
        Ok(row.map(|r| r.get::<_, String>(0).into_bytes()))
    }

    /// Writes everything the transaction wrote, and commits.
    pub(crate) fn commit(mut self, writes: &Writes) -> Result<(), StoreError> {
        let (mut keys, mut values, mut gone) = (Vec::new(), Vec::new(), Vec::new());
        for (key, value) in writes {
            match value {
                Some(v) => {
                    keys.push(key.clone());
                    values.push(String::from_utf8_lossy(v).into_owned());
                }
                None => gone.push(key.clone()),
            }
        }
        let written = block_on(async {
            self.client
                .execute(
                    "INSERT INTO sagaflow.sandbox (service, key, value)
                     SELECT $1, k, v::json FROM unnest($2::text[], $3::text[]) AS t(k, v)
                     ON CONFLICT (service, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&self.service, &keys, &values],
                )
                .await?;
            self.client
                .execute("DELETE FROM sagaflow.sandbox WHERE service = $1 AND key = ANY($2)", &[&self.service, &gone])
                .await?;
            self.client.batch_execute("COMMIT").await
        });
        // Failed: dropped still open, it is rolled back (an aborted transaction must not stay on the connection).
        self.open = written.is_err();
        written.map_err(|e| self.table.error("cannot write the sandbox", e))
    }
}

impl Drop for SandboxTx<'_> {
    /// A transaction not committed (its body failed) leaves nothing.
    fn drop(&mut self) {
        if self.open {
            let _ = block_on(self.client.batch_execute("ROLLBACK"));
        }
    }
}
