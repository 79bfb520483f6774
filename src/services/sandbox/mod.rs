//! The sandbox backend of every service: stateful, in the same sled database
//! as the runs (one tree a service), seeded from `sandbox/seed.yaml`, and
//! idempotent by the idempotency key.

mod ai;
mod catalog;
mod courses;
mod inventory;
pub(crate) mod ledger;
mod mailbox;
mod orders;
mod payments;
pub(crate) mod seed;
mod users;

use crate::base::error::ActionError;
use std::sync::Arc;

use serde_json::Value as Json;

use super::notifications::{Emailer, MailTemplates, Mailer, Notifier};
use super::Services;
use ledger::Ledger;
pub(crate) use seed::Seed;

/// The sandbox never waits: its answers are ready at once.
pub(crate) use super::ready;

/// The sandbox services' names, in the order `sandbox show` prints them, with
/// the kinds of record each keeps.
pub(crate) const SERVICES: &[(&str, &[&str])] = &[
    ("inventory", &["product", "reservation"]),
    ("payments", &["card", "payment", "refund"]),
    ("orders", &["order"]),
    ("users", &["user"]),
    ("courses", &["course", "seat", "enrolment"]),
    ("vendor", &["feed"]),
    ("erp", &["product", "import"]),
    ("catalog", &["product"]),
    ("ai", &["account", "hold"]),
    ("mail", &["mail"]),
];

/// The sandbox state in the run store's database (sled, or PostgreSQL): one
/// ledger a service, opened once.
#[derive(Clone)]
pub(crate) struct Sandbox {
    ledgers: Arc<std::collections::BTreeMap<&'static str, Ledger>>,
    /// The sled database, flushed after a reset; none in PostgreSQL (each write commits).
    db: Option<sled::Db>,
}

/// Why the sandbox cannot do what was asked.
#[derive(Debug)]
pub enum SandboxError {
    /// sled could not open, read or write the sandbox's trees.
    Storage(sled::Error),
    /// A ledger's read or write failed.
    Ledger(ActionError),
    /// A service's seed could not be written.
    Seed { service: &'static str, error: ActionError },
    /// There is no sandbox service of this name.
    NoService(String),
}

impl std::fmt::Display for SandboxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxError::Storage(e) => write!(f, "the sandbox store failed: {e}"),
            SandboxError::Ledger(e) => f.write_str(&e.message),
            SandboxError::Seed { service, error } => write!(f, "cannot seed the sandbox {service}: {}", error.message),
            SandboxError::NoService(name) => write!(f, "there is no sandbox service `{name}`"),
        }
    }
}

impl std::error::Error for SandboxError {}

impl From<sled::Error> for SandboxError {
    fn from(e: sled::Error) -> Self {
        SandboxError::Storage(e)
    }
}

impl From<ActionError> for SandboxError {
    fn from(e: ActionError) -> Self {
        SandboxError::Ledger(e)
    }
}

impl From<SandboxError> for String {
    fn from(e: SandboxError) -> Self {
        e.to_string()
    }
}

impl Sandbox {
    /// Opens the sandbox trees of `db`, seeding any service that has no state yet.
    /// `buffered`: the services' writes wait for [`Sandbox::flush`], which the
    /// run store calls before each group commit (see [`ledger`]); otherwise
    /// each call writes through.
    pub(crate) fn open(db: sled::Db, seed: &Seed, buffered: bool) -> Result<Sandbox, SandboxError> {
        let mut ledgers = Vec::new();
        for (service, _) in SERVICES {
            ledgers.push((*service, Ledger::new(db.open_tree(format!("sandbox.{service}"))?, buffered)));
        }
        Sandbox::seeded(ledgers, Some(db), seed)
    }

    /// The sandbox in a PostgreSQL store's database, shared by its workers.
    pub(crate) fn open_postgres(store: &crate::store::postgres::PgStore, seed: &Seed) -> Result<Sandbox, SandboxError> {
        let table = store.sandbox().map_err(|e| SandboxError::Ledger(ActionError::new("unavailable", e.message)))?;
        let ledgers =
            SERVICES.iter().map(|(service, _)| (*service, Ledger::postgres(table.clone(), service))).collect();
        Sandbox::seeded(ledgers, None, seed)
    }

