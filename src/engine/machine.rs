//! A run as a deterministic state machine: [`RunState::apply`] folds journal
//! entries into state; [`RunState::decide`] says what happens next, as new
//! entries. Neither does I/O or reads a clock: time and randomness come in
//! through [`Decide`]. Replaying a journal gives the same state as living it.
//!
//! | phase       | entry                                        | becomes                                        |
//! |-------------|----------------------------------------------|------------------------------------------------|
//! | forward     | RunStarted                                   | input checked; steps pending                   |
//! | forward     | InputRejected                                | done: `failed`, code `schema`                  |
//! | forward     | StepSkipped / StepItems                      | step skipped / step's units created            |
//! | forward     | AttemptStarted                               | unit running, attempt counted                  |
//! | forward     | AttemptFinished ok                           | unit succeeded (completion order kept)         |
//! | forward     | AttemptFinished err, retryable               | unit retrying                                  |
//! | forward     | RetryScheduled, then RetryDue                | the backoff's end set; then the unit pending   |
//! | forward     | AttemptFinished ok, `until` false            | unit repeating: its next round due `every` on  |
//! | forward     | RoundDue                                     | the next round: the unit pending, attempts 0   |
//! | forward     | AttemptFinished err, final                   | unit failed; `on_error: fail` starts roll-back |
//! | forward     | StepFailed / OutputFailed                    | roll-back (template errors)                    |
//! | forward     | RunTimedOut / CancelRequested                | roll-back                                      |
//! | roll-back   | (units in flight)                            | wait: the driver cancels them                  |
//! | roll-back   | CompensationStarted / CompensationFinished   | one at a time, reverse completion order        |
//! | roll-back   | CompensationRetryScheduled, then CompensationRetryDue | a compensation's backoff              |
//! | roll-back   | (compensations done)                         | `on_failure` steps run, then the run finishes  |
//! | forward     | AttemptFinished err, final, `on_error: pause`| unit paused: the run waits for an operator     |
//! | forward     | Operator (retry / skip)                      | the paused unit pending again / succeeded      |
//! | forward     | Operator (abort)                             | roll-back, as the failure would have made it   |
//! | done        | UndoRequested (a succeeded child run)        | roll-back of its steps, then `compensated`     |
//! | any         | RunFinished                                  | done                                           |
//!
//! A test holds this table to the code: it names every kind of entry, and
//! only those. Entries from outside (an attempt's end, a timer) are journaled
//! only when [`RunState::accepts`] them.

use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::compiled::{CompiledStep, CompiledWorkflow, StepKind};
use super::from_data::Round;
use super::template::{RenderFailure, ValueTemplate};
use super::wanted::AttemptKey;
use crate::dsl::model::{Retry, RetryPolicies, Section};
use crate::journal::entry::{ActionError, Entry, Item, Outcome};
use crate::journal::status::RunStatus;
pub(crate) use crate::journal::status::{StepStatus, UnitStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Forward,
    RollingBack,
    Done,
}

/// How an attempt's end left its unit.
enum Ended {
    Succeeded,
    Retrying,
    Failed(ActionError),
}

/// One attempt-bearing unit: a step, or one item of a `for_each` step.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    pub status: UnitStatus,
    pub attempts: u32,
    pub output: Option<Json>,
    pub error: Option<ActionError>,
    pub retry_due: Option<u64>,
    pub started_at: Option<u64>,
    pub finished_at: Option<u64>,
    /// Its place among the units of the run by the start of their first attempt, from 1.
    pub first_start: Option<u32>,
    /// How many of its attempts failed with an error each retry policy
    /// handled, by the policy's place (DSL.md A4: each counts its own).
    pub handled: Vec<u32>,
    /// Its round, from 1, for a `repeat` step (0 before its first attempt).
    pub round: u32,
    /// When its next round is due, while it is `repeating`.
    pub next_round: Option<u64>,
    /// A `workflow.run` unit whose child had nothing to undo: it is left as it
    /// is, like a step without `compensate`.
    pub nothing_to_undo: bool,
    /// The `with` an operator gave when retrying it, instead of the step's.
    pub with: Option<Json>,
    /// When its current (or last) attempt started.
    pub attempt_at: Option<u64>,
    /// An operator skipped it, giving its output.
    pub skipped: bool,
    pub compensation: Option<Box<Unit>>,
}

impl Unit {
    fn new() -> Unit {
        Unit {
            status: UnitStatus::Pending,
            attempts: 0,
            output: None,
            error: None,
            retry_due: None,
            started_at: None,
            finished_at: None,
            first_start: None,
            handled: Vec::new(),
            round: 0,
            next_round: None,
            nothing_to_undo: false,
            with: None,
            attempt_at: None,
            skipped: false,
            compensation: None,
        }
    }

    /// A round ended without its condition: the next is due at `due`; the
    /// round's output stays the unit's until another replaces it.
    fn repeat_at(&mut self, output: &Json, due: u64) {
        self.status = UnitStatus::Repeating;
        self.output = Some(output.clone());
        self.error = None;
        self.next_round = Some(due);
    }

    /// The next round begins: a full call again, its attempts counted afresh.
    fn next_round(&mut self) {
        if self.status == UnitStatus::Repeating {
            self.status = UnitStatus::Pending;
            self.round += 1;
            self.attempts = 0;
            self.handled.clear();
            self.next_round = None;
        }
    }

    fn done(&self) -> bool {
        matches!(self.status, UnitStatus::Succeeded | UnitStatus::Failed)
    }

    /// An attempt of the unit (or of its compensation) started.
    fn start(&mut self, attempt: u32, at: u64) {
        self.status = UnitStatus::Running;
        self.attempts = attempt;
        self.round = self.round.max(1);
        self.started_at.get_or_insert(at);
        self.attempt_at = Some(at);
    }

