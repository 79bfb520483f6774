//! A run's transitions as the API streams them and the console draws them:
//! each journal entry with its step's id beside its index.

use serde_json::{json, Value as Json};

use crate::engine::compiled::CompiledWorkflow;
use crate::journal::entry::Entry;

/// One entry as JSON: `seq`, `type` and its fields, plus `step_id` where it names a step.
pub(crate) fn describe(wf: &CompiledWorkflow, seq: u32, entry: &Entry) -> Json {
    let mut value = serde_json::to_value(entry).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("seq".into(), json!(seq));
        let step = object.get("step").and_then(Json::as_u64).and_then(|s| wf.steps.get(s as usize));
        if let Some(step) = step {
            object.insert("step_id".into(), json!(step.id));
        }
    }
    value
}

/// Whether the run ends with this entry.
pub(crate) fn is_end(entry: &Entry) -> bool {
    matches!(entry, Entry::RunFinished { .. })
}
