//! The sandbox vendor feeds (generated from the seed), ERP and catalog.

use serde::{Deserialize, Serialize};

use super::ledger::{abort, Ledger};
use super::ready;
use crate::services::catalog::*;
use crate::services::errors::not_found;
use crate::services::{ActionError, Ctx, ServiceFuture};

/// A vendor's feed as the seed describes it: `products` products, numbered.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Feed {
    pub vendor_id: String,
    pub name: String,
    pub products: u64,
    pub page_size: u32,
}

impl Feed {
    /// The n-th product (from 1): the same every time.
    fn product(&self, n: u64) -> VendorProduct {
        VendorProduct {
            sku: format!("{}-{n:04}", self.vendor_id.to_uppercase()),
            name: format!("{} item {n}", self.name),
            price_cents: 499 + (n * 137) % 10_000,
            stock: (n * 7) % 50,
        }
    }

    fn page(&self, page: u32, size: u32) -> ProductPage {
        let size = u64::from(size.max(1));
        let total_pages = self.products.div_ceil(size).max(1) as u32;
        let from = u64::from(page - 1) * size + 1;
        let to = (from + size - 1).min(self.products);
        ProductPage {
            vendor_id: self.vendor_id.clone(),
            page,
            total_pages,
            total_products: self.products,
            next_page: (page < total_pages).then_some(page + 1),
            pages: (1..=total_pages).collect(),
            products: (from..=to).map(|n| self.product(n)).collect(),
        }
    }
}

pub(super) struct SandboxVendor(pub Ledger);

impl Vendor for SandboxVendor {
    fn fetch_products(&self, _: Ctx, request: FetchPage) -> ServiceFuture<ProductPage> {
        ready(self.0.transact(|tx| {
            let feed: Feed = tx.require(&format!("feed/{}", request.vendor_id), "vendor", &request.vendor_id)?;
            let page = feed.page(request.page, request.page_size.unwrap_or(feed.page_size));
            if request.page > page.total_pages {
                return abort(not_found("page", &format!("{} of {}", request.page, request.vendor_id)));
            }
            Ok(page)
        }))
    }
}

/// The ERP or the catalog: products by SKU.
pub(super) struct SandboxProducts(pub Ledger);

impl SandboxProducts {
    fn upsert(&self, ctx: Ctx, request: Upsert) -> ServiceFuture<Upserted> {
        ready(self.0.once("upsert_products", &ctx, |tx| {
            let mut done = Upserted { received: request.products.len() as u64, created: 0, updated: 0, unchanged: 0 };
            for p in &request.products {
                let key = format!("product/{}", p.sku);
                match tx.get::<VendorProduct>(&key)? {
                    None => done.created += 1,
                    Some(old) if old == *p => {
                        done.unchanged += 1;
                        continue;
                    }
                    Some(_) => done.updated += 1,
                }
                tx.put(&key, p)?;
            }
            Ok(done)
        }))
    }
}

impl Erp for SandboxProducts {
    fn upsert_products(&self, ctx: Ctx, request: Upsert) -> ServiceFuture<Upserted> {
        self.upsert(ctx, request)
    }
}

impl Catalog for SandboxProducts {
    fn upsert_products(&self, ctx: Ctx, request: Upsert) -> ServiceFuture<Upserted> {
        self.upsert(ctx, request)
    }
}

pub(super) fn seed(ledger: &Ledger, feeds: &[Feed]) -> Result<(), ActionError> {
    ledger.transact(|tx| feeds.iter().try_for_each(|f| tx.put(&format!("feed/{}", f.vendor_id), f)))
}