    /// The end of attempt `attempt`, if it is the one running, under retry
    /// `policies` (none: never retried). The same for a step's units and for
    /// compensations: what differs is the caller's.
    fn finish(&mut self, attempt: u32, outcome: &Outcome, at: u64, policies: Option<&RetryPolicies>) -> Option<Ended> {
        if self.status != UnitStatus::Running || self.attempts != attempt {
            return None;
        }
        let e = match outcome {
            Outcome::Ok(output) => {
                self.status = UnitStatus::Succeeded;
                self.output = Some(output.clone());
                self.error = None;
                self.finished_at = Some(at);
                return Some(Ended::Succeeded);
            }
            Outcome::Err(e) => e,
        };
        self.error = Some(e.clone());
        let first = self.started_at.unwrap_or(at);
        let again = match policies.and_then(|p| p.handling(&e.code)) {
            Some((i, policy)) => {
                if self.handled.len() <= i {
                    self.handled.resize(i + 1, 0);
                }
                self.handled[i] += 1;
                may_retry(policy, e, self.handled[i], first, at)
            }
            None => false,
        };
        if again {
            self.status = UnitStatus::Retrying;
            return Some(Ended::Retrying);
        }
        self.status = UnitStatus::Failed;
        self.finished_at = Some(at);
        Some(Ended::Failed(e.clone()))
    }

    /// A retry's backoff is over: the unit goes to `then` (pending again, or
    /// failed for good when the run no longer goes forward).
    fn retry_came(&mut self, then: UnitStatus) {
        if self.status == UnitStatus::Retrying {
            self.retry_due = None;
            self.status = then;
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StepState {
    pub status: StepStatus,
    /// One unit, or one per `for_each` item.
    pub units: Vec<Unit>,
    /// The `for_each` items, rendered when the step started.
    pub items: Vec<Json>,
    /// An error of the step itself (a template), not of an attempt.
    pub error: Option<ActionError>,
}

/// The error that ended the run's forward progress.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunError {
    pub step: Option<String>,
    pub code: crate::base::error::ErrorCode,
    pub message: String,
}

/// Why a cancel was not taken.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CancelRefused {
    /// The run has ended, with this status.
    Ended(RunStatus),
    /// The run is already rolling back.
    RollingBack,
    /// Every forward step has ended: the run finishes as it would have.
    StepsEnded,
    /// No run has that id.
    Unknown,
    /// The engine stopped (or its store cannot be read) before it could judge.
    Stopped,
}

impl std::fmt::Display for CancelRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CancelRefused::Ended(status) => write!(f, "the run has ended ({status}); there is nothing to cancel"),
            CancelRefused::RollingBack => f.write_str("the run is already rolling back"),
            CancelRefused::StepsEnded => f.write_str(
                "every step of the run has ended, so it finishes as it would have; it can no longer be cancelled",
            ),
            CancelRefused::Unknown => f.write_str("there is no such run"),
            CancelRefused::Stopped => f.write_str("the engine could not take the cancel now; try again"),
        }
    }
}

/// What `decide` may read from the world: the time and a source of jitter.
pub(crate) struct Decide<'a> {
    pub now: u64,
    /// A number in [0, 1) for each jittered wait.
    pub random: &'a mut dyn FnMut() -> f64,
}

pub(crate) struct RunState {
    pub run_id: String,
    pub wf: Arc<CompiledWorkflow>,
    pub input: Json,
    pub started_at: u64,
    pub deadline: Option<u64>,
    pub finished_at: Option<u64>,
    pub phase: Phase,
    pub input_error: Option<ActionError>,
    pub error: Option<RunError>,
    pub output: Option<Json>,
    pub status: Option<RunStatus>,
    pub steps: Vec<StepState>,
    /// Units that ended having started an attempt (succeeded, or failed: by
    /// their action, or cancelled by a roll-back), in the order they did;
    /// units that ended by one entry, in the order they started. The
    /// compensations run in the reverse of this order (DSL.md A1).
    pub ended: Vec<(usize, Item)>,
    /// How many units have started a first attempt.
    pub starts: u32,
    /// Compensations in the order they started.
    pub compensations: Vec<(usize, Item)>,
    /// Failures injected into this run (`--fail`).
    pub inject: Vec<crate::journal::injection::Injection>,
    /// The values of the secrets its workflow reads (`{{secrets.X}}`), given
    /// to it: the fold never reads the environment, so a replay decides as
    /// the run did wherever it is given the same values.
    pub secrets: Arc<std::collections::BTreeMap<String, String>>,
    /// The run and step that started this run, when a `workflow.run` did.
    pub parent: Option<crate::journal::entry::ParentLink>,
    /// A succeeded run its parent undoes: it compensates, and runs no
    /// `on_failure` or `finally` (they ran, or had nothing to do, when it succeeded).
    pub undone: bool,
    /// An operator retries the failed compensations of a finished run: only
    /// they run again (its `on_failure` and `finally` ran already).
    pub compensating_again: bool,
    /// The runs started again from this one (`rerun`), and the one it reruns.
    pub reruns: Vec<String>,
    pub rerun_of: Option<String>,
    /// The trace it was started in, if it was (`traceparent`, or its parent's attempt).
    pub trace: Option<crate::base::trace::TraceParent>,
}

fn unit_index(item: Item) -> usize {
    item.unwrap_or(0)
}

impl RunState {
    pub(crate) fn new(run_id: impl Into<String>, wf: Arc<CompiledWorkflow>) -> RunState {
        let steps = wf
            .steps
            .iter()
            .map(|_| StepState { status: StepStatus::Pending, units: Vec::new(), items: Vec::new(), error: None })
            .collect();
        RunState {
            run_id: run_id.into(),
            wf,
            input: Json::Null,
            started_at: 0,
            deadline: None,
            finished_at: None,
            phase: Phase::Forward,
            input_error: None,
            error: None,
            output: None,
            status: None,
            steps,
            ended: Vec::new(),
            starts: 0,
            compensations: Vec::new(),
            inject: Vec::new(),
            secrets: Arc::default(),
            parent: None,
            undone: false,
            compensating_again: false,
            reruns: Vec::new(),
            rerun_of: None,
            trace: None,
        }
    }

    /// A run's state rebuilt from its journal: the fold of its entries.
    #[cfg(test)]
    pub(crate) fn replayed(run_id: impl Into<String>, wf: Arc<CompiledWorkflow>, entries: &[Entry]) -> RunState {
        RunState::replayed_with(run_id, wf, entries, Arc::default())
    }

