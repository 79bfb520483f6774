//! A failure injected into a run (`--fail STEP[.compensate][=CODE][xN]`): part
//! of the run's first journal entry, so it holds after a resume. The code
//! `lost` is special: the action runs (its effect happens), then its answer is
//! lost and the attempt fails with `timeout`, as when a provider takes the
//! money and the connection drops before it answers.

use serde::{Deserialize, Serialize};

use crate::base::error::ActionError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Injection {
    pub step: String,
    /// The step's compensation, not the step.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub compensate: bool,
    pub code: String,
    /// Only the first N attempts (of each item); none: every attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
}

/// The code of an injected failure when none is given.
pub(crate) const DEFAULT_CODE: &str = "unavailable";

/// The injected "code" whose attempts run and then lose their answer.
pub(crate) const LOST: &str = "lost";

impl Injection {
    /// Whether this attempt fails.
    pub(crate) fn applies(&self, step: &str, compensation: bool, attempt: u32) -> bool {
        self.step == step && self.compensate == compensation && self.times.is_none_or(|n| attempt <= n)
    }

    /// Whether the attempt runs and then loses its answer (`=lost`), rather
    /// than failing before its action is called.
    pub(crate) fn loses_answer(&self) -> bool {
        self.code == LOST
    }

    pub(crate) fn error(&self) -> ActionError {
        if self.loses_answer() {
            let message = format!("the action ran, then its answer was lost (injected by `--fail {self}`)");
            return ActionError::new(crate::base::error::ErrorCode::Timeout, message);
        }
        ActionError::new(self.code.clone(), format!("a failure injected by `--fail {self}`"))
    }
}

impl std::fmt::Display for Injection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}={}", self.step, if self.compensate { ".compensate" } else { "" }, self.code)?;
        match self.times {
            Some(n) => write!(f, "x{n}"),
            None => Ok(()),
        }
    }
}
