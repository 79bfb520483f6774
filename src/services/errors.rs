//! The error codes the services add to the DSL's own (`timeout`, `unavailable`,
//! `rate_limited`, `invalid_input`, `not_found`, `conflict`, `failed`), each
//! with what it means. docs/services.md prints this table.

use super::ActionError;

/// (code, what it means). Codes not in the DSL's retryable list are never retried.
pub(crate) const SERVICE_ERRORS: &[(&str, &str)] = &[
    ("out_of_stock", "There is less stock of the product than the quantity asked."),
    ("card_declined", "The card issuer declined the payment."),
    ("insufficient_funds", "The card has not enough funds for the amount."),
    ("payment_not_captured", "The payment holds no captured money to refund, or is not in a state for this operation."),
    ("refund_exceeds_charge", "The refund would take back more than was charged and not yet refunded."),
    ("email_taken", "A user with this email address exists already."),
    ("invalid_token", "The verification token is not the one the user was sent."),
    ("course_full", "Every seat of the course is taken."),
    ("already_enrolled", "The user holds a seat in, or is enrolled in, this course already."),
    ("quota_exceeded", "The AI quota left on the user's plan is smaller than the tokens asked."),
    ("unknown_template", "No notification template has this name."),
    ("invalid_status", "The order cannot move from its status to the one asked."),
];

/// The DSL's codes, which every operation may return.
pub(crate) const DSL_ERRORS: &[(&str, &str)] = &[
    ("timeout", "The call took longer than the step's timeout (retryable)."),
    ("unavailable", "The service could not be reached or failed on its side (retryable)."),
    ("rate_limited", "The service asked to slow down (retryable; `Retry-After` is honoured)."),
    ("invalid_input", "The request was refused as malformed."),
    ("not_found", "What the request names does not exist."),
    ("conflict", "The request conflicts with the current state."),
];

pub(crate) fn not_found(what: &str, id: &str) -> ActionError {
    ActionError::new("not_found", format!("there is no {what} `{id}`"))
}

pub(crate) fn invalid(message: impl Into<String>) -> ActionError {
    ActionError::new("invalid_input", message)
}

/// Whether the service layer documents this code (its own or the DSL's).
pub(crate) fn is_documented(code: &str) -> bool {
    SERVICE_ERRORS.iter().chain(DSL_ERRORS).any(|(c, _)| *c == code)
}
