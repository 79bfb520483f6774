//! Child runs (DSL.md B1), the machine's side: which child a `workflow.run`
//! attempt starts (its id derived from the parent run, step, item, attempt and
//! round, so a resumed attempt finds the same child and a retry starts a new
//! one), which child an undo compensates, and what a child's end means to
//! the step that waits for it. The driver starts children and delivers their
//! ends as events (`run.finished`, `run.undone`) keyed by the child's id.

use serde_json::{json, Value as Json};

use super::compiled::MAX_CALL_DEPTH;
use super::machine::RunState;
use super::wanted::{AttemptKey, Start};
use crate::journal::entry::{ActionError, Entry, Item, Outcome, ParentLink};
use crate::journal::injection::Injection;
use crate::journal::status::RunStatus;
use crate::store::EventRecord;

/// The event a child run's end is told by; its key is the child's run id.
pub(crate) const FINISHED: &str = "run.finished";
/// The event the end of a child's undoing is told by.
pub(crate) const UNDONE: &str = "run.undone";
/// What the undoing of a child with nothing to compensate answers: the parent
/// leaves the step as it is, as a step without `compensate`.
const NOTHING_TO_UNDO: &str = "nothing to undo";

/// The answer of the undoing of a child that had nothing to compensate.
pub(crate) fn nothing_to_undo(run_id: &str) -> Outcome {
    Outcome::Ok(json!({ "run_id": run_id, "status": NOTHING_TO_UNDO }))
}

/// Whether an undoing's answer says the child had nothing to compensate.
pub(crate) fn had_nothing_to_undo(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Ok(v) if v["status"] == NOTHING_TO_UNDO)
}

/// A child run an attempt starts, unless a run of its id exists.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ChildStart {
    pub run_id: String,
    pub workflow: String,
    pub input: Json,
    pub parent: ParentLink,
    /// The step's `timeout`: the child's deadline, from its start.
    pub timeout_ms: Option<u64>,
    /// The failures injected into the parent for steps of this child
    /// (`STEP/CHILD_STEP`), named for the child.
    pub inject: Vec<Injection>,
}

impl RunState {
    /// The id of the child run an attempt starts: the same whenever the same
    /// attempt (of the same round) asks, another for every other attempt.
    pub(crate) fn child_run_id(&self, key: AttemptKey) -> String {
        let unit = self.unit(key.step, key.item);
        let round = unit.map_or(1, |u| u.round.max(1));
        let started = match key.compensation {
            true => unit.and_then(|u| u.compensation.as_ref()).and_then(|c| c.started_at),
            false => unit.and_then(|u| u.started_at),
        };
        let item = key.item.map_or_else(String::new, |i| i.to_string());
        let undo = if key.compensation { "compensate" } else { "" };
        let id = &self.wf.steps[key.step].id;
        let seed = format!("{}/{id}/{item}/{}/{round}/{undo}", self.run_id, key.attempt);
        crate::base::ids::derived_run_id(started.unwrap_or(self.started_at), &seed)
    }

    /// How an attempt of a `workflow.run` step starts, from its rendered input
    /// (`{workflow, input}`): a child run, or a failure when none can start.
    pub(crate) fn child_start(&self, key: AttemptKey, input: Json, timeout_ms: Option<u64>) -> Start {
        let Some(workflow) = input.get("workflow").and_then(Json::as_str).map(str::to_owned) else {
            return Start::Fail(ActionError::new("invalid_input", "workflow.run needs `workflow`: a workflow's name"));
        };
        let depth = self.parent.as_ref().map_or(0, |p| p.depth) + 1;
        if depth > MAX_CALL_DEPTH {
            let message = format!(
                "workflow `{}` calls `{workflow}` {depth} runs deep; workflows may call each other at most {MAX_CALL_DEPTH} deep",
                self.wf.name
            );
            return Start::Fail(ActionError::new("too_deep", message));
        }
        let parent = ParentLink { run_id: self.run_id.clone(), step: self.wf.steps[key.step].id.clone(), depth };
        let input = input.get("input").cloned().unwrap_or_else(|| json!({}));
        let run_id = self.child_run_id(key);
        let prefix = format!("{}/", parent.step);
        let inject = self
            .inject
            .iter()
            .filter_map(|i| Some(Injection { step: i.step.strip_prefix(&prefix)?.to_owned(), ..i.clone() }))
            .collect();
        Start::Child(Box::new(ChildStart { run_id, workflow, input, parent, timeout_ms, inject }))
    }

