//! The PostgreSQL store: the same contract as sled, in a database several
//! workers share (`../shared/design/scale-out.md`).
//!
//! Tables mirror sled's prefixes (`runs`, `journal`, `definitions`, `events`,
//! `outbox`, `dead_letters`, `schedules`); payloads are `json` (kept as
//! written, key order included, so an export reads the same from either
//! store). Each process joins as a worker with a generation, and every group
//! commit is fenced by it: one transaction that first calls `sagaflow.fence`,
//! so a worker another has taken over writes nothing more.
//!
//! The store traits are synchronous; the connections live on a runtime of
//! this store's own (one thread), and a call waits for its answer with
//! [`block_on`], from any thread, inside a runtime or not. The engine's group
//! commit ([`WriteRuns::commit_turn`]) is awaited instead.

mod backup;
mod block;
mod ownership;
mod runs;
pub(crate) mod sandbox;
mod schema;

use std::sync::Arc;

use tokio_postgres::{Client, NoTls};

pub(crate) use block::block_on;
#[cfg(test)]
pub(crate) use ownership::LEASE;

use super::{StoreError, StoreErrorKind};

/// A worker's place in the database: its id and the generation it writes as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Worker {
    pub id: String,
    pub generation: i64,
}

pub(crate) struct PgStore {
    /// Where the connections' tasks run.
    runtime: Arc<PgRuntime>,
    /// Reads, pipelined on one connection.
    read: Client,
    /// Group commits, one transaction at a time.
    write: tokio::sync::Mutex<Client>,
    /// None: this process only reads (its commits are refused).
    worker: Option<Worker>,
    /// Its lease renewal found its generation taken over.
    fenced: Arc<std::sync::atomic::AtomicBool>,
    /// It left (its lease is no longer renewed).
    left: Arc<std::sync::atomic::AtomicBool>,
    url: String,
    /// The URL without its password, for messages.
    shown: String,
}

