//! The interpreter: runs as deterministic state machines, driven by an async
//! scheduler, checkpointed in the store.

pub(crate) mod bulk;
pub(crate) mod child;
#[cfg(test)]
mod children_tests;
pub(crate) mod cluster;
pub(crate) mod compiled;
#[cfg(test)]
mod config_tests;
pub(crate) mod defaults;
pub(crate) mod driver;
#[cfg(test)]
mod driver_tests;
pub(crate) mod from_data;
#[cfg(test)]
mod golden_tests;
mod helpers;
pub(crate) mod inject;
pub(crate) mod library;
pub(crate) mod machine;
pub(crate) mod metrics;
pub(crate) mod operator;
#[cfg(test)]
mod operator_tests;
pub(crate) mod record;
pub(crate) mod relay;
#[cfg(test)]
mod repeat_tests;
#[cfg(test)]
mod shared_tests;
pub(crate) mod spans;
pub(crate) mod template;
#[cfg(test)]
mod tests;
pub(crate) mod tracer;
pub(crate) mod waits;
pub(crate) mod wanted;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use compiled::CompiledWorkflow;
use machine::RunState;

use crate::actions::Registry;
use crate::store::{ReadRuns, StoreError};

/// Why a run (or a workflow version) cannot be read back from the store.
#[derive(Debug)]
pub enum ReplayError {
    /// No run has this id.
    NoSuchRun(String),
    /// The store could not be read.
    Store(StoreError),
    /// The store has no copy of the workflow version the run started on.
    NoCopy(String),
    /// The stored workflow version no longer compiles (its actions changed).
    NoLongerCompiles(String),
    /// A live worker of the shared store owns the run: it is that worker's to move.
    OwnedElsewhere(String),
}

impl std::fmt::Display for ReplayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayError::NoSuchRun(id) => write!(f, "there is no run `{id}`"),
            ReplayError::Store(e) => f.write_str(&e.message),
            ReplayError::NoCopy(hash) => write!(f, "the store has no copy of workflow version {hash}"),
            ReplayError::NoLongerCompiles(hash) => write!(f, "the stored workflow version {hash} no longer compiles"),
            ReplayError::OwnedElsewhere(id) => write!(
                f,
                "run {id} is owned by a live worker of the shared store; act on it through that server (--server URL)"
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

impl From<StoreError> for ReplayError {
    fn from(e: StoreError) -> Self {
        ReplayError::Store(e)
    }
}

impl From<ReplayError> for String {
    fn from(e: ReplayError) -> Self {
        e.to_string()
    }
}

/// Workflow versions compiled from the store, by content hash.
#[derive(Default)]
pub(crate) struct Versions {
    compiled: HashMap<String, Arc<CompiledWorkflow>>,
}

impl Versions {
    /// The version a run started on, from the copy the store keeps.
    pub(crate) fn get(
        &mut self,
        store: &dyn ReadRuns,
        hash: &str,
        registry: &Registry,
    ) -> Result<Arc<CompiledWorkflow>, ReplayError> {
        if let Some(wf) = self.compiled.get(hash) {
            return Ok(wf.clone());
        }
        let source = store.definition(hash)?.ok_or_else(|| ReplayError::NoCopy(hash.to_owned()))?;
        let wf = CompiledWorkflow::compile(Path::new("<stored definition>"), &source, registry)
            .map_err(|_| ReplayError::NoLongerCompiles(hash.to_owned()))?;
        self.compiled.insert(hash.to_owned(), wf.clone());
        Ok(wf)
    }
}

/// A run's state, rebuilt from its journal.
pub(crate) fn replay(
    store: &dyn ReadRuns,
    versions: &mut Versions,
    run_id: &str,
    registry: &Registry,
) -> Result<RunState, ReplayError> {
    let meta = store.run(run_id)?.ok_or_else(|| ReplayError::NoSuchRun(run_id.to_owned()))?;
    let wf = versions.get(store, &meta.hash, registry)?;
    let secrets = wf.secret_values();
    Ok(RunState::replayed_with(run_id, wf, &store.entries(run_id)?, secrets))
}

/// Hands every unfinished run in the store to the engine, on the version it
/// started with; answers their ids. When this returns, each has been replayed
/// and has started what it was doing (attempts again, waits and timers armed).
pub(crate) async fn resume_unfinished(
    engine: &driver::Engine,
    store: &dyn crate::store::Store,
    registry: &Registry,
) -> Result<Vec<String>, ReplayError> {
    // Alone on its store, every unfinished run; shared, those no live worker owns.
    let claimed = store.claim(usize::MAX)?;
    resume_runs(engine, store, registry, &claimed).await?;
    Ok(claimed.into_iter().map(|m| m.run_id).collect())
}

/// Runs whose journals are read, and handed to the engine, together.
const RESUMED_AT_ONCE: usize = 256;

/// Reads runs back from their journals and hands them to the engine to go on.
pub(crate) async fn resume_runs(
    engine: &driver::Engine,
    store: &dyn crate::store::Store,
    registry: &Registry,
    runs: &[crate::store::RunMeta],
) -> Result<(), ReplayError> {
    let mut versions = Versions::default();
    for batch in runs.chunks(RESUMED_AT_ONCE) {
        // A run the engine has already goes on here as it is: its journal,
        // read now, could be behind by the time the resume comes.
        let ids = engine.absent(batch.iter().map(|m| m.run_id.clone()).collect()).await;
        let mut journals = store.journals(&ids)?;
        let absent: std::collections::HashSet<&String> = ids.iter().collect();
        let mut resumed = Vec::with_capacity(ids.len());
        for meta in batch.iter().filter(|m| absent.contains(&m.run_id)) {
            let wf = versions.get(store, &meta.hash, registry)?;
            let entries = journals.remove(&meta.run_id).unwrap_or_default();
            resumed.push(engine.resume(meta.run_id.clone(), wf, entries));
        }
        // Handed over together: the loop takes them up in a few turns.
        futures_util::future::join_all(resumed).await;
    }
    // One more turn of the loop: the last resumed runs have acted.
    engine.flush().await;
    Ok(())
}
