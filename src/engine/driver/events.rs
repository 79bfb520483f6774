//! Events: `event.wait` units waiting by type and key, emits into the next
//! commit (the outbox), and deliveries to subscribers.

use super::*;

/// An `event.wait` unit waiting for its event.
pub(super) struct Waiter {
    pub(super) run_id: String,
    pub(super) step: usize,
    pub(super) item: Item,
    pub(super) attempt: u32,
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
    ) -> Option<Outcome> {
        let arrived = match self.store.events(&kind, &key, since) {
            Ok(arrived) => arrived,
            Err(e) => return Some(Outcome::Err(ActionError::new("unavailable", e.message))),
        };
        if let Some(event) = arrived.into_iter().next() {
            return Some(Outcome::Ok(event.data));
        }
        let waiter = Waiter { run_id: run_id.to_owned(), step: at.step, item: at.item, attempt: at.attempt };
        self.waits.entry((kind, key)).or_default().push(waiter);
        None
    }
    /// An `event.emit`: the event joins the next commit, with the step's end (the
    /// outbox); its id is the step's idempotency key, so a repeat is the same event.
    pub(super) fn emit(&mut self, id: String, kind: String, key: String, data: Json) -> Outcome {
        self.outbox.push(EventRecord { id: id.clone(), kind, key, data, at: self.clock.now_ms() });
        Outcome::Ok(serde_json::json!({ "event_id": id }))
    }
    /// After a commit: every waiting unit an event matches ends with its data.
    /// Answers the runs each event woke, by event id.
    pub(super) fn deliver(&mut self, events: &[EventRecord]) -> HashMap<String, Vec<String>> {
        let mut woken: HashMap<String, Vec<String>> = HashMap::new();
        for event in events {
            for w in self.waits.remove(&(event.kind.clone(), event.key.clone())).unwrap_or_default() {
                let outcome = Outcome::Ok(event.data.clone());
                let entry =
                    Entry::AttemptFinished { step: w.step, item: w.item, attempt: w.attempt, outcome, at: event.at };
                woken.entry(event.id.clone()).or_default().push(w.run_id.clone());
                self.ready.push((w.run_id, entry));
            }
        }
        woken
    }
}
