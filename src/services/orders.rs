//! Orders: what a customer bought and where it stands.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::operation::undone_by;
use crate::actions::Effect;

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderLine {
    pub sku: String,
    #[schemars(range(min = 1))]
    pub quantity: u32,
    #[serde(default)]
    pub price_cents: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrder {
    pub user_id: String,
    #[schemars(length(min = 1))]
    pub items: Vec<OrderLine>,
    pub total_cents: u64,
    #[serde(default)]
    pub payment_id: Option<String>,
}

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum OrderStatus {
    Created,
    Paid,
    Shipped,
    Delivered,
    Cancelled,
    Refunded,
    PartiallyRefunded,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Order {
    pub order_id: String,
    pub user_id: String,
    pub items: Vec<OrderLine>,
    pub total_cents: u64,
    pub payment_id: Option<String>,
    pub status: OrderStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OrderRef {
    pub order_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelOrder {
    /// The order to cancel; or give `key`.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The idempotency key of the `create` call (`{{step.key}}` in a
    /// compensate): found even when its answer was lost; nothing to cancel
    /// when it recorded no order.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Cancelled {
    /// None: the call named by `key` recorded no order.
    pub order_id: Option<String>,
    /// `cancelled`, or none when there was no order to cancel.
    pub status: Option<OrderStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SetStatus {
    pub order_id: String,
    pub status: OrderStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct StatusChanged {
    pub order_id: String,
    pub status: OrderStatus,
    pub previous: OrderStatus,
}

crate::service! {
    /// Orders of the shop.
    trait Orders, fn operations, service "orders" {
        /// Records a new order in status `created`.
        create(CreateOrder) -> Order, undone_by("orders.cancel"), ["invalid_input"];
        /// Cancels an order; cancelling twice is harmless.
        cancel(CancelOrder) -> Cancelled, Effect::Irreversible, ["not_found", "invalid_status"];
        /// Moves an order to another status (a cancelled order stays cancelled).
        set_status(SetStatus) -> StatusChanged, Effect::Irreversible, ["not_found", "invalid_status"];
        /// Reads an order.
        get(OrderRef) -> Order, Effect::Read, ["not_found"];
    }
}
