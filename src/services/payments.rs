//! Payments: authorisations, captures (charges) and refunds, in cents.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::operation::undone_by;
use crate::actions::Effect;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PaymentRequest {
    /// The amount in cents.
    #[schemars(range(min = 1))]
    pub amount_cents: u64,
    /// ISO 4217, like EUR (default EUR).
    #[serde(default = "eur")]
    #[schemars(regex(pattern = "^[A-Z]{3}$"))]
    pub currency: String,
    /// A token of the payer's card (the sandbox knows `tok_visa`, `tok_declined`, `tok_no_funds`).
    pub payment_method: String,
    #[serde(default)]
    pub user_id: Option<String>,
    /// What is paid for (an order or enrolment id).
    #[serde(default)]
    pub reference: Option<String>,
}

fn eur() -> String {
    "EUR".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Payment {
    pub payment_id: String,
    /// `authorized`, `voided`, `captured`, `partially_refunded` or `refunded`.
    pub status: String,
    pub amount_cents: u64,
    pub currency: String,
    pub captured_cents: u64,
    pub refunded_cents: u64,
    /// What can still be refunded: captured minus refunded.
    pub refundable_cents: u64,
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PaymentRef {
    pub payment_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefundRequest {
    pub payment_id: String,
    /// Cents to refund (default: everything still refundable).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub amount_cents: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Refund {
    pub refund_id: String,
    pub payment_id: String,
    pub amount_cents: u64,
    pub refunded_cents: u64,
    pub refundable_cents: u64,
    pub status: String,
}

crate::service! {
    /// Card payments.
    trait Payments, fn operations, service "payments" {
        /// Holds an amount on the payer's card without taking it.
        authorize(PaymentRequest) -> Payment, undone_by("payments.void"), ["card_declined", "insufficient_funds"];
        /// Lets an authorisation go; a captured payment cannot be voided.
        void(PaymentRef) -> Payment, Effect::Irreversible, ["not_found", "payment_not_captured"];
        /// Takes the money of an authorisation.
        capture(PaymentRef) -> Payment, undone_by("payments.refund"), ["not_found", "payment_not_captured"];
        /// Authorises and captures in one call.
        charge(PaymentRequest) -> Payment, undone_by("payments.refund"), ["card_declined", "insufficient_funds"];
        /// Gives captured money back, never more than was captured and not yet refunded.
        refund(RefundRequest) -> Refund, Effect::Irreversible, ["not_found", "payment_not_captured", "refund_exceeds_charge"];
        /// Reads a payment: what was captured, refunded, and is still refundable.
        get(PaymentRef) -> Payment, Effect::Read, ["not_found"];
    }
}
