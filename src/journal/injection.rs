//! A failure injected into a run (`--fail STEP[.compensate][=CODE][xN]`): part
//! of the run's first journal entry, so it holds after a resume.

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

impl Injection {
    /// Whether this attempt fails.
    pub(crate) fn applies(&self, step: &str, compensation: bool, attempt: u32) -> bool {
        self.step == step && self.compensate == compensation && self.times.is_none_or(|n| attempt <= n)
    }

    pub(crate) fn error(&self) -> ActionError {
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
