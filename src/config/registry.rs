//! The composition root of the action registries: the language's own actions,
//! every service operation bound to its backend, and `http.request`.

use std::sync::{Arc, OnceLock};

use crate::actions::{InvalidSpec, Registry};
use crate::adapters::http_request::HttpRequest;
use crate::services::Services;

/// The built-in actions with no backends behind them (what validation reads),
/// compiled once per process.
pub fn builtin() -> &'static Registry {
    builtin_shared()
}

/// The same, to hand to an engine (which shares its registry).
pub(crate) fn builtin_shared() -> &'static Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let registry = with_services(&Services::detached(), HttpRequest::detached())
            .expect("built-in action schemas compile (a test checks it)");
        Arc::new(registry)
    })
}

/// The language's own actions, every service operation bound to `services`,
/// and `http.request`.
pub(crate) fn with_services(services: &Services, http: HttpRequest) -> Result<Registry, InvalidSpec> {
    let mut actions = crate::actions::builtin_actions();
    let operations = services.operations().into_iter().chain(std::iter::once(http.operation()));
    actions.extend(operations.map(|op| (op.spec, op.action)));
    Registry::from_actions(actions)
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtin_schemas_compile() {
        let registry = super::builtin();
        for name in ["mock", "sleep", "event.wait", "event.emit", "inventory.reserve", "http.request"] {
            assert!(registry.get(name).is_some(), "{name}");
        }
    }
}
