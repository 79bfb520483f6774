//! The relay: takes the outbox's deliveries to their subscribers, at least once.
//!
//! The driver writes a [`Delivery`] in the same commit as the step that emitted
//! its event, naming every subscriber the event had then (webhooks that take its
//! type, workflows it triggers). The relay tries each subscriber, and writes what
//! is left; a crash at any point leaves the delivery in the store, so the next
//! process delivers it again. Waiting runs are not here: the driver ends their
//! waits itself, from the same commit.
//!
//! | subscriber | delivered when | tried again on | given up (dead letter) |
//! |------------|----------------|----------------|------------------------|
//! | `webhook:NAME` | it answers 2xx | timeout, 429, 5xx, no connection (backoff, `Retry-After`) | other 4xx; `max_attempts` spent; webhook gone |
//! | `workflow:NAME` | its run is started (id from the event: started once) | the store failing | workflow gone or no longer triggered |
//!
//! In a store several workers share, every worker's relay takes part: each
//! takes what is due under a lease, so one relay at a time tries a delivery;
//! a dead worker's deliveries go to another. A subscriber this worker does
//! not know is tried again for ten minutes first (another, of a newer config
//! in a rolling deploy, may know it).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::compiled::CompiledWorkflow;
use super::driver::Engine;
use crate::adapters::webhook::Webhook;
use crate::base::clock::now_ms;
use crate::store::wakeups::Wakeups;
use crate::store::{Change, DeadLetter, Delivery, EventRecord, Pending, RunMeta, Store, Subscriber};

/// Deliveries taken in one pass, and tried at once, at most.
const BATCH: usize = 256;
const IN_FLIGHT: usize = 32;
/// Backoff between attempts: doubling from the first, capped.
const FIRST_BACKOFF_MS: u64 = 1_000;
const MAX_BACKOFF_MS: u64 = 10 * 60_000;
/// A pass runs at least this often, for deliveries that came due.
const IDLE_PASS: Duration = Duration::from_secs(5);
/// In a shared store, how long a subscriber this worker does not know is
/// tried again before it is given up on (a rolling deploy's length).
const UNKNOWN_GRACE_MS: u64 = 10 * 60_000;

/// Who takes which events. Shared by the driver (which names the subscribers
/// of each event it commits) and the relay (which delivers to them).
#[derive(Default)]
pub(crate) struct Subscriptions {
    webhooks: Vec<Arc<Webhook>>,
    /// Workflows with an `event` trigger, by name: the active version of each.
    workflows: RwLock<HashMap<String, Arc<CompiledWorkflow>>>,
    /// Woken when a commit wrote deliveries.
    wake: Notify,
}

impl Subscriptions {
    pub(crate) fn new(webhooks: Vec<Arc<Webhook>>) -> Subscriptions {
        Subscriptions { webhooks, ..Subscriptions::default() }
    }

    /// Replaces the triggered workflows with these (those without event triggers are left out).
    pub(crate) fn set_workflows(&self, workflows: impl IntoIterator<Item = Arc<CompiledWorkflow>>) {
        let triggered = workflows.into_iter().filter(|w| !w.event_triggers.is_empty()).map(|w| (w.name.clone(), w));
        *self.workflows.write().unwrap_or_else(|p| p.into_inner()) = triggered.collect();
    }

