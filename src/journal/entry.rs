//! The journal: every transition of a run, in order. A run's state is the fold
//! of its entries ([`super::machine::RunState::apply`]); entries are durable
//! before anything that depends on them happens.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

pub(crate) use crate::base::error::ActionError;

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Ok(Json),
    Err(ActionError),
}

/// The run and step that started a child run (DSL.md B1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ParentLink {
    pub run_id: String,
    pub step: String,
    /// How many runs are above this one: 1 for a child of a top-level run.
    pub depth: u32,
}

/// What an operator did to a run (DSL.md C1, C2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub(crate) enum OperatorAction {
    /// A paused unit tries again (with a new `with`, when given); its attempts go on counting.
    Retry {
        step: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Item,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        with: Option<Json>,
    },
    /// A paused unit is skipped with the output it should have had.
    Skip {
        step: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Item,
        output: Json,
    },
    /// The run rolls back, as a failure would have made it.
    Abort,
    /// A unit waiting in a retry's backoff tries now.
    RetryNow {
        step: usize,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item: Item,
    },
    /// A `compensation_failed` run tries its failed compensations again; it
    /// ends `compensated` when they succeed.
    RetryCompensations,
    /// A new run of the same workflow was started from this one.
    Rerun { run_id: String },
}

/// Which unit of a step: the step itself, or one item of a `for_each`.
pub(crate) type Item = Option<usize>;

/// One journaled transition. Times are milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Entry {
    RunStarted {
        workflow: String,
        hash: String,
        input: Json,
        at: u64,
        deadline: Option<u64>,
        /// Failures injected into this run (`--fail`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inject: Vec<super::injection::Injection>,
        /// The run whose `workflow.run` step started this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<ParentLink>,
        /// The run this one runs again (`rerun`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rerun_of: Option<String>,
        /// The trace it belongs to: from the request that started it, or its
        /// parent's attempt; none: a trace of its own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<crate::base::trace::TraceParent>,
    },
    InputRejected {
        error: ActionError,
        at: u64,
    },
    StepSkipped {
        step: usize,
    },
    StepItems {
        step: usize,
        count: usize,
    },
    StepFailed {
        step: usize,
        error: ActionError,
    },
    AttemptStarted {
        step: usize,
        item: Item,
        attempt: u32,
        at: u64,
    },
    AttemptFinished {
        step: usize,
        item: Item,
        attempt: u32,
        outcome: Outcome,
        at: u64,
    },
    RetryScheduled {
        step: usize,
        item: Item,
        due: u64,
    },
    RetryDue {
        step: usize,
        item: Item,
    },
    /// A `repeat` unit's next round is due (DSL.md B2).
    RoundDue {
        step: usize,
        item: Item,
    },
    OutputFailed {
        error: ActionError,
    },
    RunTimedOut {
        at: u64,
    },
    CancelRequested {
        at: u64,
    },
    CompensationStarted {
        step: usize,
        item: Item,
        attempt: u32,
        at: u64,
    },
    CompensationFinished {
        step: usize,
        item: Item,
        attempt: u32,
        outcome: Outcome,
        at: u64,
    },
    CompensationRetryScheduled {
        step: usize,
        item: Item,
        due: u64,
    },
    CompensationRetryDue {
        step: usize,
        item: Item,
    },
    /// An operator acted on the run (DSL.md C2): who, when, what.
    Operator {
        action: OperatorAction,
        by: String,
        at: u64,
    },
    /// The parent rolled back: this run, which succeeded, is undone (its
    /// succeeded steps compensated in reverse); it then ends `compensated`.
    UndoRequested {
        at: u64,
    },
    RunFinished {
        status: super::status::RunStatus,
        output: Option<Json>,
        at: u64,
    },
}

impl Outcome {
    fn mask_secrets(&mut self) {
        match self {
            Outcome::Ok(value) => crate::base::secrets::mask_json(value),
            Outcome::Err(error) => error.mask_secrets(),
        }
    }
}

impl Entry {
    /// Replaces every known secret's value in the entry by `***` (DSL.md A6).
    /// The driver does it before an entry is applied or journaled, so the
    /// state, the store and everything shown from them agree.
    pub(crate) fn mask_secrets(&mut self) {
        if !crate::base::secrets::any() {
            return;
        }
        match self {
            Entry::RunStarted { input, .. } => crate::base::secrets::mask_json(input),
            Entry::InputRejected { error, .. } | Entry::StepFailed { error, .. } | Entry::OutputFailed { error } => {
                error.mask_secrets()
            }
            Entry::AttemptFinished { outcome, .. } | Entry::CompensationFinished { outcome, .. } => {
                outcome.mask_secrets()
            }
            Entry::RunFinished { output: Some(output), .. } => crate::base::secrets::mask_json(output),
            _ => {}
        }
    }
}
