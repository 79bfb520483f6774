//! The seed: what a fresh sandbox holds. `sandbox/seed.yaml` ships in the
//! binary; `[sandbox] seed = "FILE"` in the config replaces it.

use std::path::Path;

use serde::Deserialize;

use super::ledger::Ledger;
use super::{ai, catalog, courses, inventory, orders, payments, users};
use crate::services::ActionError;

/// The seed shipped with sagaflow.
pub(crate) const BUILTIN_SEED: &str = include_str!("../../../sandbox/seed.yaml");

/// The largest seed file read.
pub(crate) const MAX_SEED_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct Seed {
    pub products: Vec<inventory::Product>,
    pub cards: Vec<payments::Card>,
    pub payments: Vec<crate::services::payments::Payment>,
    pub orders: Vec<crate::services::orders::Order>,
    pub users: Vec<crate::services::users::User>,
    pub courses: Vec<courses::CourseRecord>,
    pub vendor_feeds: Vec<catalog::Feed>,
    pub ai_accounts: Vec<ai::Account>,
}

impl Seed {
    /// Reads a seed from YAML; a wrong one gets the file and the field.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Seed, String> {
        let loaded = crate::dsl::loader::load_bytes(path, text.as_bytes());
        let root = loaded.root.map_err(|d| format!("{}: {}", loaded.file.position(d.span.start), d.message))?;
        serde_json::from_value(root.to_json()).map_err(|e| format!("{}: not a sandbox seed: {e}", path.display()))
    }

    pub(crate) fn builtin() -> Seed {
        Seed::parse(Path::new("sandbox/seed.yaml"), BUILTIN_SEED)
            .unwrap_or_else(|e| panic!("the shipped seed is broken (a test checks it): {e}"))
    }

    pub(crate) fn load(path: &Path) -> Result<Seed, String> {
        let text = crate::base::file::read_regular_text(path, MAX_SEED_BYTES)
            .map_err(|e| format!("cannot read the seed {}: {e}", path.display()))?;
        Seed::parse(path, &text)
    }

    /// Writes one service's part of the seed.
    pub(crate) fn apply(&self, service: &str, ledger: &Ledger) -> Result<(), ActionError> {
        match service {
            "inventory" => inventory::seed(ledger, &self.products),
            "payments" => payments::seed(ledger, &self.cards, &self.payments),
            "orders" => orders::seed(ledger, &self.orders),
            "users" => users::seed(ledger, &self.users),
            "courses" => courses::seed(ledger, &self.courses),
            "vendor" => catalog::seed(ledger, &self.vendor_feeds),
            "ai" => ai::seed(ledger, &self.ai_accounts),
            _ => Ok(()),
        }?;
        // A marker, so that a service with an empty seed is not seeded again.
        ledger.transact(|tx| tx.put("m/seeded", &true))
    }
}
