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
mod listen;
mod outbox;
mod ownership;
mod pool;
mod runs;
pub(crate) mod sandbox;
mod schema;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Client;

pub(crate) use block::{block_on, mark_worker};
pub(crate) use ownership::LEASE;

/// Shared read connections a worker opens at most (each when the ones open are busy).
const READ_CONNECTIONS: usize = 4;
/// A worker paused inside a commit would hold its fence's lock, and keep
/// every other worker from taking it over: the server ends such a session.
const COMMIT_SESSION: &str = "SET idle_in_transaction_session_timeout = '1s'";

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
    /// Reads, pipelined on a few connections.
    reads: pool::Pool,
    /// Group commits, one transaction at a time.
    write: pool::Exclusive,
    /// A commit's answer was lost with its connection: whether it landed is
    /// not known until the same commit comes again.
    unsure: std::sync::atomic::AtomicBool,
    /// The same, of a claim of orphaned runs.
    claim_unsure: std::sync::atomic::AtomicBool,
    /// None: this process only reads (its commits are refused).
    worker: Option<Worker>,
    /// What the worker knows of its lease (whether it is fenced off).
    lease: Arc<ownership::Lease>,
    /// Other workers' changes, as their notifications come.
    changes: tokio::sync::broadcast::Sender<crate::store::Change>,
    /// How to open one more connection.
    opener: pool::Opener,
    /// The URL without its password, for messages.
    shown: String,
}

impl PgStore {
    /// Connects to `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`), brings
    /// the schema up to date, and joins as worker `worker_id` with a new
    /// generation (none: it only reads, and joins nothing), on the default lease.
    pub(crate) fn open(url: &str, worker_id: Option<&str>) -> Result<PgStore, StoreError> {
        PgStore::open_leased(url, worker_id, LEASE)
    }

