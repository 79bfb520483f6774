//! Where each run of `test` and `explore` keeps its state: a store and a
//! sandbox of its own, fresh every time, removed after. sled in a temporary
//! folder by default; with `--store postgres://...`, a database of its own
//! on that server (created, then dropped), so a workflow's cases and failure
//! points are also run on the store production uses.

use std::sync::Arc;

use super::ExploreError;
use crate::services::sandbox::{Sandbox, Seed};
use crate::store::postgres::PgStore;
use crate::store::sled::SledStore;
use crate::store::{Store, StoreError};

/// Where the runs' stores are made.
#[derive(Debug, Clone, Default)]
pub(crate) enum Scratch {
    /// A sled store in a temporary folder.
    #[default]
    Sled,
    /// A new database on the PostgreSQL server of this URL (the database it
    /// names is where `CREATE DATABASE` is asked).
    Postgres(String),
}

/// One run's store and sandbox; its folder or database goes when it is dropped.
pub(crate) struct ScratchStore {
    pub store: Arc<dyn Store>,
    pub sandbox: Sandbox,
    _place: Place,
    /// The database's URL, for the process that takes over after a crash.
    url: Option<String>,
}

impl ScratchStore {
    /// The store as the process after a crash finds it: in sled, the same
    /// store; in PostgreSQL, the crashed worker leaves and a new one joins,
    /// which takes the runs over as a survivor would.
    pub(crate) fn after_crash(&self) -> Result<Arc<dyn Store>, ExploreError> {
        let Some(url) = &self.url else { return Ok(self.store.clone()) };
        self.store.leave()?;
        Ok(Arc::new(PgStore::open(url, Some("scratch-after-crash"))?))
    }
}

/// Kept only to be dropped with the store.
enum Place {
    Folder { _dir: tempfile::TempDir },
    Database { _database: Database },
}

impl Scratch {
    /// A fresh store, its sandbox seeded with `seed`.
    pub(crate) fn open(&self, seed: &Seed) -> Result<ScratchStore, ExploreError> {
        match self {
            Scratch::Sled => {
                let dir = tempfile::tempdir().map_err(ExploreError::TempDir)?;
                let store = SledStore::open(dir.path())?;
                let sandbox = Sandbox::open(store.db(), seed, false)?;
                Ok(ScratchStore { store: Arc::new(store), sandbox, _place: Place::Folder { _dir: dir }, url: None })
            }
            Scratch::Postgres(server) => {
                let database = Database::create(server)?;
                let store = PgStore::open(&database.url, Some("scratch"))?;
                let sandbox = Sandbox::open_postgres(&store, seed)?;
                let url = Some(database.url.clone());
                Ok(ScratchStore {
                    store: Arc::new(store),
                    sandbox,
                    _place: Place::Database { _database: database },
                    url,
                })
            }
        }
    }
}

/// A database made for one run, dropped with it.
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create(server: &str) -> Result<Database, ExploreError> {
        let name = format!("sagaflow_scratch_{:016x}", fastrand::u64(..));
        let mut url = reqwest::Url::parse(server).map_err(|e| StoreError::other(format!("--store: {e}")))?;
        url.set_path(&format!("/{name}"));
        admin(server, &format!("CREATE DATABASE {name}"))?;
        Ok(Database { server: server.to_owned(), name, url: url.to_string() })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Whoever still holds a connection to it (an engine winding down) is put off.
        if let Err(e) = admin(&self.server, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
            tracing::warn!(database = %self.name, error = %e, "a scratch database could not be dropped");
        }
    }
}

/// Runs one statement on the server's named database, from a thread of its
/// own (the caller may be inside a runtime).
fn admin(server: &str, sql: &str) -> Result<(), StoreError> {
    let (server, sql) = (server.to_owned(), sql.to_owned());
    let shown = crate::store::postgres::without_password(&server);
    let ran = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            let (client, connection) = crate::store::postgres::connect_once(&server).await.map_err(|e| e.message)?;
            let driving = tokio::spawn(connection);
            let done = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = driving.await;
            done
        })
    });
    match ran.join() {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(StoreError::other(format!("{shown}: {e}"))),
        Err(_) => Err(StoreError::other(format!("{shown}: the statement's thread stopped"))),
    }
}
