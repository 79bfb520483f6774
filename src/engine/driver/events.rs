//! Events: `event.wait` units waiting by type and key, emits into the next
//! commit (the outbox), and deliveries to subscribers.

use super::*;
use crate::store::Wait;

/// A unit waiting for an event: an `event.wait`, or a step (or its undoing)
/// waiting for a child run's end.
pub(super) struct Waiter {
    pub(super) run_id: String,
    pub(super) at: AttemptKey,
    pub(super) reads: Reads,
}

/// What an awaited event's data is to the unit that waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reads {
    /// `event.wait`: the data is the output.
    Event,
    /// A child's end: its output, or its error.
    Child,
    /// The end of a child's undoing.
    Undo,
}

impl Reads {
    fn outcome(self, data: &Json) -> Outcome {
        match self {
            Reads::Event => Outcome::Ok(data.clone()),
            Reads::Child => crate::engine::child::child_outcome(data),
            Reads::Undo => crate::engine::child::undo_outcome(data),
        }
    }
}

/// The event a unit of an `event.wait` step waits for (none: the step is
/// of another kind, or its event cannot be said).
pub(super) fn awaited(state: &RunState, run_id: &str, step: usize, item: Item) -> Option<Wait> {
    let is_wait = state.wf.steps.get(step).is_some_and(|d| d.kind == StepKind::Wait);
    let (kind, key) = is_wait.then(|| state.awaited_event(step, item).ok()).flatten()?;
    Some(Wait { kind, key, run_id: run_id.to_owned(), step, item })
}

impl Driver {
    /// The outbox's share of a commit: each event, to every subscriber it has now.
    pub(super) fn deliveries(&self, events: &[EventRecord]) -> Vec<Delivery> {
        if self.subscriptions.is_empty() {
            return Vec::new();
        }
        events
            .iter()
            .filter_map(|e| {
                let subscribers = self.subscriptions.subscribers(&e.kind);
                (!subscribers.is_empty()).then(|| Delivery::new(e.clone(), &subscribers))
            })
            .collect()
    }
    /// Starts an `event.wait`: an event of its type and key that came since the
    /// run started ends it at once (its outcome); otherwise it waits for one.
    pub(super) fn begin_wait(
        &mut self,
        run_id: &str,
        at: AttemptKey,
        kind: String,
        key: String,
        since: u64,
        reads: Reads,
    ) -> Option<Outcome> {
        let arrived = match self.store.events(&kind, &key, since) {
            Ok(arrived) => arrived,
            Err(e) => return Some(Outcome::Err(ActionError::new("unavailable", e.message))),
        };
        if let Some(event) = arrived.into_iter().next() {
            return Some(reads.outcome(&event.data));
        }
        let waiter = Waiter { run_id: run_id.to_owned(), at, reads };
        self.waits.entry((kind, key)).or_default().push(waiter);
        None
    }
    /// An `event.emit`: the event joins the next commit, with the step's end (the
    /// outbox); its id is the step's idempotency key, so a repeat is the same event.
    pub(super) fn emit(
        &mut self,
        id: String,
        kind: String,
        key: String,
        data: Json,
        traceparent: Option<String>,
    ) -> Outcome {
        let at = self.clock.now_ms();
        self.outbox.push(EventRecord { id: id.clone(), kind, key, data, at, traceparent });
        Outcome::Ok(serde_json::json!({ "event_id": id }))
    }
    /// After a commit: every waiting unit an event matches ends with its data.
    /// Answers the runs each event woke, by event id.
    pub(super) fn deliver(&mut self, events: &[EventRecord]) -> HashMap<String, Vec<String>> {
        let mut woken: HashMap<String, Vec<String>> = HashMap::new();
        for event in events {
            for w in self.waits.remove(&(event.kind.clone(), event.key.clone())).unwrap_or_default() {
                let entry = w.at.finished(w.reads.outcome(&event.data), event.at);
                woken.entry(event.id.clone()).or_default().push(w.run_id.clone());
                self.ready.push((w.run_id, entry));
            }
        }
        woken
    }
}