    /// [`PgStore::open`], the worker's lease running `lease` (renewed every third of it).
    pub(crate) fn open_leased(url: &str, worker_id: Option<&str>, lease: Duration) -> Result<PgStore, StoreError> {
        let shown = without_password(url);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("sagaflow-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::other(format!("cannot start the PostgreSQL client: {e}")))?;
        let runtime = Arc::new(PgRuntime(Some(runtime)));
        let (client_url, tls) = tls::prepare(url).map_err(|e| StoreError::other(format!("{shown}: {e}")))?;
        let config = settings(&client_url).map_err(|e| pg_error(&shown, "cannot read the URL", e))?;
        let dial = Arc::new(Dial { config, tls, shown: shown.clone() });
        let opener = pool::Opener { dial: Arc::clone(&dial), runtime: runtime.handle().clone() };
        let write = pool::Exclusive::new(opener.clone(), Some(COMMIT_SESSION));
        let mut client = block_on(write.lock())?;
        let found = block_on(schema::migrate(&mut client.client))
            .map_err(|e| pg_error(&shown, "cannot set the schema up", e))?;
        if found > schema::VERSION {
            return Err(StoreError::other(format!(
                "{shown} holds a sagaflow schema of version {found}; this sagaflow knows up to {}: use a newer one",
                schema::VERSION
            )));
        }
        let sent = std::time::Instant::now();
        let worker = match worker_id {
            Some(id) => Some(join(&client, id, lease).map_err(|e| e.named(&shown))?),
            None => None,
        };
        drop(client);
        let lease = Arc::new(ownership::Lease::new(lease, sent));
        if let Some(worker) = &worker {
            // The lease is renewed on a connection of its own, as long as the store lives.
            let renewals = Arc::new(pool::Pool::new(opener.clone(), 1));
            let (worker, lease) = (worker.clone(), Arc::clone(&lease));
            runtime.spawn(async move { ownership::keep_lease(renewals, worker, lease) });
        }
        let (changes, _) = tokio::sync::broadcast::channel(64);
        if worker.is_some() {
            let (dial, changes, lease) = (Arc::clone(&dial), changes.clone(), Arc::clone(&lease));
            runtime.spawn(listen::listen(dial, changes, lease));
        }
        let reads = pool::Pool::new(opener.clone(), READ_CONNECTIONS);
        let (unsure, claim_unsure) = (Default::default(), Default::default());
        Ok(PgStore { runtime, reads, write, unsure, claim_unsure, worker, lease, changes, opener, shown })
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
        self.any_reader().await.execute(sql, &[&version.to_string()]).await
    }

    /// One more connection to the same database, on this store's runtime,
    /// opened again when lost.
    fn connect_more(&self) -> pool::Exclusive {
        pool::Exclusive::new(self.opener.clone(), None)
    }

    /// Runs `statement` on a read connection; `what` names what failed. Sent
    /// once more on a new connection if the database ended the first.
    fn read<T>(
        &self,
        what: &str,
        statement: impl AsyncFn(&pool::Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        block_on(again_if_lost(|| self.read_once(what, &statement)))
    }

    /// [`PgStore::read`] sent once: for a statement whose effect a second
    /// sending could double.
    async fn read_once<T>(
        &self,
        what: &str,
        statement: &impl AsyncFn(&pool::Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let client = self.reads.get().await?;
        let done = statement(&client).await.map_err(|e| self.error(what, e));
        done.inspect_err(|e| client.failed(e))
    }

    /// Runs `statements` on the write connection, held alone meanwhile.
    fn write_with<T>(
        &self,
        what: &str,
        statements: impl AsyncFn(&mut pool::Conn) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        block_on(again_if_lost(|| async {
            let mut client = self.write.lock().await?;
            let done = statements(&mut client).await.map_err(|e| self.error(what, e));
            done.inspect_err(|e| client.failed(e))
        }))
    }

    /// A read connection, for tests that reach behind the store.
    #[cfg(test)]
    async fn any_reader(&self) -> pool::Lent<'_> {
        self.reads.get().await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// Stops renewing this worker's lease, as a process that stopped would
    /// (tests); a renewal already under way ends first.
    #[cfg(test)]
    pub(crate) fn stop_renewing(&self) {
        self.lease.left.store(true, std::sync::atomic::Ordering::Relaxed);
        std::thread::sleep(self.lease.length / 3 + Duration::from_millis(300));
    }

    /// A renewal acknowledged now, however late (tests).
    #[cfg(test)]
    pub(crate) fn late_renewal(&self) {
        self.lease.acknowledged(std::time::Instant::now());
    }

    /// Makes this worker silent, its lease run out now (tests of a worker that stopped).
    #[cfg(test)]
    pub(crate) async fn age_lease(&self) -> Result<u64, tokio_postgres::Error> {
        self.stop_renewing();
        let id = self.worker.as_ref().map(|w| w.id.clone()).unwrap_or_default();
        let sql = "UPDATE sagaflow.workers SET lease_until = now() - interval '1 second' WHERE worker_id = $1";
        self.any_reader().await.execute(sql, &[&id]).await
    }

    /// Whether this store's reads go over TLS, as the server says (tests).
    #[cfg(test)]
    pub(crate) async fn encrypted(&self) -> Result<bool, tokio_postgres::Error> {
        let sql = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
        Ok(self.any_reader().await.query_one(sql, &[]).await?.get(0))
    }

    /// Ends every session of this store's database, as a restart of the
    /// server would (tests of a worker that outlives one).
    #[cfg(test)]
    pub(crate) async fn end_sessions(&self) -> Result<(), StoreError> {
        let admin = self.opener.open(None).await?;
        let sql = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()";
        admin.batch_execute(sql).await.map_err(|e| self.error("cannot end the sessions", e))
    }

    /// The answer of the last commit was lost: whether it landed is not known (tests).
    #[cfg(test)]
    pub(crate) fn lose_last_answer(&self) {
        self.unsure.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The answer of the last claim was lost (tests).
    #[cfg(test)]
    pub(crate) fn lose_claim_answer(&self) {
        self.claim_unsure.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Runs `sql` as it is (tests that change the database behind the store's back).
    #[cfg(test)]
    pub(crate) async fn execute(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.any_reader().await.batch_execute(sql).await
    }

    /// An error of this store, named by its database; one saying this
    /// worker's generation is over fences the worker off for good.
    fn error(&self, what: &str, e: tokio_postgres::Error) -> StoreError {
        let e = pg_error(&self.shown, what, e);
        if e.kind == StoreErrorKind::Conflict {
            self.lease.fence();
        }
        e
    }
}

impl Drop for PgStore {
    /// A worker leaves as its store goes: its runs are anyone's at once.
    fn drop(&mut self) {
        if self.worker.is_some() && !self.lease.left.load(std::sync::atomic::Ordering::Relaxed) {
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

/// Where and how this store connects: the client's settings, its
/// TLS (as `sslmode` asks), and the URL as messages show it.
pub(super) struct Dial {
    config: tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub(super) shown: String,
}

/// A connection, and the task that drives it (for a caller that reads its messages).
pub(crate) type Connection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

impl Dial {
    /// A connection whose messages the caller reads itself.
    pub(super) async fn open(&self) -> Result<(Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// A connection driven on the current runtime.
    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) = self.open().await.map_err(|e| pg_error(&self.shown, "cannot connect", e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "a PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

/// One connection to `url` (TLS as its `sslmode` asks), for a caller that
/// drives it itself: statements outside any store (creating a database).
pub(crate) async fn connect_once(url: &str) -> Result<(Client, Connection), StoreError> {
    let shown = without_password(url);
    let (client_url, tls) = tls::prepare(url).map_err(|e| StoreError::other(format!("{shown}: {e}")))?;
    let config = settings(&client_url).map_err(|e| pg_error(&shown, "cannot read the URL", e))?;
    config.connect(tls).await.map_err(|e| pg_error(&shown, "cannot connect", e))
}

/// The client's settings as the URL gives them, with the bounds a worker
/// needs where it says nothing: a connect gives up after 10 s, and a
/// connection whose server vanished without a word (a failover, a cut
/// network) is given up within about 30 s instead of the system's hours.
fn settings(url: &str) -> Result<tokio_postgres::Config, tokio_postgres::Error> {
    let mut config: tokio_postgres::Config = url.parse()?;
    let says = |key: &str| url.contains(&format!("{key}="));
    if !says("connect_timeout") {
        config.connect_timeout(Duration::from_secs(10));
    }
    if !says("keepalives_idle") {
        config.keepalives_idle(Duration::from_secs(10));
    }
    if !says("keepalives_interval") {
        config.keepalives_interval(Duration::from_secs(5));
    }
    if !says("keepalives_retries") {
        config.keepalives_retries(3);
    }
    if !says("tcp_user_timeout") {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    Ok(config)
}

/// `attempt`, and once more if it failed on a connection the database ended
/// (a restart): the next one opens a new connection.
pub(super) async fn again_if_lost<T, F: std::future::Future<Output = Result<T, StoreError>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, StoreError> {
    match attempt().await {
        Err(e) if e.kind == StoreErrorKind::Unavailable => attempt().await,
        done => done,
    }
}

/// Why a worker could not join.
enum JoinError {
    Db(tokio_postgres::Error),
    /// A live worker holds the id (and kept holding it a lease long).
    InUse {
        id: String,
        lease: Duration,
    },
}

impl JoinError {
    fn named(self, shown: &str) -> StoreError {
        match self {
            JoinError::Db(e) => pg_error(shown, "cannot join as a worker", e),
            JoinError::InUse { id, lease } => StoreError::other(format!(
                "cannot join {shown} as worker `{id}`: a live worker has that id (it kept renewing its lease for {} s); \
                 give each process its own --worker-id",
                lease.as_secs_f64()
            )),
        }
    }
}

/// Joins as `worker_id`: a new generation (the old one's runs are orphans to
/// claim). An id a live worker holds is waited for, a lease and a margin
/// long (a worker restarted at once after a crash finds its old lease still
/// running), then refused: two processes under one id would fence each other.
fn join(client: &pool::Conn, worker_id: &str, lease: Duration) -> Result<Worker, JoinError> {
    let deadline = std::time::Instant::now() + lease + Duration::from_millis(500);
    loop {
        let row = block_on(client.query_opt(
            "INSERT INTO sagaflow.workers (worker_id, generation, state, lease_until)
             VALUES ($1, 1, 'live', now() + make_interval(secs => $2))
             ON CONFLICT (worker_id) DO UPDATE SET generation = sagaflow.workers.generation + 1,
               state = 'live', lease_until = EXCLUDED.lease_until, joined_at = now(), fenced_at = NULL
             WHERE sagaflow.workers.state <> 'live' OR sagaflow.workers.lease_until < now()
             RETURNING generation",
            &[&worker_id, &lease.as_secs_f64()],
        ))
        .map_err(JoinError::Db)?;
        if let Some(row) = row {
            return Ok(Worker { id: worker_id.to_owned(), generation: row.get(0) });
        }
        if std::time::Instant::now() >= deadline {
            return Err(JoinError::InUse { id: worker_id.to_owned(), lease });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A database error as a store error: a fenced commit is a conflict (the runs
/// are another worker's now); a lost connection, unavailable.
pub(super) fn pg_error(shown: &str, what: &str, e: tokio_postgres::Error) -> StoreError {
    let code = e.code().map(|c| c.code().to_owned());
    let detail = e.as_db_error().map_or_else(|| with_causes(&e), |d| d.message().to_owned());
    let kind = match code.as_deref() {
        Some("SF001") => StoreErrorKind::Conflict,
        // The connection failed, or the server ended it (shutting down, restarting).
        Some(c) if c.starts_with("08") || c.starts_with("57P") => StoreErrorKind::Unavailable,
        Some(_) => StoreErrorKind::Other,
        // No answer: the connection closed, or its socket failed.
        None if e.is_closed() || caused_by_io(&e) => StoreErrorKind::Unavailable,
        // Refused on this side (a value that does not encode, a reply that does not parse).
        None => StoreErrorKind::Other,
    };
    let code = code.map(|c| format!(" [SQLSTATE {c}]")).unwrap_or_default();
    StoreError::new(kind, format!("{what} ({shown}): {detail}{code}"))
}

/// Whether an input or output error of the socket is behind `e`.
fn caused_by_io(e: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// An error and what caused it, down the chain ("error performing TLS
/// handshake: invalid peer certificate: UnknownIssuer").
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let said = c.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = c.source();
    }
    text
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
