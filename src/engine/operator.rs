//! Operating on a run (DSL.md C1, C2): what an operator asks, judged against
//! the run's state into an `Operator` entry (who, when, what), and that
//! entry folded in. A paused unit is retried (its attempts go on counting,
//! with the same idempotency key; a new `with` replaces the old one) or
//! skipped with the output it should have had; a run that goes forward is
//! aborted: it rolls back as its failure would have made it.

use serde_json::Value as Json;

use super::machine::{Phase, RunState, UnitStatus};
use crate::journal::entry::{ActionError, Item, OperatorAction};
use crate::journal::status::RunStatus;
use crate::store::EventRecord;

/// What an operator asks of a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "ask", rename_all = "snake_case")]
pub(crate) enum Ask {
    /// Try the paused step again (`step`: which, when several are paused).
    Retry { step: Option<String>, with: Option<Json> },
    /// Skip the paused step, giving its output.
    Skip { step: Option<String>, output: Json },
    /// Roll the run back.
    Abort,
    /// Note a run started again from this one.
    Rerun { run_id: String },
}

impl Ask {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Ask::Retry { .. } => "retry",
            Ask::Skip { .. } => "skip",
            Ask::Abort => "abort",
            Ask::Rerun { .. } => "rerun",
        }
    }
}

/// A request left in the inbox of the worker that owns a run (a shared
/// store): the owner acts on it as if it had been asked itself.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub(crate) enum Request {
    Cancel,
    Operate { ask: Ask, by: String },
}

impl Request {
    pub(crate) fn to_json(&self) -> Json {
        // Plain data (strings and JSON values): it always serializes.
        serde_json::to_value(self).unwrap_or(Json::Null)
    }
}

/// Why an ask was not taken.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Refused {
    /// Retry and skip need a paused step; the run is in this status.
    NotPaused(RunStatus),
    /// The step named is not paused (or not a step of the run).
    NotPausedStep {
        step: String,
        paused: Vec<String>,
    },
    /// The run has ended, or is rolling back already.
    Over(RunStatus),
    /// No run has that id, or the engine could not judge now.
    Unknown,
    Stopped,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotPaused(status) => {
                write!(f, "the run is {status}, not paused: there is no step to retry or skip")
            }
            Refused::NotPausedStep { step, paused } => {
                write!(f, "step `{step}` is not paused; the paused steps are: {}", paused.join(", "))
            }
            Refused::Over(status) if status.is_finished() => write!(f, "the run has ended ({status})"),
            Refused::Over(status) => write!(f, "the run is {status} already"),
            Refused::Unknown => f.write_str("there is no such run"),
            Refused::Stopped => f.write_str("the engine could not take this now; try again"),
        }
    }
}

/// The event a unit that paused its run commits with it (`run.paused`, keyed
/// by the run id), for the run's subscribers: webhooks, triggered workflows.
pub(crate) fn paused_event(state: &RunState, step: usize, item: Item, seq: u32, at: u64) -> Option<EventRecord> {
    let unit = state.unit(step, item).filter(|u| u.status == UnitStatus::Paused)?;
    let error = unit.error.as_ref().map(|e| serde_json::json!({ "code": e.code, "message": e.message }));
    let data = serde_json::json!({
        "run_id": state.run_id,
        "workflow": state.wf.name,
        "step": state.wf.steps[step].id,
        "item": item,
        "error": error,
    });
    let id = format!("{}:paused:{seq}", state.run_id);
    Some(EventRecord { id, kind: PAUSED.to_owned(), key: state.run_id.clone(), data, at, traceparent: None })
}

/// The event a run that paused sends its subscribers.
pub(crate) const PAUSED: &str = "run.paused";

impl RunState {
    /// Why the output a skip gives cannot stand for the step's: its action's
    /// output schema refuses it (`None`: it fits, or the ask is not a skip).
    pub(crate) fn misfit_output(&self, ask: &Ask, registry: &crate::actions::Registry) -> Option<String> {
        let Ok(OperatorAction::Skip { step, output, .. }) = self.judge(ask) else { return None };
        let action = &self.wf.steps[step].action;
        let registered = registry.get(action)?;
        let why = registered
            .output_validator
            .iter_errors(&output)
            .next()
            .map(|e| format!("{e} (at `{}`)", e.instance_path()));
        why.map(|why| format!("the output does not fit what `{action}` gives: {why}"))
    }

    /// The paused units, in step and item order.
    pub(crate) fn paused(&self) -> Vec<(usize, Item)> {
        let mut out = Vec::new();
        for (s, step) in self.steps.iter().enumerate() {
            let for_each = self.wf.steps[s].for_each.is_some();
            for (i, u) in step.units.iter().enumerate() {
                if u.status == UnitStatus::Paused {
                    out.push((s, for_each.then_some(i)));
                }
            }
        }
        out
    }

