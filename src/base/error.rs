//! The error an action (or the engine) reports, shared by every layer.

use serde::{Deserialize, Serialize};

/// The error codes a retry policy retries when it names none.
pub const RETRYABLE_CODES: &[&str] = &["timeout", "unavailable", "rate_limited"];

/// An error an action (or the engine) reports: a code and plain words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionError {
    pub code: String,
    pub message: String,
    /// How long the service asked to be left alone (`Retry-After`): the next
    /// attempt waits at least this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ActionError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ActionError { code: code.into(), message: message.into(), retry_after_ms: None }
    }

    pub fn with_retry_after(mut self, ms: Option<u64>) -> Self {
        self.retry_after_ms = ms;
        self
    }

    /// `timeout`, `unavailable` and `rate_limited` may be retried; nothing else.
    pub fn is_retryable(&self) -> bool {
        RETRYABLE_CODES.contains(&self.code.as_str())
    }

    /// Replaces every known secret's value in it by `***` (DSL.md A6).
    pub fn mask_secrets(&mut self) {
        super::secrets::mask_string(&mut self.message);
        super::secrets::mask_string(&mut self.code);
    }
}