    /// Every subscriber of an event type: webhooks, then triggered workflows by name.
    pub(crate) fn subscribers(&self, kind: &str) -> Vec<Subscriber> {
        let mut subscribers: Vec<Subscriber> =
            self.webhooks.iter().filter(|w| w.takes(kind)).map(|w| w.subscriber()).collect();
        let workflows = self.workflows.read().unwrap_or_else(|p| p.into_inner());
        let mut triggered: Vec<Subscriber> = workflows
            .values()
            .filter(|w| w.event_triggers.iter().any(|t| t == kind))
            .map(|w| Subscriber::Workflow(w.name.clone()))
            .collect();
        triggered.sort();
        subscribers.extend(triggered);
        subscribers
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.workflows.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn webhook(&self, name: &str) -> Option<Arc<Webhook>> {
        self.webhooks.iter().find(|w| w.name == name).cloned()
    }

    fn workflow(&self, name: &str, kind: &str) -> Option<Arc<CompiledWorkflow>> {
        let workflows = self.workflows.read().unwrap_or_else(|p| p.into_inner());
        workflows.get(name).filter(|w| w.event_triggers.iter().any(|t| t == kind)).cloned()
    }
}

/// The run a trigger starts for an event: the same id every time, so an event
/// delivered twice starts one run. Sortable by the event's time, like run ids.
pub(crate) fn triggered_run_id(event: &EventRecord, workflow: &str) -> String {
    crate::base::ids::derived_run_id(event.at, &format!("{}\0{workflow}", event.id))
}

/// The relay task, and what it has done.
pub(crate) struct Relay {
    store: Arc<dyn Store>,
    subscriptions: Arc<Subscriptions>,
    engine: Engine,
    stop: CancellationToken,
    /// Runs this process started from triggers: (workflow, run id).
    started: std::sync::Mutex<Vec<(String, String)>>,
}

/// The outcome of one subscriber's attempt.
enum Tried {
    Delivered,
    Again { error: String, after_ms: Option<u64> },
    GiveUp(String),
}

impl Tried {
    /// The same, with every known secret's value in its error masked.
    fn masked(self) -> Tried {
        let mask = |e: String| crate::base::secrets::mask_str(&e).into_owned();
        match self {
            Tried::Delivered => Tried::Delivered,
            Tried::Again { error, after_ms } => Tried::Again { error: mask(error), after_ms },
            Tried::GiveUp(error) => Tried::GiveUp(mask(error)),
        }
    }
}

impl Relay {
    /// Starts relaying on the current runtime; it stops when the handle's `stop` is called.
    pub(crate) fn spawn(engine: Engine, store: Arc<dyn Store>, subscriptions: Arc<Subscriptions>) -> Arc<Relay> {
        let relay = Arc::new(Relay {
            store,
            subscriptions,
            engine,
            stop: CancellationToken::new(),
            started: Default::default(),
        });
        tokio::spawn(relay.clone().run());
        relay
    }

    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Runs started from triggers by this process: workflow, run id, and its
    /// index row now (none if the store cannot say).
    pub(crate) fn started(&self) -> Vec<(String, String, Option<RunMeta>)> {
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner()).clone();
        started
            .into_iter()
            .map(|(workflow, run_id)| {
                let meta = self.store.run(&run_id).ok().flatten();
                (workflow, run_id, meta)
            })
            .collect()
    }

