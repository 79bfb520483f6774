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
        ready(self.0.once("upsert_products", &ctx, |tx| Self::apply(tx, &request.products)))
    }
}

/// How many status checks an import of `n` products takes to be done: two,
/// and one more for every 100 products, as a real ERP takes longer over more.
fn checks_needed(n: u64) -> u64 {
    2 + n / 100
}

/// What the sandbox ERP keeps of an import besides what it shows: the
/// products, and the checks left before it is done (a `job/` record, not listed).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    products: Vec<VendorProduct>,
    checks_left: u64,
}

impl SandboxProducts {
    fn apply(tx: &super::ledger::Tx, products: &[VendorProduct]) -> super::ledger::TxResult<Upserted> {
        let mut done = Upserted { received: products.len() as u64, created: 0, updated: 0, unchanged: 0 };
        for p in products {
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
    }
}

impl Erp for SandboxProducts {
    fn upsert_products(&self, ctx: Ctx, request: Upsert) -> ServiceFuture<Upserted> {
        self.upsert(ctx, request)
    }

    fn start_import(&self, ctx: Ctx, request: Upsert) -> ServiceFuture<Import> {
        ready(self.0.once("start_import", &ctx, |tx| {
            let import_id = tx.next_id("import", "imp")?;
            let received = request.products.len() as u64;
            let import =
                Import { import_id: import_id.clone(), state: ImportState::Running, received, checks: 0, result: None };
            let job = Job { products: request.products.clone(), checks_left: checks_needed(received) };
            tx.put(&format!("import/{import_id}"), &import)?;
            tx.put(&format!("job/{import_id}"), &job)?;
            Ok(import)
        }))
    }

    fn import_status(&self, ctx: Ctx, request: ImportId) -> ServiceFuture<Import> {
        ready(self.0.once("import_status", &ctx, |tx| {
            let key = format!("import/{}", request.import_id);
            let mut import: Import = tx.require(&key, "import", &request.import_id)?;
            if import.state == ImportState::Running {
                let job_key = format!("job/{}", request.import_id);
                let mut job: Job = tx.require(&job_key, "import", &request.import_id)?;
                job.checks_left = job.checks_left.saturating_sub(1);
                import.checks += 1;
                if job.checks_left == 0 {
                    import.result = Some(Self::apply(tx, &job.products)?);
                    import.state = ImportState::Done;
                }
                tx.put(&key, &import)?;
                tx.put(&job_key, &job)?;
            }
            Ok(import)
        }))
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