    /// The same, with the values of the secrets its workflow reads.
    pub(crate) fn replayed_with(
        run_id: impl Into<String>,
        wf: Arc<CompiledWorkflow>,
        entries: &[Entry],
        secrets: Arc<std::collections::BTreeMap<String, String>>,
    ) -> RunState {
        let mut state = RunState::new(run_id, wf);
        state.secrets = secrets;
        for entry in entries {
            state.apply(entry);
        }
        state
    }

    pub(super) fn unit_mut(&mut self, step: usize, item: Item) -> Option<&mut Unit> {
        self.steps.get_mut(step)?.units.get_mut(unit_index(item))
    }

    pub(crate) fn unit(&self, step: usize, item: Item) -> Option<&Unit> {
        self.steps.get(step)?.units.get(unit_index(item))
    }

    /// Whether an entry from outside the machine (an attempt's end, a timer
    /// that fired) still changes the run: the driver journals only those, so
    /// the journal never holds an entry that changed nothing (a late end of a
    /// cancelled attempt, a timer of a unit that moved on).
    pub(crate) fn accepts(&self, entry: &Entry) -> bool {
        let running = |u: Option<&Unit>, attempt: u32| {
            u.is_some_and(|u| u.status == UnitStatus::Running && u.attempts == attempt)
        };
        let retrying = |u: Option<&Unit>| u.is_some_and(|u| u.status == UnitStatus::Retrying);
        let compensation = |step: usize, item: Item| self.unit(step, item).and_then(|u| u.compensation.as_deref());
        match entry {
            Entry::AttemptFinished { step, item, attempt, .. } => running(self.unit(*step, *item), *attempt),
            Entry::CompensationFinished { step, item, attempt, .. } => running(compensation(*step, *item), *attempt),
            Entry::RetryDue { step, item } => retrying(self.unit(*step, *item)),
            Entry::RoundDue { step, item } => {
                self.phase == Phase::Forward
                    && self.unit(*step, *item).is_some_and(|u| u.status == UnitStatus::Repeating)
            }
            Entry::CompensationRetryDue { step, item } => retrying(compensation(*step, *item)),
            Entry::RunTimedOut { .. } => self.phase == Phase::Forward,
            Entry::CancelRequested { .. } => self.cancellable().is_ok(),
            Entry::UndoRequested { .. } => self.phase == Phase::Done && self.status == Some(RunStatus::Succeeded),
            Entry::Operator { action, .. } => self.takes(action),
            _ => self.phase != Phase::Done,
        }
    }

