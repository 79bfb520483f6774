//! The vendor feed, the ERP and the shop catalog: products flow from a vendor,
//! page by page, into the ERP and the catalog.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::actions::Effect;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct VendorProduct {
    pub sku: String,
    pub name: String,
    pub price_cents: u64,
    pub stock: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FetchPage {
    pub vendor_id: String,
    /// From 1.
    #[serde(default = "first")]
    #[schemars(range(min = 1))]
    pub page: u32,
    /// Products a page (default: the vendor's own).
    #[serde(default)]
    #[schemars(range(min = 1, max = 500))]
    pub page_size: Option<u32>,
}

fn first() -> u32 {
    1
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct ProductPage {
    pub vendor_id: String,
    pub page: u32,
    pub total_pages: u32,
    pub total_products: u64,
    /// The next page's number, null on the last page.
    pub next_page: Option<u32>,
    /// Every page number, 1 to total_pages, for a `for_each`.
    pub pages: Vec<u32>,
    pub products: Vec<VendorProduct>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Upsert {
    #[schemars(length(max = 1000))]
    pub products: Vec<VendorProduct>,
    /// Where they come from (a vendor id).
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Upserted {
    pub received: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
}

crate::service! {
    /// Vendors' product feeds.
    trait Vendor, fn vendor_operations, service "vendor" {
        /// Fetches one page of a vendor's products.
        fetch_products(FetchPage) -> ProductPage, Effect::Read, ["not_found"];
    }
}

/// An ERP import under way or done.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Import {
    pub import_id: String,
    /// `running` until the ERP has taken every product, then `done`.
    pub state: ImportState,
    pub received: u64,
    /// How many times its state was asked for.
    #[serde(default)]
    pub checks: u64,
    /// Set once the import is done.
    #[serde(default)]
    pub result: Option<Upserted>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ImportState {
    Running,
    Done,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ImportId {
    pub import_id: String,
}

crate::service! {
    /// The ERP's product master.
    trait Erp, fn erp_operations, service "erp" {
        /// Creates or updates products in the ERP; repeating it changes nothing.
        upsert_products(Upsert) -> Upserted, Effect::Irreversible, [];
        /// Starts an import of products that the ERP takes in its own time; poll `erp.import_status` until `done`.
        start_import(Upsert) -> Import, Effect::Irreversible, [];
        /// Tells how an import stands: `running`, or `done` with what it created and updated.
        import_status(ImportId) -> Import, Effect::Read, ["not_found"];
    }
}

crate::service! {
    /// The shop's catalog.
    trait Catalog, fn catalog_operations, service "catalog" {
        /// Creates or updates products in the shop's catalog; repeating it changes nothing.
        upsert_products(Upsert) -> Upserted, Effect::Irreversible, [];
    }
}
