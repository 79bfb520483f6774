//! The sandbox payments: cards by token, payments and refunds.
//! Invariant: a payment's `refunded_cents` never exceeds its `captured_cents`.

use serde::{Deserialize, Serialize};

use super::ledger::{abort, Ledger, Tx, TxResult};
use super::ready;
use crate::services::errors::invalid;
use crate::services::payments::*;
use crate::services::{ActionError, Ctx, ServiceFuture};

/// A test card: what paying with its token does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Card {
    pub token: String,
    /// `approve`, or the error code a payment with it gets (`card_declined`, `insufficient_funds`).
    pub outcome: String,
}

pub(super) struct SandboxPayments(pub Ledger);

fn load(tx: &Tx, id: &str) -> TxResult<Payment> {
    tx.require(&format!("payment/{id}"), "payment", id)
}

fn save(tx: &Tx, p: &Payment) -> TxResult<()> {
    tx.put(&format!("payment/{}", p.payment_id), p)
}

fn not_captured(p: &Payment, what: &str) -> ActionError {
    ActionError::new("payment_not_captured", format!("payment `{}` is {}; {what}", p.payment_id, p.status))
}

/// A new payment, authorised, or refused as its card says.
fn authorise(tx: &Tx, request: &PaymentRequest) -> TxResult<Payment> {
    let Some(card) = tx.get::<Card>(&format!("card/{}", request.payment_method))? else {
        return abort(invalid(format!("`{}` is not a payment method the sandbox knows", request.payment_method)));
    };
    if card.outcome != "approve" {
        return abort(ActionError::new(card.outcome.clone(), format!("the card `{}` was refused", card.token)));
    }
    let payment = Payment {
        payment_id: tx.next_id("payment", "pay")?,
        status: "authorized".into(),
        amount_cents: request.amount_cents,
        currency: request.currency.clone(),
        captured_cents: 0,
        refunded_cents: 0,
        refundable_cents: 0,
        reference: request.reference.clone(),
    };
    save(tx, &payment)?;
    Ok(payment)
}

fn capture(tx: &Tx, mut p: Payment) -> TxResult<Payment> {
    match p.status.as_str() {
        "authorized" => {
            p.status = "captured".into();
            p.captured_cents = p.amount_cents;
            p.refundable_cents = p.amount_cents;
            save(tx, &p)?;
            Ok(p)
        }
        "captured" | "partially_refunded" | "refunded" => Ok(p),
        _ => abort(not_captured(&p, "it cannot be captured")),
    }
}

impl Payments for SandboxPayments {
    fn authorize(&self, ctx: Ctx, request: PaymentRequest) -> ServiceFuture<Payment> {
        ready(self.0.once("authorize", &ctx, |tx| authorise(tx, &request)))
    }

    fn void(&self, ctx: Ctx, request: VoidRequest) -> ServiceFuture<Voided> {
        ready(self.0.once("void", &ctx, |tx| {
            let id = request.payment_id.as_deref();
            let found = tx.undo_target(id, request.key.as_deref(), &["authorize"], |p: Payment| p.payment_id)?;
            let Some(payment_id) = found else {
                return Ok(Voided { payment_id: None, status: "nothing".into() });
            };
            let mut p = load(tx, &payment_id)?;
            let voided = Voided { payment_id: Some(payment_id), status: "voided".into() };
            match p.status.as_str() {
                "authorized" => {
                    p.status = "voided".into();
                    save(tx, &p)?;
                    Ok(voided)
                }
                "voided" => Ok(voided),
                _ => abort(not_captured(&p, "only an authorisation can be voided; refund it instead")),
            }
        }))
    }

    fn capture(&self, ctx: Ctx, request: PaymentRef) -> ServiceFuture<Payment> {
        ready(self.0.once("capture", &ctx, |tx| capture(tx, load(tx, &request.payment_id)?)))
    }

    fn charge(&self, ctx: Ctx, request: PaymentRequest) -> ServiceFuture<Payment> {
        ready(self.0.once("charge", &ctx, |tx| capture(tx, authorise(tx, &request)?)))
    }

    fn refund(&self, ctx: Ctx, request: RefundRequest) -> ServiceFuture<Refund> {
        ready(self.0.once("refund", &ctx, |tx| {
            let id = request.payment_id.as_deref();
            let found =
                tx.undo_target(id, request.key.as_deref(), &["charge", "capture"], |p: Payment| p.payment_id)?;
            let Some(payment_id) = found else { return Ok(Refund::nothing()) };
            let mut p = load(tx, &payment_id)?;
            if p.captured_cents == 0 {
                return abort(not_captured(&p, "there is nothing to refund"));
            }
            let amount = request.amount_cents.unwrap_or(p.refundable_cents);
            if amount == 0 || amount > p.refundable_cents {
                return abort(ActionError::new(
                    "refund_exceeds_charge",
                    format!(
                        "a refund of {amount} cents asked; {} of {} captured cents are left to refund",
                        p.refundable_cents, p.captured_cents
                    ),
                ));
            }
            p.refunded_cents += amount;
            p.refundable_cents = p.captured_cents - p.refunded_cents;
            p.status = if p.refundable_cents == 0 { "refunded" } else { "partially_refunded" }.into();
            save(tx, &p)?;
            let refund_id = tx.next_id("refund", "ref")?;
            let refund = Refund {
                refund_id: Some(refund_id.clone()),
                payment_id: Some(p.payment_id.clone()),
                amount_cents: amount,
                refunded_cents: p.refunded_cents,
                refundable_cents: p.refundable_cents,
                status: p.status.clone(),
            };
            tx.put(&format!("refund/{refund_id}"), &refund)?;
            Ok(refund)
        }))
    }

    fn get(&self, _: Ctx, request: PaymentRef) -> ServiceFuture<Payment> {
        ready(self.0.transact(|tx| load(tx, &request.payment_id)))
    }
}

/// Seeds the cards and the payments made before (for refunds).
pub(super) fn seed(ledger: &Ledger, cards: &[Card], payments: &[Payment]) -> Result<(), ActionError> {
    ledger.transact(|tx| {
        for c in cards {
            tx.put(&format!("card/{}", c.token), c)?;
        }
        for p in payments {
            save(tx, p)?;
        }
        Ok(())
    })
}