    /// Folds one entry into the state. Entries that do not fit (stale) are ignored.
    pub(crate) fn apply(&mut self, entry: &Entry) {
        match entry {
            Entry::RunStarted { input, at, deadline, inject, parent, rerun_of, trace, .. } => {
                self.trace = *trace;
                self.parent = parent.clone();
                self.rerun_of = rerun_of.clone();
                self.input = input.clone();
                self.inject = inject.clone();
                self.started_at = *at;
                self.deadline = *deadline;
                self.input_error = self.check_input();
            }
            Entry::InputRejected { error, .. } => {
                self.error = Some(RunError { step: None, code: error.code.clone(), message: error.message.clone() });
                self.phase = Phase::RollingBack;
            }
            Entry::StepSkipped { step } => self.set_step_status(*step, StepStatus::Skipped),
            Entry::StepItems { step, count } => self.start_items(*step, *count),
            Entry::StepFailed { step, error } => self.fail_step(*step, error.clone()),
            Entry::AttemptStarted { step, item, attempt, at } => {
                if let Some(s) = self.steps.get_mut(*step) {
                    if s.units.is_empty() {
                        s.units.push(Unit::new());
                    }
                    s.status = StepStatus::Running;
                }
                let order = self.starts + 1;
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.start(*attempt, *at);
                    if u.first_start.is_none() {
                        u.first_start = Some(order);
                        self.starts = order;
                    }
                }
            }
            Entry::AttemptFinished { step, item, attempt, outcome, at } => {
                self.attempt_finished(*step, *item, *attempt, outcome, *at)
            }
            Entry::RetryScheduled { step, item, due } => {
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.retry_due = Some(*due);
                }
            }
            Entry::RetryDue { step, item } => {
                let then = if self.phase == Phase::Forward { UnitStatus::Pending } else { UnitStatus::Failed };
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.retry_came(then);
                }
            }
            Entry::RoundDue { step, item } => {
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.next_round();
                }
            }
            Entry::OutputFailed { error } => self.roll_back(None, error.clone(), Vec::new()),
            Entry::RunTimedOut { .. } => {
                let message = format!(
                    "the run passed its timeout of {}",
                    crate::dsl::duration::Duration(self.wf.timeout_ms.unwrap_or(0))
                );
                self.roll_back(None, ActionError::new("timeout", message), Vec::new());
            }
            Entry::CancelRequested { .. } => {
                self.roll_back(None, ActionError::new("cancelled", "the run was cancelled"), Vec::new());
            }
            Entry::CompensationStarted { step, item, attempt, at } => {
                if !self.compensations.contains(&(*step, *item)) {
                    self.compensations.push((*step, *item));
                }
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.compensation.get_or_insert_with(|| Box::new(Unit::new())).start(*attempt, *at);
                }
            }
            Entry::CompensationFinished { step, item, attempt, outcome, at } => {
                self.compensation_finished(*step, *item, *attempt, outcome, *at)
            }
            Entry::CompensationRetryScheduled { step, item, due } => {
                if let Some(c) = self.unit_mut(*step, *item).and_then(|u| u.compensation.as_mut()) {
                    c.retry_due = Some(*due);
                }
            }
            Entry::CompensationRetryDue { step, item } => {
                if let Some(c) = self.unit_mut(*step, *item).and_then(|u| u.compensation.as_mut()) {
                    c.retry_came(UnitStatus::Pending);
                }
            }
            Entry::Operator { action, at, .. } => self.operated(action, *at),
            Entry::UndoRequested { .. } => {
                if self.phase == Phase::Done && self.status == Some(RunStatus::Succeeded) {
                    self.phase = Phase::RollingBack;
                    self.undone = true;
                    self.status = None;
                    self.finished_at = None;
                    self.error = Some(RunError {
                        step: None,
                        code: crate::base::error::ErrorCode::Cancelled,
                        message: "the parent run rolled back, and undoes this run".to_owned(),
                    });
                }
            }
            Entry::RunFinished { status, output, at } => {
                self.phase = Phase::Done;
                self.status = Some(*status);
                self.output = output.clone();
                self.finished_at = Some(*at);
            }
        }
    }

    /// The injected failure of this attempt, if one is injected.
    /// The failure injected into this attempt, if any (`--fail`).
    pub(crate) fn injected(
        &self,
        step: usize,
        compensation: bool,
        attempt: u32,
    ) -> Option<&crate::journal::injection::Injection> {
        let id = &self.wf.steps.get(step)?.id;
        self.inject.iter().find(|i| i.applies(id, compensation, attempt))
    }

    fn check_input(&self) -> Option<ActionError> {
        self.wf.check_input(&self.input)
    }

    fn set_step_status(&mut self, step: usize, status: StepStatus) {
        if let Some(s) = self.steps.get_mut(step) {
            s.status = status;
        }
    }

    fn start_items(&mut self, step: usize, count: usize) {
        let items = match self.render_for_each(step) {
            Ok(Json::Array(items)) => items,
            _ => Vec::new(),
        };
        let Some(s) = self.steps.get_mut(step) else { return };
        s.units = (0..count).map(|_| Unit::new()).collect();
        s.items = items;
        s.status = if count == 0 { StepStatus::Succeeded } else { StepStatus::Running };
    }

    fn fail_step(&mut self, step: usize, error: ActionError) {
        let Some(s) = self.steps.get_mut(step) else { return };
        s.status = StepStatus::Failed;
        s.error = Some(error.clone());
        let def = &self.wf.steps[step];
        if !def.on_error.continues(error.code.as_str()) && def.section == Section::Steps {
            self.roll_back(Some(step), error, Vec::new());
        }
    }

    fn attempt_finished(&mut self, step: usize, item: Item, attempt: u32, outcome: &Outcome, at: u64) {
        let forward = self.phase == Phase::Forward;
        let running = self.unit(step, item).is_some_and(|u| u.status == UnitStatus::Running && u.attempts == attempt);
        if !running {
            return;
        }
        let wf = self.wf.clone();
        let def = &wf.steps[step];
        let mut ended = std::borrow::Cow::Borrowed(outcome);
        let mut policies = None;
        match outcome {
            Outcome::Ok(output) if forward => match self.round_ended(step, item, output, at) {
                Round::Done => {}
                Round::Again { due } => {
                    if let Some(u) = self.unit_mut(step, item) {
                        u.repeat_at(output, due);
                    }
                    return;
                }
                Round::Fail(e) => ended = std::borrow::Cow::Owned(Outcome::Err(e)),
            },
            // A `fail` step says what is wrong: trying again changes nothing.
            Outcome::Err(_) if forward && def.kind != StepKind::Fail => match self.retry_policies(step, item) {
                Ok(p) => policies = Some(p.into_owned()),
                Err(e) => ended = std::borrow::Cow::Owned(Outcome::Err(e)),
            },
            _ => {}
        }
        let Some(u) = self.unit_mut(step, item) else { return };
        match u.finish(attempt, &ended, at, policies.as_ref()) {
            None => return,
            Some(Ended::Succeeded) => self.end_together(vec![(step, item)]),
            Some(Ended::Retrying) => {}
            Some(Ended::Failed(e))
                if forward && def.on_error.pauses(e.code.as_str()) && def.section == Section::Steps =>
            {
                // Not ended: it waits for an operator (DSL.md C1).
                if let Some(u) = self.unit_mut(step, item) {
                    u.status = UnitStatus::Paused;
                    u.finished_at = None;
                }
                return;
            }
            Some(Ended::Failed(e)) => {
                // The step's error is the first failure that ended one of its units.
                self.steps[step].error.get_or_insert_with(|| e.clone());
                let def = &self.wf.steps[step];
                if forward && !def.on_error.continues(e.code.as_str()) && def.section == Section::Steps {
                    self.roll_back(Some(step), e, vec![(step, item)]);
                } else {
                    self.end_together(vec![(step, item)]);
                }
            }
        }
        self.settle_step(step);
    }

    /// A step whose units are all done is succeeded, or failed if any failed.
    pub(super) fn settle_step(&mut self, step: usize) {
        let Some(s) = self.steps.get_mut(step) else { return };
        // A step with no units yet has not started (an empty `for_each` settles in StepItems).
        if !s.units.is_empty() && s.units.iter().all(Unit::done) {
            s.status = if s.units.iter().all(|u| u.status == UnitStatus::Succeeded) {
                StepStatus::Succeeded
            } else {
                StepStatus::Failed
            };
        }
    }

    /// Units that ended by one entry join [`RunState::ended`] in the order they started.
    pub(super) fn end_together(&mut self, mut units: Vec<(usize, Item)>) {
        units.sort_by_key(|&(s, item)| self.unit(s, item).and_then(|u| u.first_start).unwrap_or(u32::MAX));
        self.ended.extend(units);
    }

    /// The run turns back. `ending`: the unit whose failure turns it, which
    /// ends at the same moment as the units the roll-back cuts short.
    pub(super) fn roll_back(&mut self, step: Option<usize>, error: ActionError, mut ending: Vec<(usize, Item)>) {
        if self.phase != Phase::Forward {
            self.end_together(ending);
            return;
        }
        self.phase = Phase::RollingBack;
        self.error = Some(RunError {
            step: step.map(|s| self.wf.steps[s].id.clone()),
            code: error.code,
            message: error.message,
        });
        // Units waiting to retry or to start will not: the run is going back.
        for s in 0..self.steps.len() {
            let for_each = self.wf.steps[s].for_each.is_some();
            for (i, u) in self.steps[s].units.iter_mut().enumerate() {
                let waiting = matches!(u.status, UnitStatus::Retrying | UnitStatus::Pending | UnitStatus::Repeating);
                if waiting || u.status == UnitStatus::Paused {
                    if u.attempts > 0 || matches!(u.status, UnitStatus::Repeating | UnitStatus::Paused) {
                        ending.push((s, for_each.then_some(i)));
                    }
                    u.status = UnitStatus::Failed;
                    u.error.get_or_insert(ActionError::new("cancelled", "the run rolled back before this ran"));
                    u.retry_due = None;
                    u.next_round = None;
                }
            }
            self.settle_step(s);
        }
        self.end_together(ending);
    }

    fn compensation_finished(&mut self, step: usize, item: Item, attempt: u32, outcome: &Outcome, at: u64) {
        let wf = self.wf.clone();
        let Some(def) = wf.steps[step].compensate.as_ref() else { return };
        if def.kind == StepKind::UndoChild && super::child::had_nothing_to_undo(outcome) {
            // The child had nothing to compensate: the step stays as it is.
            if let Some(u) = self.unit_mut(step, item) {
                u.nothing_to_undo = true;
                u.compensation = None;
            }
            self.compensations.retain(|&c| c != (step, item));
            return;
        }
        if let Some(c) = self.unit_mut(step, item).and_then(|u| u.compensation.as_mut()) {
            c.finish(attempt, outcome, at, Some(&def.retry));
        }
    }

    /// The units to compensate, in the order they will be: reverse completion.
    pub(crate) fn compensation_queue(&self) -> Vec<(usize, Item)> {
        self.ended.iter().rev().filter(|&&(s, item)| self.to_undo(s, item)).copied().collect()
    }

    /// Whether a unit that ended is undone in a roll-back: it succeeded, or it
    /// failed after an attempt started and its `compensate` says `also_when_failed`.
    fn to_undo(&self, s: usize, item: Item) -> bool {
        let def = &self.wf.steps[s];
        let (Some(c), Some(u)) = (&def.compensate, self.unit(s, item)) else { return false };
        def.section == Section::Steps
            && match u.status {
                UnitStatus::Succeeded => !u.nothing_to_undo,
                UnitStatus::Failed => c.also_when_failed && u.attempts > 0,
                _ => false,
            }
    }

    /// Whether a roll-back of this run would compensate anything (a parent
    /// asks before it undoes it as a child).
    pub(crate) fn anything_to_undo(&self) -> bool {
        self.ended.iter().any(|&(s, item)| self.to_undo(s, item))
    }

    /// Units whose action is under way (the driver runs them, again after a restart).
    pub(crate) fn in_flight(&self) -> Vec<(usize, Item, u32)> {
        let mut out = Vec::new();
        for (s, step) in self.steps.iter().enumerate() {
            let for_each = self.wf.steps[s].for_each.is_some();
            for (i, u) in step.units.iter().enumerate() {
                if u.status == UnitStatus::Running {
                    out.push((s, for_each.then_some(i), u.attempts));
                }
            }
        }
        out
    }

    /// The compensation under way, if any.
    pub(crate) fn compensation_in_flight(&self) -> Option<(usize, Item, u32)> {
        self.compensation_queue().into_iter().find_map(|(s, item)| {
            let c = self.unit(s, item)?.compensation.as_ref()?;
            (c.status == UnitStatus::Running).then_some((s, item, c.attempts))
        })
    }

    /// Whether a step waits inside the engine (`sleep`, `event.wait`) rather than
    /// calling an action: it holds no task, and its end comes from a timer or an event.
    pub(crate) fn is_wait_step(&self, s: usize) -> bool {
        matches!(self.wf.steps[s].kind, StepKind::Sleep | StepKind::Wait | StepKind::Child)
    }

    /// The event type and key an `event.wait` unit waits for.
    pub(crate) fn awaited_event(&self, s: usize, item: Item) -> Result<(String, String), ActionError> {
        let input = self.attempt_input(s, item)?;
        let kind = input
            .get("type")
            .and_then(Json::as_str)
            .ok_or_else(|| ActionError::new("invalid_input", "event.wait needs a `type`"))?;
        Ok((kind.to_owned(), event_key(input.get("key"))))
    }

    /// When a sleeping unit's attempt ends, and how: woken, or past its timeout.
    pub(crate) fn sleep_end(&self, s: usize, item: Item) -> Result<(u64, Outcome), ActionError> {
        let unit = self.unit(s, item).ok_or_else(|| ActionError::new("failed", "no such unit"))?;
        let started = unit.started_at.unwrap_or(self.started_at);
        let due = crate::actions::sleep::wake_at(&self.attempt_input(s, item)?, started)?;
        match self.attempt_timeout(s, item)?.map(|t| started.saturating_add(t)) {
            Some(limit) if limit < due => {
                let message = format!(
                    "the sleep runs past the step's timeout of {}",
                    crate::dsl::duration::Duration(limit - started)
                );
                Ok((limit, Outcome::Err(ActionError::new("timeout", message))))
            }
            _ => Ok((due, Outcome::Ok(crate::actions::sleep::woke(due)))),
        }
    }

    /// Timers the run waits on: (due, entry to journal when due).
    pub(crate) fn timers(&self) -> Vec<(u64, Entry)> {
        let mut out = Vec::new();
        if let (Phase::Forward, Some(deadline)) = (self.phase, self.deadline) {
            out.push((deadline, Entry::RunTimedOut { at: deadline }));
        }
        for (s, item, attempt) in self.in_flight() {
            match self.wf.steps[s].kind {
                StepKind::Sleep => {
                    if let Ok((due, outcome)) = self.sleep_end(s, item) {
                        out.push((due, Entry::AttemptFinished { step: s, item, attempt, outcome, at: due }));
                    }
                }
                StepKind::Wait => {
                    let started = self.unit(s, item).and_then(|u| u.started_at).unwrap_or(self.started_at);
                    if let Ok(Some(timeout)) = self.attempt_timeout(s, item) {
                        let due = started.saturating_add(timeout);
                        let message = format!("no event came within {}", crate::dsl::duration::Duration(timeout));
                        let outcome = Outcome::Err(ActionError::new("timeout", message));
                        out.push((due, Entry::AttemptFinished { step: s, item, attempt, outcome, at: due }));
                    }
                }
                _ => {}
            }
        }
        for (s, step) in self.steps.iter().enumerate() {
            let for_each = self.wf.steps[s].for_each.is_some();
            for (i, u) in step.units.iter().enumerate() {
                let item = for_each.then_some(i);
                if let (UnitStatus::Retrying, Some(due)) = (u.status, u.retry_due) {
                    out.push((due, Entry::RetryDue { step: s, item }));
                }
                if let (UnitStatus::Repeating, Some(due)) = (u.status, u.next_round) {
                    out.push((due, Entry::RoundDue { step: s, item }));
                }
                if let Some(c) = &u.compensation {
                    if let (UnitStatus::Retrying, Some(due)) = (c.status, c.retry_due) {
                        out.push((due, Entry::CompensationRetryDue { step: s, item }));
                    }
                }
            }
        }
        out
    }

    /// What happens next, as entries to journal and apply in order. Call again
    /// after applying them until it returns nothing.
    pub(crate) fn decide(&self, d: &mut Decide) -> Vec<Entry> {
        match self.phase {
            Phase::Done => Vec::new(),
            Phase::Forward => self.decide_forward(d),
            Phase::RollingBack => self.decide_roll_back(d),
        }
    }

    fn decide_forward(&self, d: &mut Decide) -> Vec<Entry> {
        if let Some(error) = &self.input_error {
            return vec![Entry::InputRejected { error: error.clone(), at: d.now }];
        }
        let out = self.schedule_section(Section::Steps, d);
        if !out.is_empty() || !self.section_done(Section::Steps) {
            return out;
        }
        match self.render_output() {
            Ok(output) => {
                let now = d.now;
                self.finally_then(d, || Entry::RunFinished { status: RunStatus::Succeeded, output, at: now })
            }
            Err(f) => vec![Entry::OutputFailed {
                error: ActionError::new(
                    "template",
                    format!("the workflow's `{}` cannot be rendered: {}", f.field, f.message),
                ),
            }],
        }
    }

    /// The `finally` steps to start (DSL.md A3); once they have all ended, `end`.
    fn finally_then(&self, d: &mut Decide, end: impl FnOnce() -> Entry) -> Vec<Entry> {
        let out = self.schedule_section(Section::Finally, d);
        if out.is_empty() && self.section_done(Section::Finally) {
            return vec![end()];
        }
        out
    }

    /// The status the run ends with, as `finally` steps see it (`run.status`).
    fn ending_status(&self) -> RunStatus {
        match (self.phase, &self.error) {
            (Phase::Forward, None) => RunStatus::Succeeded,
            _ => self.final_status(),
        }
    }

    fn decide_roll_back(&self, d: &mut Decide) -> Vec<Entry> {
        if self.input_error.is_some() {
            // Rejected at its input: no step runs, `on_failure` included.
            return vec![Entry::RunFinished { status: RunStatus::Failed, output: None, at: d.now }];
        }
        if !self.in_flight().is_empty() {
            return Vec::new();
        }
        if let Some(entry) = self.next_compensation(d) {
            return vec![entry];
        }
        // A compensation running is not done, so it is pending too.
        if self.compensation_pending() {
            return Vec::new();
        }
        if self.undone || self.compensating_again {
            return vec![Entry::RunFinished { status: self.final_status(), output: None, at: d.now }];
        }
        let out = self.schedule_section(Section::OnFailure, d);
        if out.is_empty() && self.section_done(Section::OnFailure) {
            let now = d.now;
            return self.finally_then(d, || Entry::RunFinished { status: self.final_status(), output: None, at: now });
        }
        out
    }

    fn compensation_pending(&self) -> bool {
        self.compensation_queue()
            .into_iter()
            .any(|(s, item)| self.unit(s, item).and_then(|u| u.compensation.as_ref()).is_none_or(|c| !c.done()))
    }

    /// The next compensation step to take, one at a time in queue order.
    fn next_compensation(&self, d: &mut Decide) -> Option<Entry> {
        for (s, item) in self.compensation_queue() {
            let unit = self.unit(s, item)?;
            let Some(c) = &unit.compensation else {
                return Some(Entry::CompensationStarted { step: s, item, attempt: 1, at: d.now });
            };
            match c.status {
                UnitStatus::Succeeded | UnitStatus::Failed => continue,
                UnitStatus::Pending => {
                    return Some(Entry::CompensationStarted { step: s, item, attempt: c.attempts + 1, at: d.now })
                }
                UnitStatus::Retrying if c.retry_due.is_none() => {
                    let retry = &self.wf.steps[s].compensate.as_ref()?.retry;
                    let due = d.now + wait_ms(retry, c, d);
                    return Some(Entry::CompensationRetryScheduled { step: s, item, due });
                }
                UnitStatus::Running | UnitStatus::Retrying | UnitStatus::Repeating | UnitStatus::Paused => return None,
            }
        }
        None
    }

    /// Whether a cancel may still roll the run back: only while one of its
    /// forward steps has not ended. Once every one has (the confirmation sent,
    /// say), the run ends as it would have; a cancel that comes then is
    /// refused, not journaled.
    pub(crate) fn cancellable(&self) -> Result<(), CancelRefused> {
        match self.phase {
            Phase::Done => return Err(CancelRefused::Ended(self.status.unwrap_or_else(|| self.final_status()))),
            Phase::RollingBack => return Err(CancelRefused::RollingBack),
            Phase::Forward => {}
        }
        let open = self.wf.steps.iter().zip(&self.steps).any(|(step, state)| {
            step.section == Section::Steps && matches!(state.status, StepStatus::Pending | StepStatus::Running)
        });
        if open {
            Ok(())
        } else {
            Err(CancelRefused::StepsEnded)
        }
    }

    pub(crate) fn final_status(&self) -> RunStatus {
        if self.error.is_none() {
            return RunStatus::Succeeded;
        }
        let queue = self.compensation_queue();
        if queue.is_empty() {
            return RunStatus::Failed;
        }
        let all_ok = queue.iter().all(|(s, item)| {
            self.unit(*s, *item)
                .and_then(|u| u.compensation.as_ref())
                .is_some_and(|c| c.status == UnitStatus::Succeeded)
        });
        if all_ok {
            RunStatus::Compensated
        } else {
            RunStatus::CompensationFailed
        }
    }

    fn section_done(&self, section: Section) -> bool {
        self.wf
            .steps
            .iter()
            .zip(&self.steps)
            .filter(|(def, _)| def.section == section)
            .all(|(_, s)| matches!(s.status, StepStatus::Succeeded | StepStatus::Skipped | StepStatus::Failed))
    }

    /// Whether a step counts as finished for the steps that need it.
    fn satisfies_needs(&self, step: usize) -> bool {
        let def = &self.wf.steps[step];
        match self.steps[step].status {
            StepStatus::Succeeded | StepStatus::Skipped => true,
            StepStatus::Failed => {
                let code = self.steps[step].error.as_ref().map_or("failed", |e| e.code.as_str());
                def.on_error.continues(code) || def.section.is_after()
            }
            _ => false,
        }
    }

    fn schedule_section(&self, section: Section, d: &mut Decide) -> Vec<Entry> {
        let mut out = Vec::new();
        for (s, def) in self.wf.steps.iter().enumerate() {
            if def.section != section {
                continue;
            }
            let state = &self.steps[s];
            match state.status {
                StepStatus::Pending if def.needs.iter().all(|&n| self.satisfies_needs(n)) => {
                    out.extend(self.start_step(s, def, d))
                }
                StepStatus::Running => out.extend(self.schedule_units(s, def, d)),
                _ => {}
            }
        }
        out
    }

    fn start_step(&self, s: usize, def: &CompiledStep, d: &mut Decide) -> Option<Entry> {
        if let Some(when) = &def.when {
            match self.wf.templates.render(when, &self.context(Some(s), None), "when") {
                Ok(v) if !truthy(&v) => return Some(Entry::StepSkipped { step: s }),
                Ok(_) => {}
                Err(f) => return Some(Entry::StepFailed { step: s, error: template_error(def, &f) }),
            }
        }
        if def.for_each.is_some() {
            return Some(match self.render_for_each(s) {
                Ok(Json::Array(items)) => Entry::StepItems { step: s, count: items.len() },
                Ok(other) => Entry::StepFailed {
                    step: s,
                    error: ActionError::new(
                        "template",
                        format!("step `{}`: `for_each` gave {}, not a list", def.id, kind_of(&other)),
                    ),
                },
                Err(f) => Entry::StepFailed { step: s, error: template_error(def, &f) },
            });
        }
        Some(Entry::AttemptStarted { step: s, item: None, attempt: 1, at: d.now })
    }

    fn schedule_units(&self, s: usize, def: &CompiledStep, d: &mut Decide) -> Vec<Entry> {
        let state = &self.steps[s];
        let for_each = def.for_each.is_some();
        let mut running = state.units.iter().filter(|u| u.status == UnitStatus::Running).count();
        let limit = if for_each { def.concurrency } else { 1 };
        let mut out = Vec::new();
        for (i, u) in state.units.iter().enumerate() {
            let item = for_each.then_some(i);
            match u.status {
                UnitStatus::Pending if running < limit => {
                    running += 1;
                    out.push(Entry::AttemptStarted { step: s, item, attempt: u.attempts + 1, at: d.now });
                }
                UnitStatus::Retrying if u.retry_due.is_none() => {
                    // The policies rendered when the attempt failed, so they render now.
                    let policies = self.retry_policies(s, item).unwrap_or(std::borrow::Cow::Borrowed(&def.retry));
                    let due = d.now + wait_ms(&policies, u, d);
                    out.push(Entry::RetryScheduled { step: s, item, due });
                }
                _ => {}
            }
        }
        out
    }

    fn render_for_each(&self, s: usize) -> Result<Json, RenderFailure> {
        match &self.wf.steps[s].for_each {
            Some(t) => self.wf.templates.render(t, &self.context(Some(s), None), "for_each"),
            None => Ok(Json::Null),
        }
    }

    fn render_output(&self) -> Result<Option<Json>, RenderFailure> {
        match &self.wf.output {
            Some(t) => self.wf.templates.render(t, &self.context(None, None), "output").map(Some),
            None => Ok(None),
        }
    }

    /// The input of an attempt of a step (or item).
    pub(crate) fn attempt_input(&self, s: usize, item: Item) -> Result<Json, ActionError> {
        let def = &self.wf.steps[s];
        if let Some(with) = self.unit(s, item).and_then(|u| u.with.as_ref()) {
            return Ok(with.clone());
        }
        if let ValueTemplate::Literal(value) = &def.with {
            return Ok(value.clone());
        }
        self.wf.templates.render(&def.with, &self.context(Some(s), item), "with").map_err(|f| template_error(def, &f))
    }

    /// The input of a compensation of a step (or item).
    pub(crate) fn compensation_input(&self, s: usize, item: Item) -> Result<Json, ActionError> {
        let def = &self.wf.steps[s];
        let Some(c) = &def.compensate else { return Ok(Json::Null) };
        if let ValueTemplate::Literal(value) = &c.with {
            return Ok(value.clone());
        }
        self.wf
            .templates
            .render(&c.with, &self.undo_context(s, item), "compensate.with")
            .map_err(|f| template_error(def, &f))
    }

    /// What a `compensate` reads: the run's context, and `step`, the unit
    /// being undone (DSL.md A1).
    fn undo_context(&self, s: usize, item: Item) -> Json {
        let mut ctx = self.context(Some(s), item);
        let unit = self.unit(s, item);
        let key = AttemptKey { compensation: false, step: s, item, attempt: 1 };
        let error =
            unit.and_then(|u| u.error.as_ref()).filter(|_| unit.is_some_and(|u| u.status != UnitStatus::Succeeded));
        ctx["step"] = json!({
            "id": self.wf.steps[s].id,
            "output": unit.and_then(|u| u.output.clone()).unwrap_or(Json::Null),
            "error": error.map(|e| json!({ "code": e.code, "message": e.message })),
            "key": self.idempotency_key(key),
            "item": item.map(|i| self.steps[s].items.get(i).cloned().unwrap_or(Json::Null)),
            "index": item,
        });
        ctx
    }

    /// The output of a step as templates see it: a list for `for_each` steps.
    pub(crate) fn step_output(&self, s: usize) -> Json {
        let state = &self.steps[s];
        if self.wf.steps[s].for_each.is_some() {
            if state.units.is_empty() && state.status == StepStatus::Pending {
                return Json::Null;
            }
            return Json::Array(state.units.iter().map(|u| u.output.clone().unwrap_or(Json::Null)).collect());
        }
        state.units.first().and_then(|u| u.output.clone()).unwrap_or(Json::Null)
    }

    pub(crate) fn step_status(&self, s: usize) -> StepStatus {
        let state = &self.steps[s];
        if !state.units.is_empty() && state.units.iter().all(|u| u.skipped) {
            return StepStatus::Skipped;
        }
        // A step after the run's forward part that never started once the run ended never will.
        if self.phase == Phase::Done && state.status == StepStatus::Pending && self.wf.steps[s].section.is_after() {
            return StepStatus::NotRun;
        }
        let comp: Vec<&Unit> = state.units.iter().filter_map(|u| u.compensation.as_deref()).collect();
        if !comp.is_empty() && comp.iter().all(|c| c.done()) {
            let all_ok = comp.iter().all(|c| c.status == UnitStatus::Succeeded);
            return if all_ok { StepStatus::Compensated } else { StepStatus::CompensationFailed };
        }
        state.status
    }

    /// Why a step failed: the failure that ended it (none unless it failed).
    pub(crate) fn step_error(&self, s: usize) -> Option<&ActionError> {
        let state = &self.steps[s];
        let ended = |u: &Unit| matches!(u.status, UnitStatus::Failed | UnitStatus::Paused);
        let failed = || state.units.iter().find_map(|u| u.error.as_ref().filter(|_| ended(u)));
        state.error.as_ref().or_else(failed)
    }

    /// What templates of step `s` (and item) can read.
    pub(crate) fn context(&self, s: Option<usize>, item: Item) -> Json {
        let steps: serde_json::Map<String, Json> = self
            .wf
            .steps
            .iter()
            .enumerate()
            .map(|(i, def)| {
                let status = self.step_status(i);
                // `steps.X.error`: null unless X failed (DSL.md A2).
                let failed = (status == StepStatus::Failed).then(|| self.step_error(i)).flatten();
                let error = failed.map(|e| json!({ "code": e.code, "message": e.message }));
                (def.id.clone(), json!({ "output": self.step_output(i), "status": status.as_str(), "error": error }))
            })
            .collect();
        let mut ctx = json!({
            "input": self.input,
            "run": { "id": self.run_id, "workflow": self.wf.name },
            "steps": steps,
        });
        if !self.secrets.is_empty() {
            let secrets = self.secrets.iter().map(|(name, value)| (name.clone(), Json::String(value.clone())));
            ctx["secrets"] = Json::Object(secrets.collect());
        }
        if let (Some(s), Some(i)) = (s, item) {
            ctx["item"] = self.steps[s].items.get(i).cloned().unwrap_or(Json::Null);
            ctx["index"] = json!(i);
        }
        if let Some(s) = s.filter(|&s| self.wf.steps[s].repeat.is_some()) {
            ctx["iteration"] = json!(self.unit(s, item).map_or(1, |u| u.round.max(1)));
        }
        if let Some(e) = &self.error {
            ctx["error"] = json!({ "step": e.step, "code": e.code, "message": e.message });
        }
        if s.is_some_and(|s| self.wf.steps[s].section == Section::Finally) {
            self.finally_context(&mut ctx);
        }
        ctx
    }

    /// What a `finally` step reads besides: `run.status`, the status the run
    /// ends with, and `error`: the failure that started the roll-back, or else
    /// the first continued failure (null when nothing failed).
    fn finally_context(&self, ctx: &mut Json) {
        ctx["run"]["status"] = json!(self.ending_status());
        if self.error.is_none() {
            let continued = (0..self.steps.len())
                .filter(|&i| self.wf.steps[i].section == Section::Steps && self.step_status(i) == StepStatus::Failed)
                .find_map(|i| self.step_error(i).map(|e| (i, e)));
            ctx["error"] = continued.map_or(
                Json::Null,
                |(i, e)| json!({ "step": self.wf.steps[i].id, "code": e.code, "message": e.message }),
            );
        }
    }
}