    /// Waits until the outbox is empty, or `grace` has passed; answers how many
    /// deliveries are left (they stay in the store for the next process).
    pub(crate) async fn drain(&self, grace: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let left = self.store.pending().map_or(usize::MAX, |p| p.len());
            if left == 0 || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn run(self: Arc<Self>) {
        // Other workers' deliveries, in a shared store: as soon as they are committed.
        let mut heard = Wakeups::new(self.store.as_ref(), Change::Outbox, IDLE_PASS, IDLE_PASS);
        loop {
            let next = match self.store.due(now_ms(), BATCH) {
                Ok((due, _)) if !due.is_empty() => {
                    self.pass(due).await;
                    continue;
                }
                Ok((_, next)) => next,
                Err(e) => {
                    warn!(error = %e, "the relay cannot read the outbox");
                    Some(now_ms() + IDLE_PASS.as_millis() as u64)
                }
            };
            let wait = next.map_or(IDLE_PASS, |at| Duration::from_millis(at.saturating_sub(now_ms())).min(IDLE_PASS));
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = self.subscriptions.wake.notified() => {}
                _ = heard.next() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Tries every due subscriber of these deliveries, some at once.
    async fn pass(self: &Arc<Self>, due: Vec<Delivery>) {
        let mut tasks = JoinSet::new();
        for delivery in due {
            if tasks.len() >= IN_FLIGHT {
                tasks.join_next().await;
            }
            let relay = self.clone();
            tasks.spawn(async move { relay.deliver(delivery).await });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn deliver(&self, mut delivery: Delivery) {
        let now = now_ms();
        let mut dead = Vec::new();
        let mut left = Vec::new();
        for mut pending in std::mem::take(&mut delivery.pending) {
            if pending.due > now {
                left.push(pending);
                continue;
            }
            pending.attempts += 1;
            let tried = self.attempt(&pending.subscriber, &delivery.event).await;
            match self.next(&delivery.event, pending, tried) {
                Ok(Some(again)) => left.push(again),
                Ok(None) => {}
                Err(letter) => dead.push(*letter),
            }
        }
        delivery.pending = left;
        match self.store.settle(&delivery, &dead) {
            Ok(()) => {}
            Err(e) if e.kind == crate::store::StoreErrorKind::Conflict => {
                info!(event = %delivery.event.id, error = %e, "another relay took this delivery over; it delivers it again");
            }
            Err(e) => {
                warn!(event = %delivery.event.id, error = %e, "the relay cannot record a delivery; it will be delivered again")
            }
        }
    }

    /// What follows an attempt: done (`None`), again later, or a dead letter.
    fn next(
        &self,
        event: &EventRecord,
        mut pending: Pending,
        tried: Tried,
    ) -> Result<Option<Pending>, Box<DeadLetter>> {
        let (subscriber, attempts) = (pending.subscriber.as_str(), pending.attempts);
        // A subscriber's answer may echo a credential: it is masked before it is logged or kept.
        let tried = tried.masked();
        let max_attempts = self.max_attempts(subscriber);
        let letter = |error: String| {
            Box::new(DeadLetter {
                event: event.clone(),
                subscriber: pending.subscriber.clone(),
                attempts,
                error,
                at: now_ms(),
            })
        };
        match tried {
            Tried::Delivered => {
                info!(event = %event.id, kind = %event.kind, subscriber, attempts, "event delivered");
                Ok(None)
            }
            Tried::GiveUp(error) => {
                warn!(event = %event.id, kind = %event.kind, subscriber, attempts, %error, "event not delivered; dead letter");
                Err(letter(error))
            }
            Tried::Again { error, .. } if attempts >= max_attempts => {
                warn!(event = %event.id, kind = %event.kind, subscriber, attempts, %error, "event not delivered after every attempt; dead letter");
                Err(letter(format!("{error} (after {attempts} attempts)")))
            }
            Tried::Again { error, after_ms } => {
                let backoff = crate::base::backoff::exponential(FIRST_BACKOFF_MS, 2.0, attempts, MAX_BACKOFF_MS);
                let wait = backoff.max(after_ms.unwrap_or(0));
                info!(event = %event.id, kind = %event.kind, subscriber, attempts, %error, wait_ms = wait, "event delivery failed; trying again");
                pending.due = now_ms() + wait;
                pending.last_error = Some(error);
                Ok(Some(pending))
            }
        }
    }

    fn max_attempts(&self, subscriber: &str) -> u32 {
        match Subscriber::parse(subscriber) {
            Some(Subscriber::Webhook(name)) => {
                self.subscriptions.webhook(&name).map_or(u32::MAX, |w| w.max_attempts.max(1))
            }
            _ => u32::MAX,
        }
    }

    async fn attempt(&self, subscriber: &str, event: &EventRecord) -> Tried {
        match Subscriber::parse(subscriber) {
            Some(Subscriber::Webhook(name)) => self.to_webhook(&name, event).await,
            Some(Subscriber::Workflow(name)) => self.to_workflow(&name, event).await,
            None => Tried::GiveUp(format!("`{subscriber}` is not a kind of subscriber this sagaflow knows")),
        }
    }

    /// A subscriber this process does not know: given up on, unless workers
    /// share the store and the event is recent (a worker of a newer config,
    /// in a rolling deploy, named it; one that knows it delivers it).
    fn unknown(&self, event: &EventRecord, error: String) -> Tried {
        if self.store.is_shared() && now_ms().saturating_sub(event.at) < UNKNOWN_GRACE_MS {
            let error = format!("{error} here; another worker may know it, so it is tried again");
            return Tried::Again { error, after_ms: None };
        }
        Tried::GiveUp(error)
    }

    async fn to_webhook(&self, name: &str, event: &EventRecord) -> Tried {
        let Some(webhook) = self.subscriptions.webhook(name) else {
            return self.unknown(event, format!("the webhook `{name}` is no longer configured"));
        };
        match webhook.deliver(event).await {
            Ok(()) => Tried::Delivered,
            Err(r) if r.retry => Tried::Again { error: r.error.message, after_ms: r.error.retry_after_ms },
            Err(r) => Tried::GiveUp(format!("{}: {}", r.error.code, r.error.message)),
        }
    }

    async fn to_workflow(&self, name: &str, event: &EventRecord) -> Tried {
        let Some(wf) = self.subscriptions.workflow(name, &event.kind) else {
            let message =
                format!("the workflow `{name}` no longer exists or is no longer triggered by `{}`", event.kind);
            return self.unknown(event, message);
        };
        let run_id = triggered_run_id(event, name);
        match self.engine.start_run_as(run_id.clone(), wf, event.data.clone()).await {
            Ok(true) => {
                info!(run_id = %run_id, workflow = name, event = %event.id, "run started by an event");
                self.started.lock().unwrap_or_else(|p| p.into_inner()).push((name.to_owned(), run_id));
                Tried::Delivered
            }
            Ok(false) => Tried::Delivered,
            Err(e) => Tried::Again { error: e.message, after_ms: None },
        }
    }
}

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