impl PgStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`), brings
    /// the schema up to date, and joins as worker `worker_id` with a new
    /// generation (none: it only reads, and joins nothing).
    pub(crate) fn open(url: &str, worker_id: Option<&str>) -> Result<PgStore, StoreError> {
        let shown = without_password(url);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sagaflow-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::other(format!("cannot start the PostgreSQL client: {e}")))?;
        let runtime = Arc::new(PgRuntime(Some(runtime)));
        let connect = |runtime: &Arc<PgRuntime>| {
            let (url, named) = (url.to_owned(), shown.clone());
            let task = runtime.spawn(async move { connect(&url, &named).await });
            block_on(task).map_err(|e| StoreError::other(format!("{shown}: {e}")))?
        };
        let mut write = connect(&runtime)?;
        let read = connect(&runtime)?;
        let found =
            block_on(schema::migrate(&mut write)).map_err(|e| pg_error(&shown, "cannot set the schema up", e))?;
        if found > schema::VERSION {
            return Err(StoreError::other(format!(
                "{shown} holds a sagaflow schema of version {found}; this sagaflow knows up to {}: use a newer one",
                schema::VERSION
            )));
        }
        let worker = match worker_id {
            Some(id) => Some(block_on(join(&write, id)).map_err(|e| pg_error(&shown, "cannot join as a worker", e))?),
            None => None,
        };
        let (fenced, left) = (Arc::default(), Arc::default());
        if let Some(worker) = &worker {
            // The lease is renewed on a connection of its own, as long as the store lives.
            let lease = Arc::new(connect(&runtime)?);
            let (worker, fenced, left) = (worker.clone(), Arc::clone(&fenced), Arc::clone(&left));
            runtime.spawn(async move { ownership::keep_lease(lease, worker, fenced, left) });
        }
        Ok(PgStore {
            runtime,
            read,
            write: tokio::sync::Mutex::new(write),
            worker,
            fenced,
            left,
            url: url.to_owned(),
            shown,
        })
    }

    /// The worker this store writes as.
    #[cfg(test)]
    pub(crate) fn worker(&self) -> Option<&Worker> {
        self.worker.as_ref()
    }

    /// Sets the schema version the database says it has (tests of a newer schema).
    #[cfg(test)]
    pub(crate) async fn set_schema_version(&self, version: usize) -> Result<u64, tokio_postgres::Error> {
        let sql = "UPDATE sagaflow.meta SET value = $1 WHERE key = 'schema'";
        self.read.execute(sql, &[&version.to_string()]).await
    }

    /// One more connection to the same database, on this store's runtime.
    fn connect_more(&self) -> Result<Client, StoreError> {
        let (url, shown) = (self.url.clone(), self.shown.clone());
        let task = self.runtime.spawn(async move { connect(&url, &shown).await });
        block_on(task).map_err(|e| StoreError::other(format!("{}: {e}", self.shown)))?
    }

    /// Makes this worker silent, its lease run out now (tests of a worker that stopped).
    #[cfg(test)]
    pub(crate) async fn age_lease(&self) -> Result<u64, tokio_postgres::Error> {
        self.left.store(true, std::sync::atomic::Ordering::Relaxed);
        // A renewal already under way ends first (the next one sees `left` and stops).
        std::thread::sleep(ownership::LEASE / 3 + std::time::Duration::from_millis(300));
        let id = self.worker.as_ref().map(|w| w.id.clone()).unwrap_or_default();
        let sql = "UPDATE sagaflow.workers SET lease_until = now() - interval '1 second' WHERE worker_id = $1";
        self.read.execute(sql, &[&id]).await
    }

    /// An error of this store, named by its database.
    fn error(&self, what: &str, e: tokio_postgres::Error) -> StoreError {
        pg_error(&self.shown, what, e)
    }
}

impl Drop for PgStore {
    /// A worker leaves as its store goes: its runs are anyone's at once.
    fn drop(&mut self) {
        if self.worker.is_some() && !self.left.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = crate::store::Ownership::leave(self);
        }
    }
}

/// The runtime the connections' tasks run on. Its last holder may be dropped
/// anywhere, a runtime's worker thread included: it shuts down without
/// waiting (a runtime dropped the ordinary way there panics).
pub(crate) struct PgRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for PgRuntime {
    type Target = tokio::runtime::Runtime;

    fn deref(&self) -> &tokio::runtime::Runtime {
        // Some until dropped.
        self.0.as_ref().unwrap_or_else(|| unreachable!("the runtime is taken only when dropped"))
    }
}

impl Drop for PgRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

async fn connect(url: &str, shown: &str) -> Result<Client, StoreError> {
    let (client, connection) =
        tokio_postgres::connect(url, NoTls).await.map_err(|e| pg_error(shown, "cannot connect", e))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// Joins as `worker_id`: a new generation (the old one's runs are orphans to claim).
async fn join(client: &Client, worker_id: &str) -> Result<Worker, tokio_postgres::Error> {
    let row = client
        .query_one(
            "INSERT INTO sagaflow.workers (worker_id, generation, state, lease_until)
             VALUES ($1, 1, 'live', now() + make_interval(secs => $2))
             ON CONFLICT (worker_id) DO UPDATE SET generation = sagaflow.workers.generation + 1,
               state = 'live', lease_until = EXCLUDED.lease_until, joined_at = now(), fenced_at = NULL
             RETURNING generation",
            &[&worker_id, &ownership::LEASE.as_secs_f64()],
        )
        .await?;
    Ok(Worker { id: worker_id.to_owned(), generation: row.get(0) })
}

/// A database error as a store error: a fenced commit is a conflict (the runs
/// are another worker's now); a lost connection, unavailable.
pub(super) fn pg_error(shown: &str, what: &str, e: tokio_postgres::Error) -> StoreError {
    let code = e.code().map(|c| c.code().to_owned());
    let detail = e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_owned());
    let kind = match code.as_deref() {
        Some("SF001") => StoreErrorKind::Conflict,
        Some(_) => StoreErrorKind::Other,
        None if e.is_closed() => StoreErrorKind::Unavailable,
        None => StoreErrorKind::Unavailable,
    };
    let code = code.map(|c| format!(" [SQLSTATE {c}]")).unwrap_or_default();
    StoreError::new(kind, format!("{what} ({shown}): {detail}{code}"))
}

/// A value as the JSON text a `json` column takes.
pub(super) fn json_text(value: &impl serde::Serialize) -> Result<String, StoreError> {
    String::from_utf8(super::encode(value)?).map_err(|e| StoreError::other(e.to_string()))
}

/// Column `i` of a row, JSON text, read as a `T` (`what` names it in an error).
pub(super) fn json_column<T: serde::de::DeserializeOwned>(
    row: &tokio_postgres::Row,
    i: usize,
    what: &str,
) -> Result<T, StoreError> {
    super::decode(row.get::<_, &str>(i).as_bytes(), what)
}

/// A URL fit for a message: its password, if any, left out.
pub(crate) fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
pub(crate) mod testing;
