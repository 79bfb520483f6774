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
use crate::store::sled::SledStore;

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

    /// The store in `data` and the backends bound to it (the sandbox lives in the same database).
    pub(super) fn open(&self, data: &Path) -> Result<(Arc<SledStore>, Backends), String> {
        let config = self.config()?;
        let store = SledStore::open(data).map_err(|e| e.message)?;
        let backends = Backends::build(&config, Some(&store)).map_err(|e| e.0)?;
        Ok((Arc::new(store), backends))
    }

    /// The store in `data` and its sandbox alone, for `sandbox show` and `reset`:
    /// no backends are built, so a secret the config names need not be set.
    pub(super) fn open_sandbox(&self, data: &Path) -> Result<(SledStore, Sandbox, Seed), String> {
        let seed = self.seed()?;
        let store = SledStore::open(data).map_err(|e| e.message)?;
        let sandbox = Sandbox::open(store.db(), &seed, true)?;
        Ok((store, sandbox, seed))
    }
}

/// An engine over the store with its relay (and its tracer, when spans are
/// exported): what `run`, `resume` and the operator commands start.
pub(super) struct Started {
    pub engine: Engine,
    pub relay: Arc<Relay>,
    tracer: Option<crate::engine::tracer::Tracer>,
}

/// How long `run` and `resume` wait, once their runs ended, for the outbox to
/// empty; what is left is delivered by the next process.
pub(super) const RELAY_GRACE: Duration = Duration::from_secs(5);

/// Starts the engine and the relay (on the current runtime). The workflows in
/// `workflows` with `event` triggers start runs when their events come; the
/// workflows `workflow.run` steps name are found in `children`.
pub(super) fn start(store: Arc<SledStore>, backends: &Backends, workflows: &Path, children: &Path) -> Started {
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
    let relay = Relay::spawn(engine.clone(), store, subscriptions);
    Started { engine, relay, tracer }
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