    /// Seeds any service that has no state yet.
    fn seeded(
        ledgers: Vec<(&'static str, Ledger)>,
        db: Option<sled::Db>,
        seed: &Seed,
    ) -> Result<Sandbox, SandboxError> {
        for (service, ledger) in &ledgers {
            if ledger.is_empty()? {
                seed.apply(service, ledger).map_err(|error| SandboxError::Seed { service, error })?;
            }
        }
        let sandbox = Sandbox { ledgers: Arc::new(ledgers.into_iter().collect()), db };
        sandbox.flush()?;
        Ok(sandbox)
    }

    /// Writes every service's buffered writes to sled (the next flush makes them durable).
    pub(crate) fn flush(&self) -> Result<(), SandboxError> {
        Ok(self.ledgers.values().try_for_each(Ledger::flush)?)
    }

    /// A sandbox in a temporary database, gone when dropped (unit tests, benchmarks).
    pub(crate) fn temporary(seed: &Seed) -> Result<Sandbox, SandboxError> {
        let db = sled::Config::new().temporary(true).open()?;
        Sandbox::open(db, seed, false)
    }

    pub(crate) fn ledger(&self, service: &str) -> Result<Ledger, SandboxError> {
        self.ledgers.get(service).cloned().ok_or_else(|| SandboxError::NoService(service.to_owned()))
    }

    /// Empties every service and seeds it again.
    pub(crate) fn reset(&self, seed: &Seed) -> Result<(), SandboxError> {
        for (service, _) in SERVICES {
            let ledger = self.ledger(service)?;
            ledger.clear()?;
            seed.apply(service, &ledger).map_err(|error| SandboxError::Seed { service, error })?;
        }
        // The seed's writes are buffered in the ledgers: write them, then make them durable.
        self.flush()?;
        if let Some(db) = &self.db {
            db.flush()?;
        }
        Ok(())
    }

    /// The state of one service (or every one): `{service: {kind: [records]}}`.
    pub(crate) fn show(&self, only: Option<&str>) -> Result<Json, SandboxError> {
        let mut out = serde_json::Map::new();
        for (service, kinds) in SERVICES.iter().filter(|(s, _)| only.is_none_or(|o| o == *s)) {
            let ledger = self.ledger(service)?;
            let mut records = serde_json::Map::new();
            for kind in *kinds {
                records.insert((*kind).to_owned(), Json::Array(ledger.all(kind)?));
            }
            out.insert((*service).to_owned(), Json::Object(records));
        }
        Ok(Json::Object(out))
    }

    /// The sandbox mailbox as a mailer.
    pub(crate) fn mailbox(&self) -> Result<Arc<dyn Mailer>, SandboxError> {
        Ok(Arc::new(mailbox::Mailbox(self.ledger("mail")?)))
    }

    /// Every service on the sandbox, mail in the mailbox.
    pub(crate) fn services(&self, templates: Arc<MailTemplates>) -> Result<Services, SandboxError> {
        let users: Arc<dyn super::users::Users> = Arc::new(users::SandboxUsers(self.ledger("users")?));
        let mailer = self.mailbox()?;
        Ok(Services {
            inventory: Arc::new(inventory::SandboxInventory(self.ledger("inventory")?)),
            payments: Arc::new(payments::SandboxPayments(self.ledger("payments")?)),
            orders: Arc::new(orders::SandboxOrders(self.ledger("orders")?)),
            courses: Arc::new(courses::SandboxCourses(self.ledger("courses")?)),
            vendor: Arc::new(catalog::SandboxVendor(self.ledger("vendor")?)),
            erp: Arc::new(catalog::SandboxProducts(self.ledger("erp")?)),
            catalog: Arc::new(catalog::SandboxProducts(self.ledger("catalog")?)),
            ai: Arc::new(ai::SandboxAi(self.ledger("ai")?)),
            templates: Some(templates.names().to_vec()),
            notify: Arc::new(Notifier { templates, users: users.clone(), mailer: mailer.clone() }),
            email: Arc::new(Emailer(mailer)),
            users,
        })
    }
}

#[cfg(test)]
mod tests;