    /// What an ask does to the run as it stands, or why it cannot.
    pub(crate) fn judge(&self, ask: &Ask) -> Result<OperatorAction, Refused> {
        let status = super::record::run_status(self);
        match ask {
            Ask::Rerun { run_id } => Ok(OperatorAction::Rerun { run_id: run_id.clone() }),
            Ask::Abort if self.phase == Phase::Forward => Ok(OperatorAction::Abort),
            Ask::Abort => Err(Refused::Over(status)),
            Ask::Retry { .. } if status == RunStatus::CompensationFailed => Ok(OperatorAction::RetryCompensations),
            Ask::Retry { step: None, .. } if self.paused().is_empty() => match self.backing_off() {
                Some((step, item)) => Ok(OperatorAction::RetryNow { step, item }),
                None => Err(Refused::NotPaused(status)),
            },
            Ask::Retry { step, with } => {
                let (step, item) = self.paused_unit(step.as_deref(), status)?;
                Ok(OperatorAction::Retry { step, item, with: with.clone() })
            }
            Ask::Skip { step, output } => {
                let (step, item) = self.paused_unit(step.as_deref(), status)?;
                Ok(OperatorAction::Skip { step, item, output: output.clone() })
            }
        }
    }

    /// The paused unit an ask names (the first, when it names none).
    fn paused_unit(&self, step: Option<&str>, status: RunStatus) -> Result<(usize, Item), Refused> {
        let paused = self.paused();
        if paused.is_empty() {
            return Err(Refused::NotPaused(status));
        }
        match step {
            None => Ok(paused[0]),
            Some(id) => {
                paused.iter().find(|(s, _)| self.wf.steps[*s].id == id).copied().ok_or_else(|| Refused::NotPausedStep {
                    step: id.to_owned(),
                    paused: paused.iter().map(|(s, _)| self.wf.steps[*s].id.clone()).collect(),
                })
            }
        }
    }

    /// The first unit waiting in a retry's backoff, while the run goes forward.
    fn backing_off(&self) -> Option<(usize, Item)> {
        if self.phase != Phase::Forward {
            return None;
        }
        self.steps.iter().enumerate().find_map(|(s, step)| {
            let for_each = self.wf.steps[s].for_each.is_some();
            let i = step.units.iter().position(|u| u.status == UnitStatus::Retrying)?;
            Some((s, for_each.then_some(i)))
        })
    }

    /// Whether an operator's entry still changes the run.
    pub(crate) fn takes(&self, action: &OperatorAction) -> bool {
        let unit_is =
            |step: usize, item: Item, status: UnitStatus| self.unit(step, item).is_some_and(|u| u.status == status);
        match action {
            OperatorAction::Abort => self.phase == Phase::Forward,
            OperatorAction::Retry { step, item, .. } | OperatorAction::Skip { step, item, .. } => {
                unit_is(*step, *item, UnitStatus::Paused)
            }
            OperatorAction::RetryNow { step, item } => {
                self.phase == Phase::Forward && unit_is(*step, *item, UnitStatus::Retrying)
            }
            OperatorAction::RetryCompensations => {
                self.phase == Phase::Done && self.status == Some(RunStatus::CompensationFailed)
            }
            OperatorAction::Rerun { .. } => true,
        }
    }

    /// Folds an operator's entry in.
    pub(crate) fn operated(&mut self, action: &OperatorAction, at: u64) {
        if !self.takes(action) {
            return;
        }
        match action {
            OperatorAction::Retry { step, item, with } => {
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.status = UnitStatus::Pending;
                    if with.is_some() {
                        u.with = with.clone();
                    }
                }
            }
            OperatorAction::Skip { step, item, output } => {
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.status = UnitStatus::Succeeded;
                    u.skipped = true;
                    u.output = Some(output.clone());
                    u.error = None;
                    u.finished_at = Some(at);
                }
                self.end_together(vec![(*step, *item)]);
                self.settle_step(*step);
            }
            OperatorAction::RetryNow { step, item } => {
                if let Some(u) = self.unit_mut(*step, *item) {
                    u.retry_due = None;
                    u.status = UnitStatus::Pending;
                }
            }
            OperatorAction::RetryCompensations => self.compensate_again(),
            OperatorAction::Rerun { run_id } => self.reruns.push(run_id.clone()),
            OperatorAction::Abort => {
                let paused = self.paused();
                let first = paused.first().copied();
                let error = first.and_then(|(s, item)| self.unit(s, item)?.error.clone());
                let error = error.unwrap_or_else(|| ActionError::new("aborted", "an operator aborted the run"));
                self.roll_back(first.map(|(s, _)| s), error, Vec::new());
            }
        }
    }

    /// A `compensation_failed` run goes back to its roll-back: each failed
    /// compensation tries again (its attempts go on counting).
    fn compensate_again(&mut self) {
        self.phase = Phase::RollingBack;
        self.status = None;
        self.finished_at = None;
        self.compensating_again = true;
        for (s, item) in self.compensation_queue() {
            if let Some(c) = self.unit_mut(s, item).and_then(|u| u.compensation.as_mut()) {
                if c.status == UnitStatus::Failed {
                    c.status = UnitStatus::Pending;
                    c.handled.clear();
                }
            }
        }
    }
}
