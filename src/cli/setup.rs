//! What the commands that run workflows share: the config, the store and the
//! registry bound to the configured backends.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::actions::Registry;
use crate::config::{Backends, Config};
use crate::engine::compiled::CompiledWorkflow;
use crate::engine::driver::{Engine, EngineOptions};
use crate::engine::relay::{Relay, Subscriptions};
use crate::services::sandbox::{Sandbox, Seed};
use crate::store::postgres::PgStore;
use crate::store::sled::SledStore;
use crate::store::Store;

use super::{DataDir, Joining};

/// What the command line says of the setup: the config file, if `--config` names one.
pub(super) struct Setup {
    pub config_path: Option<PathBuf>,
}

impl Setup {
    /// The config: `--config`, `./sagaflow.toml`, or the defaults.
    pub(super) fn config(&self) -> Result<Config, String> {
        Config::find(self.config_path.as_deref()).map_err(|e| e.0)
    }

    /// The sandbox seed the config names (or the shipped one), for `test` and `explore`.
    pub(super) fn seed(&self) -> Result<Seed, String> {
        self.config()?.seed().map_err(|e| e.0)
    }

    /// Where a command's runs are: `--store`, else `[store] url`, else the `--data` directory.
    pub(super) fn place(&self, data: &DataDir) -> Result<Place, String> {
        let config = self.config()?;
        let url = match (&data.store, &config.store.url) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => url.get_ref().clone(),
            (None, None) => return Ok(Place::Sled(data.path.clone())),
        };
        self.located(&url)
    }

    /// The place a store URL names; a PostgreSQL one with the password
    /// `[store] password_secret` names, if it does.
    fn located(&self, url: &str) -> Result<Place, String> {
        let config = self.config()?;
        match (Place::parse(url)?, &config.store.password_secret) {
            (Place::Postgres(url), Some(name)) => {
                let password = config.secret(name, "store.password_secret").map_err(|e| e.0)?;
                let mut parsed = reqwest::Url::parse(&url).map_err(|e| format!("--store {url}: {e}"))?;
                let _ = parsed.set_password(Some(&password));
                Ok(Place::Postgres(parsed.to_string()))
            }
            (place, _) => Ok(place),
        }
    }

    /// Where `test` and `explore` make each run's fresh store: `--store
    /// postgres://...` names a server to make a database on (its password
    /// from `[store] password_secret`, as for every store); else sled folders.
    pub(super) fn scratch(&self, store: Option<&str>) -> Result<crate::explore::Scratch, String> {
        let Some(url) = store else { return Ok(crate::explore::Scratch::Sled) };
        match self.located(url)? {
            Place::Postgres(url) => Ok(crate::explore::Scratch::Postgres(url)),
            Place::Sled(_) => {
                Err("--store: each run gets a fresh sled folder already; name a postgres:// server to run them there"
                    .to_owned())
            }
        }
    }

    /// The store and the backends bound to it (the sandbox lives in the same
    /// database); in PostgreSQL this process joins as a worker (`role` names it).
    pub(super) fn open(
        &self,
        data: &DataDir,
        joining: &Joining,
        role: &str,
    ) -> Result<(Arc<dyn Store>, Backends), String> {
        let config = self.config()?;
        match self.place(data)? {
            Place::Sled(dir) => {
                let store = SledStore::open(&dir).map_err(|e| e.message)?;
                let backends = Backends::build(&config, Some(&store)).map_err(|e| e.0)?;
                Ok((Arc::new(store), backends))
            }
            Place::Postgres(url) => {
                let store = join(&url, joining, role)?;
                let sandbox = Sandbox::open_postgres(&store, &config.seed().map_err(|e| e.0)?)?;
                let backends = Backends::on(&config, sandbox).map_err(|e| e.0)?;
                Ok((Arc::new(store), backends))
            }
        }
    }

    /// The store, to read from (in PostgreSQL, without joining as a worker).
    pub(super) fn read(&self, data: &DataDir) -> Result<Arc<dyn Store>, String> {
        match self.place(data)? {
            Place::Sled(dir) => Ok(Arc::new(SledStore::open(&dir).map_err(|e| e.message)?)),
            Place::Postgres(url) => Ok(Arc::new(PgStore::open(&url, None).map_err(|e| e.message)?)),
        }
    }

    /// The store, to write to as one more worker (`role` names it) without backends.
    pub(super) fn write(&self, data: &DataDir, joining: &Joining, role: &str) -> Result<Arc<dyn Store>, String> {
        match self.place(data)? {
            Place::Sled(dir) => Ok(Arc::new(SledStore::open(&dir).map_err(|e| e.message)?)),
            Place::Postgres(url) => Ok(Arc::new(join(&url, joining, role)?)),
        }
    }

    /// The store as export records, and an import's target (`store check|export|import`).
    pub(super) fn backup(&self, data: &DataDir) -> Result<Backup, String> {
        match self.place(data)? {
            Place::Sled(dir) => Ok(Backup::Sled(SledStore::open(&dir).map_err(|e| e.message)?)),
            Place::Postgres(url) => Ok(Backup::Postgres(Box::new(PgStore::open(&url, None).map_err(|e| e.message)?))),
        }
    }

    /// The store in `data` and its sandbox alone, for `sandbox show` and `reset`:
    /// no backends are built, so a secret the config names need not be set.
    pub(super) fn open_sandbox(&self, data: &DataDir) -> Result<(Arc<dyn Store>, Sandbox, Seed), String> {
        let seed = self.seed()?;
        match self.place(data)? {
            Place::Sled(dir) => {
                let store = SledStore::open(&dir).map_err(|e| e.message)?;
                let sandbox = Sandbox::open(store.db(), &seed, true)?;
                Ok((Arc::new(store), sandbox, seed))
            }
            Place::Postgres(url) => {
                let store = PgStore::open(&url, None).map_err(|e| e.message)?;
                let sandbox = Sandbox::open_postgres(&store, &seed)?;
                Ok((Arc::new(store), sandbox, seed))
            }
        }
    }
}

