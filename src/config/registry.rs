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

/// What `validate` checks against: the built-in actions, with the templates
/// the config's templates file adds to `notify.send`'s (the built-in registry
/// when the config names no file).
pub(crate) fn for_config(config: &crate::config::Config) -> Result<Arc<Registry>, crate::config::ConfigError> {
    if config.notifications.templates.is_none() {
        return Ok(builtin_shared().clone());
    }
    let mut services = Services::detached();
    services.templates = Some(config.templates()?.names().to_vec());
    with_services(&services, HttpRequest::detached())
        .map(Arc::new)
        .map_err(|e| crate::config::ConfigError(format!("action `{}`: {}", e.action, e.message)))
}

/// The language's own actions, every service operation bound to `services`,
/// and `http.request`.
pub(crate) fn with_services(services: &Services, http: HttpRequest) -> Result<Registry, InvalidSpec> {
    let mut actions = crate::actions::builtin_actions();
    let operations = services.operations().into_iter().chain(std::iter::once(http.operation()));
    actions.extend(operations.map(|op| (op.spec, op.action)));
    if let Some(names) = &services.templates {
        name_templates(&mut actions, names);
    }
    Registry::from_actions(actions)
}

/// `notify.send` takes a template the process knows: its input schema lists
/// them, so `validate` reports a misspelt one (with "did you mean") at the value.
fn name_templates(actions: &mut [(crate::actions::ActionSpec, Arc<dyn crate::actions::Action>)], names: &[String]) {
    for (spec, _) in actions.iter_mut().filter(|(spec, _)| spec.name == "notify.send") {
        if let Some(template) = spec.input_schema.pointer_mut("/properties/template") {
            template["enum"] = serde_json::json!(names);
        }
    }
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
