//! Actions: what a step can do. The validator and the engine read the same registry.

mod builtin;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value as Json;

/// What running an action does to the world, so the validator can reason about sagas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Reads only; safe to repeat, nothing to undo.
    Read,
    /// Changes something that the named action undoes.
    Reversible { undo: String },
    /// Changes something that cannot be taken back (money captured, mail sent).
    Irreversible,
}

impl Effect {
    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Reversible { .. } => "reversible",
            Effect::Irreversible => "irreversible",
        }
    }
}

/// The declaration of an action: its name, contract and effect.
#[derive(Debug, Clone)]
pub struct ActionSpec {
    /// `service.operation`, or a built-in's single word (`mock`, `sleep`).
    pub name: String,
    /// One line.
    pub description: String,
    pub effect: Effect,
    /// JSON Schema of `with`.
    pub input_schema: Json,
    /// JSON Schema of the output.
    pub output_schema: Json,
}

/// An action as registered: its spec with the input schema compiled once.
pub struct Registered {
    pub spec: ActionSpec,
    pub input_validator: jsonschema::Validator,
}

/// The set of actions a workflow may call.
pub struct Registry {
    actions: BTreeMap<String, Registered>,
}

/// A spec whose schema does not compile: a programming error in the registry.
#[derive(Debug)]
pub struct InvalidSpec {
    pub action: String,
    pub message: String,
}

impl Registry {
    /// The built-in actions, compiled once per process.
    pub fn builtin() -> &'static Registry {
        static REGISTRY: OnceLock<Registry> = OnceLock::new();
        REGISTRY.get_or_init(|| {
            Registry::from_specs(builtin::specs()).expect("built-in action schemas compile (a test checks it)")
        })
    }

    pub fn from_specs(specs: Vec<ActionSpec>) -> Result<Registry, InvalidSpec> {
        let mut actions = BTreeMap::new();
        for spec in specs {
            let input_validator = jsonschema::draft202012::new(&spec.input_schema)
                .map_err(|e| InvalidSpec { action: spec.name.clone(), message: e.to_string() })?;
            jsonschema::draft202012::new(&spec.output_schema)
                .map_err(|e| InvalidSpec { action: spec.name.clone(), message: e.to_string() })?;
            actions.insert(spec.name.clone(), Registered { spec, input_validator });
        }
        Ok(Registry { actions })
    }

    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.actions.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.actions.keys().map(String::as_str)
    }

    pub fn specs(&self) -> impl Iterator<Item = &ActionSpec> {
        self.actions.values().map(|r| &r.spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_schemas_compile() {
        let registry = Registry::builtin();
        for name in ["mock", "sleep", "event.wait", "event.emit"] {
            assert!(registry.get(name).is_some(), "{name}");
        }
    }
}