/// A store read or written whole, as export records.
pub(super) enum Backup {
    Sled(SledStore),
    Postgres(Box<PgStore>),
}

impl Backup {
    pub(super) fn records<E>(
        &self,
        each: impl FnMut(Result<crate::store::backup::Record, crate::store::backup::Damage>) -> Result<(), E>,
    ) -> Result<(), E> {
        match self {
            Backup::Sled(store) => store.records(each),
            Backup::Postgres(store) => store.records(each),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        match self {
            Backup::Sled(store) => store.is_empty(),
            Backup::Postgres(store) => store.is_empty().unwrap_or(false),
        }
    }

    pub(super) fn import(
        &self,
        records: impl Iterator<Item = Result<crate::store::backup::Record, crate::store::StoreError>>,
    ) -> Result<u64, crate::store::StoreError> {
        match self {
            Backup::Sled(store) => store.import(records),
            Backup::Postgres(store) => store.import(records),
        }
    }
}

/// Where runs are kept.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Place {
    Sled(PathBuf),
    Postgres(String),
}

impl Place {
    pub(super) fn parse(url: &str) -> Result<Place, String> {
        if let Some(dir) = url.strip_prefix("sled:") {
            return Ok(Place::Sled(PathBuf::from(dir)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Place::Postgres(url.to_owned()));
        }
        Err(format!(
            "`{}` is not a store: say sled:DIR or postgres://USER@HOST:PORT/DB",
            crate::store::postgres::without_password(url)
        ))
    }
}

/// Joins the database at `url` as a worker: `--worker-id`, else [`worker_id`].
fn join(url: &str, joining: &Joining, role: &str) -> Result<PgStore, String> {
    let id = joining.worker_id.clone().unwrap_or_else(|| worker_id(role));
    PgStore::open_leased(url, Some(&id), joining.lease).map_err(|e| e.message)
}

/// This process's name among the workers of a shared store: what it is, its host and pid.
pub(super) fn worker_id(role: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    let host = if host.is_empty() { "localhost".to_owned() } else { host };
    format!("{role}:{host}:{}", std::process::id())
}

/// An engine over the store with its relay (and its tracer, when spans are
/// exported, and on a shared store what it hears of the other workers): what
/// `run`, `resume` and the operator commands start.
pub(super) struct Started {
    pub engine: Engine,
    pub relay: Arc<Relay>,
    tracer: Option<crate::engine::tracer::Tracer>,
    /// On a shared store, hears the other workers (their events, its letters) until dropped.
    _hearing: tokio_util::sync::DropGuard,
}

/// How long `run` and `resume` wait, once their runs ended, for the outbox to
/// empty; what is left is delivered by the next process.
pub(super) const RELAY_GRACE: Duration = Duration::from_secs(5);

/// Starts the engine and the relay (on the current runtime). The workflows in
/// `workflows` with `event` triggers start runs when their events come; the
/// workflows `workflow.run` steps name are found in `children`.
pub(super) fn start(store: Arc<dyn Store>, backends: &Backends, workflows: &Path, children: &Path) -> Started {
    let subscriptions = Arc::new(Subscriptions::new(backends.webhooks.clone()));
    subscriptions.set_workflows(triggered(workflows, &backends.registry));
    let library = Arc::new(crate::engine::library::Directory::new(children.to_owned(), backends.registry.clone()));
    let options = EngineOptions {
        subscriptions: subscriptions.clone(),
        library,
        propagate_traces: backends.telemetry.is_some(),
        ..EngineOptions::default()
    };
    let engine = Engine::start(store.clone(), backends.registry.clone(), options);
    let tracer = backends.telemetry.as_ref().and_then(|t| {
        let dropped = engine.metrics().spans_dropped.clone();
        match crate::adapters::otlp::Exporter::start(&t.endpoint, &t.service_name, dropped) {
            Ok(exporter) => Some(crate::engine::tracer::Tracer::start(&engine, store.clone(), exporter)),
            Err(e) => {
                eprintln!("note: telemetry is off: {e}");
                None
            }
        }
    });
    let hearing = tokio_util::sync::CancellationToken::new();
    crate::engine::cluster::spawn(&engine, &store, &hearing);
    let relay = Relay::spawn(engine.clone(), store, subscriptions);
    Started { engine, relay, tracer, _hearing: hearing.drop_guard() }
}

impl Started {
    /// Lets the outbox empty (for at most [`RELAY_GRACE`]), stops the relay, and
    /// says on stderr what was started and what is left.
    pub(super) async fn finish(self) {
        let left = self.relay.drain(RELAY_GRACE).await;
        if let Some(tracer) = &self.tracer {
            tracer.flush(RELAY_GRACE).await;
        }
        self.relay.stop();
        for (workflow, run_id, meta) in self.relay.started() {
            match meta.filter(|m| m.is_finished()) {
                Some(m) => eprintln!("note: an event started run {run_id} of `{workflow}`: {}", m.status),
                None => {
                    eprintln!("note: an event started run {run_id} of `{workflow}`; `sagaflow resume` continues it")
                }
            }
        }
        if left > 0 {
            eprintln!("note: {left} event deliveries are still pending; the next `sagaflow resume` goes on with them (`sagaflow outbox` lists them)");
        }
    }
}

/// The workflows of a directory that have `event` triggers; a file with errors
/// is left out (`sagaflow validate` says why).
fn triggered(dir: &Path, registry: &Registry) -> Vec<Arc<CompiledWorkflow>> {
    let Ok(files) = crate::validate::collect_files(&[dir.to_owned()]) else { return Vec::new() };
    files
        .into_iter()
        .filter_map(|file| {
            let loaded = crate::dsl::loader::load_path(&file);
            if !loaded.declares_triggers() {
                return None;
            }
            match CompiledWorkflow::compile(&file, &loaded.file.text, registry) {
                Ok(wf) => Some(wf),
                Err(_) => {
                    tracing::warn!(file = %file.display(), "the workflow has errors; its triggers are off");
                    None
                }
            }
        })
        .filter(|wf| !wf.event_triggers.is_empty())
        .collect()
}
