//! The reload report: per workflow a reload changed, how many runs are in
//! flight on each version, and which of them stand at a step the new version
//! removed or renamed (they stay on their own version, which still has it).

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

use super::catalog::{Change, Snapshot};
use crate::actions::Registry;
use crate::engine::machine::UnitStatus;
use crate::engine::{replay, Versions};
use crate::store::Store;

/// At most this many runs of one workflow are replayed to find where they stand.
const MAX_REPLAYED: usize = 2_000;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct ReloadReport {
    pub workflow: String,
    pub at: u64,
    pub change: Change,
    /// The version new runs get now (none: the workflow takes no new runs).
    pub active: Option<String>,
    /// Unfinished runs by the version they started on.
    pub in_flight: BTreeMap<String, usize>,
    /// Runs on another version that stand at steps the active version lacks.
    pub stranded: Vec<Stranded>,
    /// Runs on other versions that were not replayed (past the bound).
    pub not_checked: usize,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Stranded {
    pub run_id: String,
    pub version: String,
    /// The steps it is at (running, retrying or waiting) that the active version does not have.
    pub steps: Vec<String>,
}

/// The last report of each workflow.
#[derive(Default)]
pub(crate) struct Reports {
    by_workflow: Mutex<BTreeMap<String, ReloadReport>>,
}

impl Reports {
    pub(crate) fn get(&self, workflow: &str) -> Option<ReloadReport> {
        self.by_workflow.lock().unwrap_or_else(|p| p.into_inner()).get(workflow).cloned()
    }

    fn put(&self, report: ReloadReport) {
        self.by_workflow.lock().unwrap_or_else(|p| p.into_inner()).insert(report.workflow.clone(), report);
    }

    /// Writes the reports of a reload's changes, and logs each. Blocking (reads the store).
    pub(crate) fn write(&self, changes: &[Change], snapshot: &Snapshot, store: &dyn Store, registry: &Registry) {
        let relevant: Vec<&Change> =
            changes.iter().filter(|c| matches!(c, Change::Updated { .. } | Change::Removed { .. })).collect();
        let unfinished = match relevant.is_empty() {
            true => Vec::new(),
            false => store.unfinished().unwrap_or_default(),
        };
        for change in changes {
            let report = build(change, snapshot, &unfinished, store, registry);
            log(&report);
            self.put(report);
        }
    }
}

fn build(
    change: &Change,
    snapshot: &Snapshot,
    unfinished: &[crate::store::RunMeta],
    store: &dyn Store,
    registry: &Registry,
) -> ReloadReport {
    let name = change.workflow();
    let active = snapshot.active(name);
    let mut report = ReloadReport {
        workflow: name.to_owned(),
        at: crate::base::clock::now_ms(),
        change: change.clone(),
        active: active.as_ref().map(|a| a.hash.clone()),
        in_flight: BTreeMap::new(),
        stranded: Vec::new(),
        not_checked: 0,
    };
    let mut versions = Versions::default();
    let mut replayed = 0;
    for meta in unfinished.iter().filter(|m| m.workflow == name) {
        *report.in_flight.entry(meta.hash.clone()).or_default() += 1;
        if Some(&meta.hash) == report.active.as_ref() {
            continue;
        }
        if replayed == MAX_REPLAYED {
            report.not_checked += 1;
            continue;
        }
        replayed += 1;
        let Ok(state) = replay(store, &mut versions, &meta.run_id, registry) else { continue };
        let missing: Vec<String> = standing_at(&state)
            .into_iter()
            .filter(|id| active.as_ref().is_none_or(|a| a.position(id).is_none()))
            .collect();
        if !missing.is_empty() {
            report.stranded.push(Stranded { run_id: meta.run_id.clone(), version: meta.hash.clone(), steps: missing });
        }
    }
    report
}

/// The steps a run is at: attempts in flight (waits included) and retries due.
fn standing_at(state: &crate::engine::machine::RunState) -> Vec<String> {
    let mut at: Vec<usize> = state.in_flight().into_iter().map(|(s, ..)| s).collect();
    for (s, step) in state.steps.iter().enumerate() {
        if step.units.iter().any(|u| u.status == UnitStatus::Retrying) {
            at.push(s);
        }
    }
    at.sort_unstable();
    at.dedup();
    at.into_iter().map(|s| state.wf.steps[s].id.clone()).collect()
}

fn log(report: &ReloadReport) {
    let on_versions: Vec<String> = report.in_flight.iter().map(|(h, n)| format!("{n} on {}", short(h))).collect();
    let in_flight = if on_versions.is_empty() { "no runs in flight".to_owned() } else { on_versions.join(", ") };
    match &report.change {
        Change::Added { version, .. } => {
            tracing::info!(workflow = %report.workflow, version = %short(version), "workflow added")
        }
        Change::Updated { from, to, .. } => tracing::info!(
            workflow = %report.workflow,
            from = %short(from),
            to = %short(to),
            "workflow reloaded: new runs get the new version; runs in flight: {in_flight}"
        ),
        Change::Removed { .. } => tracing::info!(
            workflow = %report.workflow,
            "workflow removed: it takes no new runs; runs in flight: {in_flight}"
        ),
        Change::Restored { file, .. } => tracing::info!(
            workflow = %report.workflow,
            file = %file,
            "workflow file validates again; its version stays active"
        ),
        Change::Invalid { file, errors, .. } => tracing::warn!(
            workflow = %report.workflow,
            file = %file,
            errors,
            "workflow file does not validate; the version before stays active"
        ),
    }
    for s in &report.stranded {
        tracing::warn!(
            workflow = %report.workflow,
            run_id = %s.run_id,
            version = %short(&s.version),
            steps = %s.steps.join(", "),
            "a run in flight stands at steps the new version removed or renamed; it finishes on its own version"
        );
    }
}

/// The first 12 digits of a version hash.
pub(crate) fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}
