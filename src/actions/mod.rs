//! Actions: what a step can do. The validator and the engine read the same registry.

pub(crate) mod builtin;

pub(crate) use builtin::actions as builtin_actions;
mod mock;
pub(crate) mod sleep;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

pub(crate) use crate::base::error::ActionError;

/// One call of an action: its input, and who calls (the context a service
/// operation is given as it is).
#[derive(Debug, Clone)]
pub struct Call {
    pub input: Json,
    pub ctx: Ctx,
}

/// Who calls and under what key: the run and step, the attempt (from 1; the
/// same for a retry of a crashed attempt), the idempotency key (the same for
/// every attempt of one step and item: a service that sees it twice must not
/// act twice), and the token set when the attempt is cancelled (its timeout
/// passed, the run rolls back).
#[derive(Debug, Clone)]
pub struct Ctx {
    pub idempotency_key: String,
    pub run_id: String,
    pub step: String,
    pub attempt: u32,
    pub cancel: CancellationToken,
    /// The W3C `traceparent` naming this attempt's span, when traces are exported.
    pub traceparent: Option<String>,
}

impl Ctx {
    /// A context for calls made outside a run (tests).
    #[cfg(test)]
    pub(crate) fn detached(idempotency_key: &str) -> Ctx {
        Ctx {
            idempotency_key: idempotency_key.to_owned(),
            run_id: String::new(),
            step: String::new(),
            attempt: 1,
            cancel: CancellationToken::new(),
            traceparent: None,
        }
    }
}

/// What an action call gives back.
pub(crate) type ActionFuture = Pin<Box<dyn Future<Output = Result<Json, ActionError>> + Send>>;

/// An action's behaviour. Its contract (schemas, effect) is its [`ActionSpec`].
pub trait Action: Send + Sync {
    fn call(&self, call: Call) -> ActionFuture;
}

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
    /// The error codes it may fail with besides the DSL's (docs/services.md says what each means).
    pub errors: Vec<String>,
}

/// An action as registered: its spec with the schemas compiled once, and its behaviour.
pub struct Registered {
    pub spec: ActionSpec,
    pub input_validator: jsonschema::Validator,
    pub output_validator: jsonschema::Validator,
    pub action: Arc<dyn Action>,
}

/// The action that runs another workflow as a child run (DSL.md B1).
pub(crate) const CHILD_ACTION: &str = "workflow.run";

/// The set of actions a workflow may call.
pub struct Registry {
    actions: BTreeMap<String, Arc<Registered>>,
}

/// A spec whose schema does not compile: a programming error in the registry.
#[derive(Debug)]
pub struct InvalidSpec {
    pub action: String,
    pub message: String,
}

impl Registry {
    pub fn from_actions(actions: Vec<(ActionSpec, Arc<dyn Action>)>) -> Result<Registry, InvalidSpec> {
        let compile = |spec: &ActionSpec, schema: &Json| {
            jsonschema::draft202012::new(schema)
                .map_err(|e| InvalidSpec { action: spec.name.clone(), message: e.to_string() })
        };
        let mut registered = BTreeMap::new();
        for (spec, action) in actions {
            let input_validator = compile(&spec, &spec.input_schema)?;
            let output_validator = compile(&spec, &spec.output_schema)?;
            let entry = Registered { spec, input_validator, output_validator, action };
            registered.insert(entry.spec.name.clone(), Arc::new(entry));
        }
        Ok(Registry { actions: registered })
    }

    pub fn get(&self, name: &str) -> Option<&Registered> {
        self.actions.get(name).map(|r| &**r)
    }

    /// An action to keep past the registry's borrow (an attempt in its own task).
    pub fn shared(&self, name: &str) -> Option<Arc<Registered>> {
        self.actions.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.actions.keys().map(String::as_str)
    }

    pub fn specs(&self) -> impl Iterator<Item = &ActionSpec> {
        self.actions.values().map(|r| &r.spec)
    }
}
