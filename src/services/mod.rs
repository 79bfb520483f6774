//! The business services a workflow calls: one trait each, declared with
//! [`service!`](crate::service) so that a service's operations, their actions
//! (`service.operation`), their schemas and their HTTP client come from one
//! declaration. Two backends: `sandbox` (stateful, in the sled store, the
//! default) and `http` (a REST client to the company's real service).

pub(crate) mod ai;
pub(crate) mod catalog;
pub(crate) mod courses;
pub(crate) mod errors;
pub(crate) mod inventory;
pub(crate) mod notifications;
pub(crate) mod operation;
pub(crate) mod orders;
pub(crate) mod payments;
pub(crate) mod remote;
pub(crate) mod sandbox;
pub(crate) mod users;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub(crate) use crate::actions::Ctx;
pub(crate) use crate::base::error::ActionError;
pub(crate) use operation::Operation;

/// What a service operation gives back.
pub(crate) type ServiceFuture<T> = Pin<Box<dyn Future<Output = Result<T, ActionError>> + Send>>;

/// A result as a future that is ready at once.
pub(crate) fn ready<T: Send + 'static>(result: Result<T, ActionError>) -> ServiceFuture<T> {
    Box::pin(std::future::ready(result))
}

/// One backend for every service: what the registry binds the actions to.
#[derive(Clone)]
pub(crate) struct Services {
    pub inventory: Arc<dyn inventory::Inventory>,
    pub payments: Arc<dyn payments::Payments>,
    pub orders: Arc<dyn orders::Orders>,
    pub users: Arc<dyn users::Users>,
    pub courses: Arc<dyn courses::Courses>,
    pub vendor: Arc<dyn catalog::Vendor>,
    pub erp: Arc<dyn catalog::Erp>,
    pub catalog: Arc<dyn catalog::Catalog>,
    pub ai: Arc<dyn ai::Ai>,
    pub notify: Arc<dyn notifications::Notify>,
    pub email: Arc<dyn notifications::Email>,
    /// The templates `notify.send` knows, when it sends them itself (none: a
    /// remote service knows its own): `validate` checks names against them.
    pub templates: Option<Vec<String>>,
}

impl Services {
    /// Services with no backend: the registry validation reads has their
    /// contracts; calling one fails with `unavailable`.
    pub(crate) fn detached() -> Services {
        let h = |name: &'static str| Arc::new(remote::Remote(Arc::new(remote::Unbound(name))));
        Services {
            inventory: h("inventory"),
            payments: h("payments"),
            orders: h("orders"),
            users: h("users"),
            courses: h("courses"),
            vendor: h("vendor"),
            erp: h("erp"),
            catalog: h("catalog"),
            ai: h("ai"),
            notify: h("notify"),
            email: h("email"),
            templates: Some(notifications::MailTemplates::builtin().names().to_vec()),
        }
    }

    /// Every operation of every service, bound to these backends.
    pub(crate) fn operations(&self) -> Vec<Operation> {
        let mut all = Vec::new();
        all.extend(inventory::operations(&self.inventory));
        all.extend(payments::operations(&self.payments));
        all.extend(orders::operations(&self.orders));
        all.extend(users::operations(&self.users));
        all.extend(courses::operations(&self.courses));
        all.extend(catalog::vendor_operations(&self.vendor));
        all.extend(catalog::erp_operations(&self.erp));
        all.extend(catalog::catalog_operations(&self.catalog));
        all.extend(ai::operations(&self.ai));
        all.extend(notifications::notify_operations(&self.notify));
        all.extend(notifications::email_operations(&self.email));
        all
    }
}