/// An event key as text: a string as it is, anything else as JSON, none as "".
pub(crate) fn event_key(key: Option<&Json>) -> String {
    match key {
        None | Some(Json::Null) => String::new(),
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Whether a unit tries again after a failure `e` at `at` that its policy
/// `retry` handled, the `handled`-th it handled: attempts are left, and the
/// next attempt would start within `max_duration` of the first (`first`; the
/// wait before it is counted unjittered, the longest it can be).
fn may_retry(retry: &Retry, e: &ActionError, handled: u32, first: u64, at: u64) -> bool {
    let in_time = || {
        retry.max_duration.as_ref().is_none_or(|limit| {
            let wait = retry.wait_after(handled).millis().max(e.retry_after_ms.unwrap_or(0));
            at.saturating_add(wait) <= first.saturating_add(limit.value.millis())
        })
    };
    handled < retry.max_attempts && in_time()
}

/// The wait before the next attempt of a unit whose last failure a policy
/// handled: that policy's wait after its count, jittered in [0.5, 1.0] of its
/// value when asked, and never shorter than the `Retry-After` it carried.
fn wait_ms(policies: &RetryPolicies, unit: &Unit, d: &mut Decide) -> u64 {
    let last = unit.error.as_ref();
    let Some((i, retry)) = last.and_then(|e| policies.handling(&e.code)) else { return 0 };
    let base = retry.wait_after(unit.handled.get(i).copied().unwrap_or(1)).millis();
    let waited = if retry.jitter { (base as f64 * (0.5 + 0.5 * (d.random)())) as u64 } else { base };
    waited.max(last.and_then(|e| e.retry_after_ms).unwrap_or(0))
}

pub(crate) fn template_error(def: &CompiledStep, f: &RenderFailure) -> ActionError {
    ActionError::new("template", format!("step `{}`: `{}` cannot be rendered: {}", def.id, f.field, f.message))
}

pub(crate) fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty() && s != "false",
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "true or false",
        Json::Number(_) => "a number",
        Json::String(_) => "text",
        Json::Array(_) => "a list",
        Json::Object(_) => "a mapping",
    }
}
