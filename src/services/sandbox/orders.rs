//! The sandbox orders.

use super::ledger::{abort, Ledger, Tx, TxResult};
use super::ready;
use crate::services::errors::invalid;
use crate::services::orders::*;
use crate::services::{ActionError, Ctx, ServiceFuture};

pub(super) struct SandboxOrders(pub Ledger);

fn load(tx: &Tx, id: &str) -> TxResult<Order> {
    tx.require(&format!("order/{id}"), "order", id)
}

fn save(tx: &Tx, o: &Order) -> TxResult<()> {
    tx.put(&format!("order/{}", o.order_id), o)
}

fn status_name(s: OrderStatus) -> String {
    serde_json::to_value(s).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

impl Orders for SandboxOrders {
    fn create(&self, ctx: Ctx, request: CreateOrder) -> ServiceFuture<Order> {
        ready(self.0.once("create", &ctx, |tx| {
            if request.items.is_empty() {
                return abort(invalid("an order needs at least one item"));
            }
            let order = Order {
                order_id: tx.next_id("order", "ord")?,
                user_id: request.user_id.clone(),
                items: request.items.clone(),
                total_cents: request.total_cents,
                payment_id: request.payment_id.clone(),
                status: OrderStatus::Created,
            };
            save(tx, &order)?;
            Ok(order)
        }))
    }

    fn cancel(&self, ctx: Ctx, request: CancelOrder) -> ServiceFuture<Cancelled> {
        ready(self.0.once("cancel", &ctx, |tx| {
            let id = request.order_id.as_deref();
            let found = tx.undo_target(id, request.key.as_deref(), &["create"], |o: Order| o.order_id)?;
            let Some(order_id) = found else { return Ok(Cancelled { order_id: None, status: None }) };
            let mut o = load(tx, &order_id)?;
            match o.status {
                OrderStatus::Created | OrderStatus::Paid | OrderStatus::Cancelled => {
                    o.status = OrderStatus::Cancelled;
                    save(tx, &o)?;
                    Ok(Cancelled { order_id: Some(o.order_id), status: Some(o.status) })
                }
                other => abort(ActionError::new(
                    "invalid_status",
                    format!("order `{}` is {}; it can no longer be cancelled", o.order_id, status_name(other)),
                )),
            }
        }))
    }

    fn set_status(&self, ctx: Ctx, request: SetStatus) -> ServiceFuture<StatusChanged> {
        ready(self.0.once("set_status", &ctx, |tx| {
            let mut o = load(tx, &request.order_id)?;
            let previous = o.status;
            if previous == OrderStatus::Cancelled && request.status != OrderStatus::Cancelled {
                return abort(ActionError::new(
                    "invalid_status",
                    format!("order `{}` is cancelled; it cannot become {}", o.order_id, status_name(request.status)),
                ));
            }
            o.status = request.status;
            save(tx, &o)?;
            Ok(StatusChanged { order_id: o.order_id, status: o.status, previous })
        }))
    }

    fn get(&self, _: Ctx, request: OrderRef) -> ServiceFuture<Order> {
        ready(self.0.transact(|tx| load(tx, &request.order_id)))
    }
}

pub(super) fn seed(ledger: &Ledger, orders: &[Order]) -> Result<(), ActionError> {
    ledger.transact(|tx| orders.iter().try_for_each(|o| save(tx, o)))
}
