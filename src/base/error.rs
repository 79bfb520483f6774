//! The error an action (or the engine) reports, shared by every layer.

use serde::{Deserialize, Serialize};

/// What kind of failure an error is. The codes the language names have a
/// variant each; an action's own codes (`payment_declined`, or one given with
/// `--fail`) are [`ErrorCode::Other`]. Written as its plain string, as before.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ErrorCode {
    Timeout,
    Unavailable,
    RateLimited,
    InvalidInput,
    NotFound,
    Conflict,
    Failed,
    Template,
    Schema,
    Cancelled,
    TooLarge,
    /// A `repeat` step's rounds ran out before its condition held.
    Exhausted,
    /// Workflows call each other deeper than the bound.
    TooDeep,
    /// An action's own code.
    Other(String),
}

/// Every named code with its string, in one table.
const NAMED: &[(ErrorCode, &str)] = &[
    (ErrorCode::Timeout, "timeout"),
    (ErrorCode::Unavailable, "unavailable"),
    (ErrorCode::RateLimited, "rate_limited"),
    (ErrorCode::InvalidInput, "invalid_input"),
    (ErrorCode::NotFound, "not_found"),
    (ErrorCode::Conflict, "conflict"),
    (ErrorCode::Failed, "failed"),
    (ErrorCode::Template, "template"),
    (ErrorCode::Schema, "schema"),
    (ErrorCode::Cancelled, "cancelled"),
    (ErrorCode::TooLarge, "too_large"),
    (ErrorCode::Exhausted, "exhausted"),
    (ErrorCode::TooDeep, "too_deep"),
];

impl ErrorCode {
    /// The language's own codes, by name.
    pub fn named() -> impl Iterator<Item = &'static str> {
        NAMED.iter().map(|(_, name)| *name)
    }

    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::Other(code) => code,
            named => NAMED.iter().find(|(c, _)| c == named).map_or("", |(_, s)| s),
        }
    }
    /// `timeout`, `unavailable` and `rate_limited`: what a retry policy retries
    /// when it names no code.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ErrorCode::Timeout | ErrorCode::Unavailable | ErrorCode::RateLimited)
    }
}

impl From<&str> for ErrorCode {
    fn from(code: &str) -> Self {
        NAMED.iter().find(|(_, s)| *s == code).map_or_else(|| ErrorCode::Other(code.to_owned()), |(c, _)| c.clone())
    }
}

impl From<String> for ErrorCode {
    fn from(code: String) -> Self {
        match ErrorCode::from(code.as_str()) {
            ErrorCode::Other(_) => ErrorCode::Other(code),
            named => named,
        }
    }
}

impl From<ErrorCode> for String {
    fn from(code: ErrorCode) -> Self {
        match code {
            ErrorCode::Other(code) => code,
            named => named.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<str> for ErrorCode {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An error an action (or the engine) reports: a code and plain words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActionError {
    pub code: ErrorCode,
    pub message: String,
    /// How long the service asked to be left alone (`Retry-After`): the next
    /// attempt waits at least this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl ActionError {
    pub fn new(code: impl Into<ErrorCode>, message: impl Into<String>) -> Self {
        ActionError { code: code.into(), message: message.into(), retry_after_ms: None }
    }

    pub fn with_retry_after(mut self, ms: Option<u64>) -> Self {
        self.retry_after_ms = ms;
        self
    }

    /// `timeout`, `unavailable` and `rate_limited` may be retried; nothing else.
    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// Replaces every known secret's value in it by `***` (DSL.md A6).
    pub fn mask_secrets(&mut self) {
        super::secrets::mask_string(&mut self.message);
        if let ErrorCode::Other(code) = &mut self.code {
            super::secrets::mask_string(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_reads_and_writes_as_its_plain_string() {
        for (code, text) in NAMED {
            assert_eq!(ErrorCode::from(*text), *code);
            assert_eq!(code.as_str(), *text);
            assert_eq!(code.is_retryable(), ["timeout", "unavailable", "rate_limited"].contains(text), "{text}");
        }
        let own = ErrorCode::from("payment_declined");
        assert_eq!(own, ErrorCode::Other("payment_declined".into()));
        let error = ActionError::new(ErrorCode::RateLimited, "slow down");
        let json = serde_json::to_value(&error).unwrap_or_default();
        assert_eq!(json, serde_json::json!({ "code": "rate_limited", "message": "slow down" }));
        let back: Result<ActionError, _> =
            serde_json::from_value(serde_json::json!({ "code": "payment_declined", "message": "no" }));
        assert_eq!(back.map(|e| e.code).ok(), Some(own));
    }
}
