//! The built-in actions of the language: `mock`, `sleep`, `event.wait`, `event.emit`, `fail`.

use std::sync::Arc;

use serde_json::json;

use super::mock::Mock;
use super::{Action, ActionError, ActionFuture, ActionSpec, Call, Effect};
use crate::dsl::names::EVENT_TYPE_PATTERN;

const DURATION_PATTERN: &str = "^[0-9]+(ms|s|m|h|d)$";

pub(crate) fn actions() -> Vec<(ActionSpec, Arc<dyn Action>)> {
    vec![
        (mock(), Arc::new(Mock)),
        (sleep(), Arc::new(super::sleep::Sleep)),
        (event_wait(), Arc::new(EngineNative("event.wait"))),
        (event_emit(), Arc::new(EngineNative("event.emit"))),
        (fail(), Arc::new(Fail)),
        (workflow_run(), Arc::new(EngineNative("workflow.run"))),
    ]
}

/// `fail`: the error its input names (a check written in the workflow). As a
/// step the engine fails it at once and never retries it; this serves a
/// compensation that is a `fail`.
struct Fail;

impl Action for Fail {
    fn call(&self, call: Call) -> ActionFuture {
        Box::pin(async move { Err(failure(&call.input)) })
    }
}

/// The error a `fail` step's input names.
pub(crate) fn failure(input: &serde_json::Value) -> ActionError {
    let text = |field: &str| input.get(field).and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
    let code = Some(text("code")).filter(|c| !c.is_empty()).unwrap_or_else(|| "failed".to_owned());
    ActionError::new(code, text("message"))
}

fn fail() -> ActionSpec {
    ActionSpec {
        name: "fail".into(),
        description:
            "Fails its step with the code and message it is given, never retried: a check written in the workflow."
                .into(),
        effect: Effect::Read,
        input_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["code", "message"],
            "properties": {
                "code": { "type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "The error code, like over_limit." },
                "message": { "type": "string", "description": "What is wrong, in plain words." }
            }
        }),
        output_schema: json!({}),
        errors: Vec::new(),
    }
}

fn workflow_run() -> ActionSpec {
    ActionSpec {
        name: "workflow.run".into(),
        description: "Runs another workflow as a child run and waits for it, without a task; the output is the child's output, a failure its error. Undone, when the run rolls back, by compensating the child.".into(),
        effect: Effect::Read,
        input_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["workflow"],
            "properties": {
                "workflow": { "type": "string", "pattern": "^[a-z][a-z0-9_.-]*$", "description": "The name of the workflow to run." },
                "input": { "description": "The child run's input, checked against the child's `input:`." }
            }
        }),
        output_schema: json!({}),
        // Besides these, a child's failure is the step's with the child's code.
        errors: Vec::new(),
    }
}

/// An action the engine runs itself (the outbox, event waits). Its `call` is
/// reached only where the engine cannot run it, as a compensation waiting for an
/// event: that fails in plain words.
struct EngineNative(&'static str);

impl Action for EngineNative {
    fn call(&self, _: Call) -> ActionFuture {
        let name = self.0;
        Box::pin(async move {
            Err(ActionError::new(
                "invalid_input",
                format!("`{name}` cannot run here: a compensation does not wait for events"),
            ))
        })
    }
}

fn mock() -> ActionSpec {
    ActionSpec {
        name: "mock".into(),
        description: "Returns a given output, or fails, after an optional delay: for tests and dry runs.".into(),
        effect: Effect::Read,
        input_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "output": { "description": "The step's output (default null)." },
                "fail_attempts": { "type": "integer", "minimum": 0, "description": "The first N attempts fail." },
                "fail": { "type": "boolean", "description": "Every attempt fails." },
                "error": { "type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "The code of those failures (default unavailable)." },
                "delay": { "type": "string", "pattern": DURATION_PATTERN, "description": "Each attempt first sleeps this long." }
            }
        }),
        output_schema: json!({}),
        errors: Vec::new(),
    }
}

fn sleep() -> ActionSpec {
    ActionSpec {
        name: "sleep".into(),
        description: "Waits durably for a duration or until a point in time; the run holds no thread meanwhile.".into(),
        effect: Effect::Read,
        input_schema: json!({
            "type": "object",
            "additionalProperties": false,
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "for": { "type": ["string", "integer"], "pattern": DURATION_PATTERN, "minimum": 0 },
                "until": { "type": "string", "description": "An RFC 3339 time, like 2026-12-01T09:00:00Z." }
            }
        }),
        output_schema: json!({
            "type": "object",
            "properties": { "woke_at": { "type": "string" } }
        }),
        errors: Vec::new(),
    }
}

/// The input of the event actions: a type, a key, and for `event.emit` its data.
fn event_input(with_data: bool) -> serde_json::Value {
    let mut schema = json!({
        "type": "object",
        "additionalProperties": false,
        "required": ["type"],
        "properties": {
            "type": { "type": "string", "pattern": EVENT_TYPE_PATTERN },
            "key": { "type": ["string", "number"] }
        }
    });
    if with_data {
        schema["properties"]["data"] = json!({});
    }
    schema
}

fn event_wait() -> ActionSpec {
    ActionSpec {
        name: "event.wait".into(),
        description: "Waits durably until an event of this type and key arrives; the output is the event's data."
            .into(),
        effect: Effect::Read,
        input_schema: event_input(false),
        output_schema: json!({}),
        errors: Vec::new(),
    }
}

fn event_emit() -> ActionSpec {
    ActionSpec {
        name: "event.emit".into(),
        description: "Emits an event through the outbox, in the same commit as the step; delivered at least once."
            .into(),
        effect: Effect::Irreversible,
        input_schema: event_input(true),
        output_schema: json!({
            "type": "object",
            "properties": { "event_id": { "type": "string" } }
        }),
        errors: Vec::new(),
    }
}
