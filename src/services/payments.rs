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
pub(crate) struct VoidRequest {
    /// The authorisation to let go; or give `key`.
    #[serde(default)]
    pub payment_id: Option<String>,
    /// The idempotency key of the `authorize` call (`{{step.key}}` in a
    /// compensate): found even when its answer was lost; nothing to void when
    /// it authorised nothing.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Voided {
    /// None: the call named by `key` authorised nothing.
    pub payment_id: Option<String>,
    /// `voided`, or `nothing` when there was nothing to void.
    pub status: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefundRequest {
    /// The payment to refund; or give `key`.
    #[serde(default)]
    pub payment_id: Option<String>,
    /// The idempotency key of the `charge` or `capture` call (`{{step.key}}` in
    /// a compensate): found even when its answer was lost; nothing to refund
    /// when it took no money.
    #[serde(default)]
    pub key: Option<String>,
    /// Cents to refund (default: everything still refundable).
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub amount_cents: Option<u64>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Refund {
    /// None (and `status: nothing`) when the call named by `key` took no money.
    pub refund_id: Option<String>,
    pub payment_id: Option<String>,
    pub amount_cents: u64,
    pub refunded_cents: u64,
    pub refundable_cents: u64,
    pub status: String,
}

impl Refund {
    /// What a refund by `key` answers when that call took no money.
    pub(crate) fn nothing() -> Refund {
        Refund {
            refund_id: None,
            payment_id: None,
            amount_cents: 0,
            refunded_cents: 0,
            refundable_cents: 0,
            status: "nothing".into(),
        }
    }
}

crate::service! {
    /// Card payments.
    trait Payments, fn operations, service "payments" {
        /// Holds an amount on the payer's card without taking it.
        authorize(PaymentRequest) -> Payment, undone_by("payments.void"), ["card_declined", "insufficient_funds"];
        /// Lets an authorisation go; a captured payment cannot be voided.
        void(VoidRequest) -> Voided, Effect::Irreversible, ["not_found", "payment_not_captured"];
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
