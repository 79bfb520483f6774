//! Inventory: stock of products, held by reservations until an order ships.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::operation::undone_by;
use crate::actions::Effect;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckStock {
    /// The product's SKU.
    pub sku: String,
    /// How many the caller needs (default 1).
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct StockLevel {
    pub sku: String,
    pub name: String,
    /// Price of one, in cents.
    pub price_cents: u64,
    /// Units free to reserve.
    pub available: u64,
    /// Whether `quantity` units are available.
    pub sufficient: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReserveStock {
    pub sku: String,
    #[schemars(range(min = 1))]
    pub quantity: u32,
    /// What the stock is held for (an order id), shown in `sandbox show`.
    #[serde(default)]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Reservation {
    pub reservation_id: String,
    pub sku: String,
    pub quantity: u32,
    /// Units of the product still free after this reservation.
    pub available: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReleaseStock {
    /// The reservation to release; or give `key`.
    #[serde(default)]
    pub reservation_id: Option<String>,
    /// The idempotency key of the `reserve` call (`{{step.key}}` in a
    /// compensate): its reservation is found even when its answer was lost,
    /// and there is nothing to release when it made none.
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Released {
    /// None: the `reserve` call named by `key` made no reservation.
    pub reservation_id: Option<String>,
    /// False when it had been released before (releasing twice is harmless),
    /// or there was nothing to release.
    pub released: bool,
    /// Units of the product free after this; none when nothing was released.
    pub available: Option<u64>,
}

crate::service! {
    /// Stock of products.
    trait Inventory, fn operations, service "inventory" {
        /// Tells how many units of a product are free to reserve.
        check(CheckStock) -> StockLevel, Effect::Read, ["not_found"];
        /// Holds units of a product for an order; fails with out_of_stock when too few are free.
        reserve(ReserveStock) -> Reservation, undone_by("inventory.release"), ["out_of_stock", "not_found"];
        /// Gives the units of a reservation back to stock; releasing twice is harmless.
        release(ReleaseStock) -> Released, Effect::Irreversible, ["not_found"];
    }
}
