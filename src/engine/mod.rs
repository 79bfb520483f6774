//! The interpreter: runs as deterministic state machines, driven by an async
//! scheduler, checkpointed in the store.

pub mod compiled;
#[cfg(test)]
mod config_tests;
pub mod driver;
#[cfg(test)]
mod driver_tests;
#[cfg(test)]
mod golden_tests;
pub mod inject;
pub mod machine;
pub mod metrics;
pub mod record;
pub mod relay;
pub mod template;
#[cfg(test)]
mod tests;
pub mod wanted;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use compiled::CompiledWorkflow;
use machine::RunState;

use crate::actions::Registry;
use crate::store::ReadRuns;

/// Workflow versions compiled from the store, by content hash.
#[derive(Default)]
pub struct Versions {
    compiled: HashMap<String, Arc<CompiledWorkflow>>,
}

impl Versions {
    /// The version a run started on, from the copy the store keeps.
    pub fn get(
        &mut self,
        store: &dyn ReadRuns,
        hash: &str,
        registry: &Registry,
    ) -> Result<Arc<CompiledWorkflow>, String> {
        if let Some(wf) = self.compiled.get(hash) {
            return Ok(wf.clone());
        }
        let source = store
            .definition(hash)
            .map_err(|e| e.message)?
            .ok_or_else(|| format!("the store has no copy of workflow version {hash}"))?;
        let wf = CompiledWorkflow::compile(Path::new("<stored definition>"), &source, registry)
            .map_err(|_| format!("the stored workflow version {hash} no longer compiles"))?;
        self.compiled.insert(hash.to_owned(), wf.clone());
        Ok(wf)
    }
}

/// A run's state, rebuilt from its journal.
pub fn replay(
    store: &dyn ReadRuns,
    versions: &mut Versions,
    run_id: &str,
    registry: &Registry,
) -> Result<RunState, String> {
    let meta = store.run(run_id).map_err(|e| e.message)?.ok_or_else(|| format!("there is no run `{run_id}`"))?;
    let wf = versions.get(store, &meta.hash, registry)?;
    let secrets = wf.secret_values();
    Ok(RunState::replayed_with(run_id, wf, &store.entries(run_id).map_err(|e| e.message)?, secrets))
}

/// Hands every unfinished run in the store to the engine, on the version it
/// started with; answers their ids. When this returns, each has been replayed
/// and has started what it was doing (attempts again, waits and timers armed).
pub async fn resume_unfinished(
    engine: &driver::Engine,
    store: &dyn crate::store::Store,
    registry: &Registry,
) -> Result<Vec<String>, String> {
    let unfinished: Vec<_> = store.runs().map_err(|e| e.message)?.into_iter().filter(|r| !r.is_finished()).collect();
    let mut versions = Versions::default();
    for meta in &unfinished {
        let wf = versions.get(store, &meta.hash, registry)?;
        let entries = store.entries(&meta.run_id).map_err(|e| e.message)?;
        engine.resume(meta.run_id.clone(), wf, entries).await;
    }
    // One more turn of the loop: the last resumed runs have acted.
    engine.flush().await;
    Ok(unfinished.into_iter().map(|m| m.run_id).collect())
}
