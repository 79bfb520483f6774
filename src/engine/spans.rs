//! A run's spans (OpenTelemetry), folded from its journal: the run, each
//! step (or item of a `for_each`), each attempt, each compensation attempt.
//!
//! ```text
//! run order_placement            (child of the traceparent it was started with, if any)
//! ├── step reserve_stock
//! │   ├── reserve_stock #1       (attempt; sent as traceparent to what it calls)
//! │   └── undo reserve_stock #1  (compensation)
//! └── step charge_payment
//!     └── charge_payment #1      (a child run's span hangs here)
//! ```
//!
//! An attempt's span is exported as it ends, a step's and the run's when the
//! run ends. Ids come from [`crate::base::trace`]: the same in every process.

use std::collections::{BTreeMap, HashMap};

use super::compiled::CompiledWorkflow;
use super::machine::RunState;
use super::wanted::AttemptKey;
use crate::adapters::otlp::{Attr, SpanData};
use crate::base::trace::{span_id, trace_of, TraceParent};
use crate::journal::entry::{Entry, Item, Outcome};
use crate::journal::status::RunStatus;

/// The span of the run itself.
pub(crate) fn run_span(run_id: &str) -> [u8; 8] {
    span_id(&[run_id, "run"])
}

/// The span of a step, or of one item of a `for_each` step.
fn unit_span(run_id: &str, step: usize, item: Item) -> [u8; 8] {
    span_id(&[run_id, "step", &step.to_string(), &item_text(item)])
}

/// The span of one attempt (or compensation attempt), which began at `at`.
fn attempt_span(run_id: &str, key: &AttemptKey, at: u64) -> [u8; 8] {
    let kind = if key.compensation { "compensation" } else { "attempt" };
    let (step, item, attempt) = (key.step.to_string(), item_text(key.item), key.attempt.to_string());
    span_id(&[run_id, kind, &step, &item, &attempt, &at.to_string()])
}

fn item_text(item: Item) -> String {
    item.map_or_else(String::new, |i| i.to_string())
}

/// The trace a run belongs to.
pub(crate) fn trace_id(state: &RunState) -> [u8; 16] {
    state.trace.map_or_else(|| trace_of(&state.run_id), |t| t.trace_id)
}

/// The `traceparent` an attempt in flight sends (and a child run it starts hangs under).
pub(crate) fn attempt_parent(state: &RunState, key: &AttemptKey) -> Option<TraceParent> {
    let unit = state.unit(key.step, key.item)?;
    let unit = if key.compensation { unit.compensation.as_deref()? } else { unit };
    let at = unit.attempt_at?;
    Some(TraceParent { trace_id: trace_id(state), span_id: attempt_span(&state.run_id, key, at) })
}

/// What a step's span gathers while its attempts come and go.
#[derive(Default)]
struct UnitSpan {
    first: Option<u64>,
    last: u64,
    attempts: u32,
    error: Option<String>,
}

/// A run's spans as its entries come: feed it the journal, in order, once.
pub(crate) struct RunSpans {
    run_id: String,
    workflow: String,
    steps: Vec<(String, String)>,
    trace_id: [u8; 16],
    parent: Option<[u8; 8]>,
    started_at: u64,
    units: BTreeMap<(usize, Item), UnitSpan>,
    /// Attempts begun and not yet ended, with their start.
    open: HashMap<AttemptKey, u64>,
}

impl RunSpans {
    pub(crate) fn new(run_id: &str, wf: &CompiledWorkflow) -> RunSpans {
        RunSpans {
            run_id: run_id.to_owned(),
            workflow: wf.name.clone(),
            steps: wf.steps.iter().map(|s| (s.id.clone(), s.action.clone())).collect(),
            trace_id: trace_of(run_id),
            parent: None,
            started_at: 0,
            units: BTreeMap::new(),
            open: HashMap::new(),
        }
    }

