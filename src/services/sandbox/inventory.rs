//! The sandbox inventory: products with stock, reservations that hold it.
//! Invariant: a product's `reserved` never exceeds its `stock`.

use serde::{Deserialize, Serialize};

use super::ledger::{abort, Ledger, Tx, TxResult};
use super::ready;
use crate::services::inventory::*;
use crate::services::{ActionError, Ctx, ServiceFuture};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Product {
    pub sku: String,
    pub name: String,
    pub price_cents: u64,
    pub stock: u64,
    #[serde(default)]
    pub reserved: u64,
}

impl Product {
    pub(crate) fn available(&self) -> u64 {
        self.stock.saturating_sub(self.reserved)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Held {
    reservation_id: String,
    sku: String,
    quantity: u32,
    reference: Option<String>,
    released: bool,
}

pub(super) struct SandboxInventory(pub Ledger);

fn product(tx: &Tx, sku: &str) -> TxResult<Product> {
    tx.require(&format!("product/{sku}"), "product", sku)
}

impl Inventory for SandboxInventory {
    fn check(&self, _: Ctx, request: CheckStock) -> ServiceFuture<StockLevel> {
        ready(self.0.transact(|tx| {
            let p = product(tx, &request.sku)?;
            let available = p.available();
            Ok(StockLevel {
                sku: p.sku,
                name: p.name,
                price_cents: p.price_cents,
                available,
                sufficient: available >= u64::from(request.quantity),
            })
        }))
    }

    fn reserve(&self, ctx: Ctx, request: ReserveStock) -> ServiceFuture<Reservation> {
        ready(self.0.once("reserve", &ctx, |tx| {
            let mut p = product(tx, &request.sku)?;
            let wanted = u64::from(request.quantity);
            if p.available() < wanted {
                return abort(ActionError::new(
                    "out_of_stock",
                    format!("{} of `{}` asked, {} available", wanted, p.sku, p.available()),
                ));
            }
            p.reserved += wanted;
            tx.put(&format!("product/{}", p.sku), &p)?;
            let reservation_id = tx.next_id("reservation", "res")?;
            let held = Held {
                reservation_id: reservation_id.clone(),
                sku: p.sku.clone(),
                quantity: request.quantity,
                reference: request.reference.clone(),
                released: false,
            };
            tx.put(&format!("reservation/{reservation_id}"), &held)?;
            Ok(Reservation { reservation_id, sku: p.sku.clone(), quantity: request.quantity, available: p.available() })
        }))
    }

    fn release(&self, ctx: Ctx, request: ReleaseStock) -> ServiceFuture<Released> {
        ready(self.0.once("release", &ctx, |tx| {
            let id = request.reservation_id.as_deref();
            let found = tx.undo_target(id, request.key.as_deref(), &["reserve"], |r: Reservation| r.reservation_id)?;
            let Some(reservation_id) = found else {
                return Ok(Released { reservation_id: None, released: false, available: None });
            };
            let key = format!("reservation/{reservation_id}");
            let mut held: Held = tx.require(&key, "reservation", &reservation_id)?;
            let mut p = product(tx, &held.sku)?;
            let released = !held.released;
            if released {
                p.reserved = p.reserved.saturating_sub(u64::from(held.quantity));
                held.released = true;
                tx.put(&key, &held)?;
                tx.put(&format!("product/{}", p.sku), &p)?;
            }
            Ok(Released { reservation_id: Some(reservation_id), released, available: Some(p.available()) })
        }))
    }
}

/// Seeds the products.
pub(super) fn seed(ledger: &Ledger, products: &[Product]) -> Result<(), ActionError> {
    ledger.transact(|tx| {
        for p in products {
            tx.put(&format!("product/{}", p.sku), p)?;
        }
        Ok(())
    })
}