    /// The child run a unit's last attempt started, if it started one.
    pub(crate) fn child_of(&self, s: usize, item: Item) -> Option<String> {
        let unit = self.unit(s, item)?;
        let is_child = self.wf.steps[s].kind == super::compiled::StepKind::Child;
        (is_child && unit.attempts > 0)
            .then(|| self.child_run_id(AttemptKey { compensation: false, step: s, item, attempt: unit.attempts }))
    }

    /// The child runs its running `workflow.run` steps wait for.
    pub(crate) fn running_children(&self) -> Vec<String> {
        let is_child = |s: usize| self.wf.steps[s].kind == super::compiled::StepKind::Child;
        self.in_flight()
            .into_iter()
            .filter(|&(s, ..)| is_child(s))
            .filter_map(|(s, item, _)| self.child_of(s, item))
            .collect()
    }

    /// The undoing of a succeeded `workflow.run` unit: its child, compensated.
    pub(crate) fn undo_child(&self, s: usize, item: Item) -> Start {
        match self.child_of(s, item) {
            Some(run_id) => Start::UndoChild { run_id },
            None => Start::Fail(ActionError::new("failed", "the step started no child run to undo")),
        }
    }
}

/// The data of the event a child's end is told by.
pub(crate) fn end_data(state: &RunState, status: RunStatus, output: Option<&Json>) -> Json {
    let error = state.error.as_ref().map(|e| json!({ "code": e.code, "message": e.message }));
    json!({
        "run_id": state.run_id,
        "workflow": state.wf.name,
        "status": status,
        "output": output.cloned().unwrap_or(Json::Null),
        "error": error,
        "parent": state.parent.as_ref().map(|p| json!({ "run_id": p.run_id, "step": p.step })),
    })
}

/// The event a child run's end commits with it, to tell its parent (none
/// for a run without one): `run.finished`, or `run.undone` after an undo.
pub(crate) fn end_event(state: &RunState, entry: &Entry) -> Option<EventRecord> {
    let (Some(_), Entry::RunFinished { status, output, at }) = (&state.parent, entry) else { return None };
    let kind = if state.undone { UNDONE } else { FINISHED };
    let data = end_data(state, *status, output.as_ref());
    Some(EventRecord {
        id: format!("{}:{kind}", state.run_id),
        kind: kind.to_owned(),
        key: state.run_id.clone(),
        data,
        at: *at,
        traceparent: None,
    })
}

/// What a child's end (the data of its `run.finished`) is to the step that
/// waits for it: the child's output, or its error with its code.
pub(crate) fn child_outcome(data: &Json) -> Outcome {
    let status = data["status"].as_str().unwrap_or_default();
    if status == RunStatus::Succeeded.as_str() {
        let output = data["output"].clone();
        if super::driver::longer_than(&output, super::driver::MAX_OUTPUT_BYTES) {
            let message = format!(
                "the child run {} gave more than {} KiB of output, the most a step may keep",
                data["run_id"].as_str().unwrap_or_default(),
                super::driver::MAX_OUTPUT_BYTES / 1024
            );
            return Outcome::Err(ActionError::new("too_large", message));
        }
        return Outcome::Ok(output);
    }
    let code = data["error"]["code"].as_str().unwrap_or("failed");
    let message = format!(
        "the child run {} of `{}` ended {status}: {}",
        data["run_id"].as_str().unwrap_or_default(),
        data["workflow"].as_str().unwrap_or_default(),
        data["error"]["message"].as_str().unwrap_or_default()
    );
    Outcome::Err(ActionError::new(code, message))
}

/// What the end of a child's undoing (the data of its `run.undone`) is to
/// the compensation that asked for it.
pub(crate) fn undo_outcome(data: &Json) -> Outcome {
    let status = data["status"].as_str().unwrap_or_default();
    let run_id = data["run_id"].as_str().unwrap_or_default();
    if status == RunStatus::Compensated.as_str() {
        return Outcome::Ok(json!({ "run_id": run_id, "status": status }));
    }
    let message = format!("the child run {run_id} could not be undone: it ended {status}");
    Outcome::Err(ActionError::new("compensation_failed", message))
}