    /// The spans that end with this entry.
    pub(crate) fn apply(&mut self, entry: &Entry) -> Vec<SpanData> {
        if let Some((key, at)) = AttemptKey::started_by(entry) {
            self.begin(key, at);
            return Vec::new();
        }
        match entry {
            Entry::RunStarted { at, trace, .. } => {
                self.started_at = *at;
                if let Some(t) = trace {
                    self.trace_id = t.trace_id;
                    self.parent = Some(t.span_id);
                }
                Vec::new()
            }
            Entry::AttemptFinished { outcome, at, .. } | Entry::CompensationFinished { outcome, at, .. } => {
                AttemptKey::ended_by(entry).map(|key| self.end(key, outcome, *at)).unwrap_or_default()
            }
            Entry::RunFinished { status, at, .. } => self.finish(*status, *at),
            _ => Vec::new(),
        }
    }

    fn begin(&mut self, key: AttemptKey, at: u64) {
        self.open.insert(key, at);
        let unit = self.units.entry((key.step, key.item)).or_default();
        unit.first.get_or_insert(at);
    }

    fn end(&mut self, key: AttemptKey, outcome: &Outcome, at: u64) -> Vec<SpanData> {
        let Some(start) = self.open.remove(&key) else { return Vec::new() };
        let error = match outcome {
            Outcome::Ok(_) => None,
            Outcome::Err(e) => Some(format!("{}: {}", e.code.as_str(), e.message)),
        };
        let unit = self.units.entry((key.step, key.item)).or_default();
        unit.last = unit.last.max(at);
        if !key.compensation {
            unit.attempts = unit.attempts.max(key.attempt);
            unit.error = error.clone();
        }
        let (id, action) = self.steps.get(key.step).cloned().unwrap_or_default();
        let verb = if key.compensation { "undo " } else { "" };
        let mut attributes = self.attributes(key.step, key.item);
        attributes.push(("sagaflow.attempt", Attr::Int(i64::from(key.attempt))));
        if !key.compensation {
            attributes.push(("sagaflow.action", Attr::Str(action)));
        }
        vec![SpanData {
            trace_id: self.trace_id,
            span_id: attempt_span(&self.run_id, &key, start),
            parent: Some(unit_span(&self.run_id, key.step, key.item)),
            name: format!("{verb}{id} #{}", key.attempt),
            start_ms: start,
            end_ms: at,
            attributes,
            error,
        }]
    }

    fn finish(&mut self, status: RunStatus, at: u64) -> Vec<SpanData> {
        let mut spans: Vec<SpanData> = self
            .units
            .iter()
            .filter_map(|(&(step, item), unit)| {
                let id = self.steps.get(step).map(|s| s.0.clone()).unwrap_or_default();
                let mut attributes = self.attributes(step, item);
                attributes.push(("sagaflow.attempts", Attr::Int(i64::from(unit.attempts))));
                Some(SpanData {
                    trace_id: self.trace_id,
                    span_id: unit_span(&self.run_id, step, item),
                    parent: Some(run_span(&self.run_id)),
                    name: format!("step {id}"),
                    start_ms: unit.first?,
                    end_ms: unit.last,
                    attributes,
                    error: unit.error.clone(),
                })
            })
            .collect();
        spans.push(SpanData {
            trace_id: self.trace_id,
            span_id: run_span(&self.run_id),
            parent: self.parent,
            name: format!("run {}", self.workflow),
            start_ms: self.started_at,
            end_ms: at,
            attributes: vec![
                ("sagaflow.run_id", Attr::Str(self.run_id.clone())),
                ("sagaflow.workflow", Attr::Str(self.workflow.clone())),
                ("sagaflow.status", Attr::Str(status.as_str().to_owned())),
            ],
            error: (status != RunStatus::Succeeded).then(|| format!("the run ended {status}")),
        });
        spans
    }

    fn attributes(&self, step: usize, item: Item) -> Vec<(&'static str, Attr)> {
        let id = self.steps.get(step).map(|s| s.0.clone()).unwrap_or_default();
        let mut attributes = vec![
            ("sagaflow.run_id", Attr::Str(self.run_id.clone())),
            ("sagaflow.workflow", Attr::Str(self.workflow.clone())),
            ("sagaflow.step", Attr::Str(id)),
        ];
        if let Some(i) = item {
            attributes.push(("sagaflow.item", Attr::Int(i as i64)));
        }
        attributes
    }
}

#[cfg(test)]
mod tests;
