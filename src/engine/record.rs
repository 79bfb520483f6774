//! The run record of DSL.md: what `run --format json`, `show` and the API print.

use crate::journal::status::{RunStatus, StepStatus, UnitStatus};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::machine::{Phase, RunState};
use crate::journal::entry::ActionError;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct RunRecord {
    pub run_id: String,
    pub workflow: String,
    /// The content hash of the workflow version the run started on.
    pub version: String,
    pub status: RunStatus,
    pub input: Json,
    pub output: Json,
    pub error: Option<ErrorRecord>,
    pub steps: Vec<StepRecord>,
    pub compensations: Vec<CompensationRecord>,
    /// Failures injected with `--fail`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<crate::journal::injection::Injection>,
    /// The run whose `workflow.run` step started this one (DSL.md B1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentRecord>,
    /// The run this one runs again, and the runs that ran it again (DSL.md C2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerun_of: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reruns: Vec<String>,
    /// What it waits for, while it waits: events, timers, child runs, an operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub waits: Vec<super::waits::WaitRecord>,
    pub started_at: u64,
    pub finished_at: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ParentRecord {
    pub run_id: String,
    pub step: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ErrorRecord {
    pub step: Option<String>,
    pub code: crate::base::error::ErrorCode,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct StepRecord {
    pub id: String,
    pub status: StepStatus,
    pub attempts: u32,
    pub output: Json,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// For `workflow.run` steps: the child run its last attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run: Option<String>,
    /// For `repeat` steps: the rounds it has begun (the most of any item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// For `for_each` steps: each item's status and attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Vec<ItemRecord>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct ItemRecord {
    pub index: usize,
    pub status: UnitStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
    /// For a `workflow.run` step: this item's child run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct CompensationRecord {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub status: UnitStatus,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ActionError>,
}

impl RunRecord {
    pub(crate) fn of(run: &RunState) -> RunRecord {
        RunRecord {
            run_id: run.run_id.clone(),
            workflow: run.wf.name.clone(),
            version: run.wf.hash.clone(),
            status: run_status(run),
            input: run.input.clone(),
            output: run.output.clone().unwrap_or(Json::Null),
            error: run.error.as_ref().map(|e| ErrorRecord {
                step: e.step.clone(),
                code: e.code.clone(),
                message: e.message.clone(),
            }),
            steps: (0..run.steps.len()).map(|s| step_record(run, s)).collect(),
            compensations: run
                .compensations
                .iter()
                .filter_map(|&(s, item)| compensation_record(run, s, item))
                .collect(),
            injected: run.inject.clone(),
            parent: run.parent.as_ref().map(|p| ParentRecord { run_id: p.run_id.clone(), step: p.step.clone() }),
            rerun_of: run.rerun_of.clone(),
            reruns: run.reruns.clone(),
            waits: if run.phase == Phase::Done { Vec::new() } else { super::waits::waits(run) },
            started_at: run.started_at,
            finished_at: run.finished_at,
        }
    }
}

/// Why a run ended badly, or the first step it is paused at and why: the
/// step and error code its index row keeps.
pub(crate) fn meta_error(run: &RunState) -> Option<crate::store::MetaError> {
    if let Some(e) = &run.error {
        return Some(crate::store::MetaError { step: e.step.clone(), code: e.code.as_str().to_owned() });
    }
    let &(s, item) = run.paused().first()?;
    let error = run.unit(s, item)?.error.as_ref()?;
    Some(crate::store::MetaError { step: Some(run.wf.steps[s].id.clone()), code: error.code.as_str().to_owned() })
}

pub(crate) fn run_status(run: &RunState) -> RunStatus {
    match run.phase {
        Phase::Done => run.status.unwrap_or_else(|| run.final_status()),
        Phase::RollingBack => RunStatus::Compensating,
        Phase::Forward if !run.paused().is_empty() => RunStatus::Paused,
        Phase::Forward => {
            let in_flight = run.in_flight();
            let waits = in_flight.iter().filter(|(s, ..)| run.is_wait_step(*s)).count();
            let working = in_flight.len() > waits;
            let between = |u: &&super::machine::Unit| matches!(u.status, UnitStatus::Retrying | UnitStatus::Repeating);
            let retrying = run.steps.iter().flat_map(|s| &s.units).any(|u| between(&u));
            if !working && (retrying || waits > 0) {
                RunStatus::Waiting
            } else {
                RunStatus::Running
            }
        }
    }
}

fn step_record(run: &RunState, s: usize) -> StepRecord {
    let def = &run.wf.steps[s];
    let state = &run.steps[s];
    let attempts = state.units.iter().map(|u| u.attempts).sum();
    let error = run.step_error(s).cloned();
    let start = state.units.iter().filter_map(|u| u.started_at).min();
    let end = state.units.iter().map(|u| u.finished_at).collect::<Option<Vec<_>>>().and_then(|v| v.into_iter().max());
    let items = def.for_each.is_some().then(|| {
        state
            .units
            .iter()
            .enumerate()
            .map(|(index, u)| ItemRecord {
                index,
                status: u.status,
                attempts: u.attempts,
                error: u.error.clone(),
                child_run: run.child_of(s, Some(index)),
            })
            .collect()
    });
    StepRecord {
        id: def.id.clone(),
        status: run.step_status(s),
        attempts,
        output: run.step_output(s),
        error,
        duration_ms: start.zip(end).map(|(a, b)| b.saturating_sub(a)),
        child_run: if def.for_each.is_some() { None } else { run.child_of(s, None) },
        rounds: def.repeat.as_ref().map(|_| state.units.iter().map(|u| u.round).max().unwrap_or(0)),
        items,
    }
}

fn compensation_record(run: &RunState, s: usize, item: Option<usize>) -> Option<CompensationRecord> {
    let c = run.unit(s, item)?.compensation.as_ref()?;
    Some(CompensationRecord {
        step: run.wf.steps[s].id.clone(),
        item,
        status: c.status,
        attempts: c.attempts,
        error: c.error.clone(),
    })
}
