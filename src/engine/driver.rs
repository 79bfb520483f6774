//! The driver: one async loop owns every active run's state. It takes outcomes
//! in (attempts that ended, timers that fired, new runs), folds them through the
//! state machines, commits every resulting entry in one group commit, and only
//! then acts on them: starts attempts, arms timers, cancels, answers waiters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde_json::Value as Json;
use tokio::sync::{broadcast, mpsc, oneshot, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn, Instrument};

use super::compiled::{CompiledWorkflow, StepKind};
use super::machine::{CancelRefused, Decide, Phase, RunState};
use super::metrics::Metrics;
use super::record::{run_status, RunRecord};
use super::relay::Subscriptions;
use super::wanted::{self, AttemptKey, Start};
use crate::actions::{Call, Registry};
use crate::base::clock::now_ms;
use crate::base::ids::new_run_id;
use crate::journal::entry::{ActionError, Entry, Item, Outcome};
use crate::journal::injection::Injection;
use crate::store::{Commit, Delivery, EventRecord, RunMeta, Store, StoreError};

pub struct EngineOptions {
    /// At most this many action attempts run at once, across all runs.
    pub max_concurrent_attempts: usize,
    pub metrics: Arc<Metrics>,
    /// Who takes the events runs emit, beside the runs waiting for them.
    pub subscriptions: Arc<Subscriptions>,
    /// The world as `test` and `explore` simulate it; none in production.
    pub simulation: Simulation,
    /// How long the engine tries again a commit the store refuses before it
    /// stops (its runs resumable); none: until it goes through, as `serve` does.
    pub write_outage_limit: Option<StdDuration>,
}

/// What `sagaflow test` and `explore` change in the engine's world.
#[derive(Default, Clone)]
pub struct Simulation {
    /// A crash: when an attempt of this step has ended, its action's effect
    /// done, the engine stops before recording the end.
    pub halt_after: Option<String>,
    /// An `event.wait` with no event yet gets one at once: the data given for
    /// its type here, `{}` for a type not given.
    pub answer_waits: Option<Arc<BTreeMap<String, Json>>>,
    /// A `sleep` ends at once (its output says when it would have).
    pub skip_sleeps: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_concurrent_attempts: 256,
            metrics: Arc::new(Metrics::default()),
            subscriptions: Arc::default(),
            simulation: Simulation::default(),
            write_outage_limit: Some(StdDuration::from_secs(30)),
        }
    }
}

/// A run to start.
pub struct NewRun {
    /// None: a new id. Some: this id, unless a run of it exists (then nothing starts).
    pub run_id: Option<String>,
    pub wf: Arc<CompiledWorkflow>,
    pub input: Json,
    pub inject: Vec<Injection>,
}

/// A new run's answer: its id, and whether this call started it (false: a run
/// of that id existed already).
type Started = Result<(String, bool), StoreError>;

enum Msg {
    Start {
        run: NewRun,
        reply: oneshot::Sender<Started>,
    },
    Resume {
        run_id: String,
        wf: Arc<CompiledWorkflow>,
        entries: Vec<Entry>,
        reply: oneshot::Sender<()>,
    },
    Outcome {
        run_id: String,
        entry: Entry,
    },
    Wait {
        run_id: String,
        reply: oneshot::Sender<Option<RunRecord>>,
    },
    Cancel {
        run_id: String,
        reply: oneshot::Sender<Result<(), CancelRefused>>,
    },
    Publish {
        event: EventRecord,
        reply: oneshot::Sender<Woken>,
    },
    /// Stop launching attempts (a drain): what is in flight ends and is recorded.
    Pause,
    /// Answered once the turn that takes it has committed.
    Flush {
        reply: oneshot::Sender<()>,
    },
}

/// The runs an event published from outside woke.
type Woken = Result<Vec<String>, StoreError>;

/// One committed transition of a run, as the engine broadcasts it after the commit.
#[derive(Debug, Clone)]
pub struct Transition {
    pub run_id: String,
    /// The entry's place in the run's journal, from 0.
    pub seq: u32,
    pub entry: Entry,
    /// The run's workflow version (content hash).
    pub version: String,
}

/// How many transitions a slow listener may fall behind before it must read
/// the rest from the store.
const TRANSITIONS_BUFFER: usize = 8192;

/// A handle to the engine loop; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    tx: mpsc::UnboundedSender<Msg>,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    /// Workflow versions whose copy is known to be in the store.
    stored: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
    transitions: broadcast::Sender<Arc<Transition>>,
    metrics: Arc<Metrics>,
    /// Versions compiled from the store's copies, for reading runs back.
    versions: Arc<std::sync::Mutex<super::Versions>>,
}

impl Engine {
    /// Starts the loop on the current tokio runtime.
    pub fn start(store: Arc<dyn Store>, registry: Arc<Registry>, options: EngineOptions) -> Engine {
        let (tx, rx) = mpsc::unbounded_channel();
        let (transitions, _) = broadcast::channel(TRANSITIONS_BUFFER);
        let metrics = options.metrics.clone();
        let driver = Driver {
            transitions: transitions.clone(),
            paused: false,
            store: store.clone(),
            registry: registry.clone(),
            tx: tx.downgrade(),
            permits: Arc::new(Semaphore::new(options.max_concurrent_attempts.max(1))),
            metrics: options.metrics,
            subscriptions: options.subscriptions,
            simulation: options.simulation,
            write_outage_limit: options.write_outage_limit,
            runs: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            waiters: HashMap::new(),
            evicted: HashMap::new(),
            ready: Vec::new(),
            outbox: Vec::new(),
            waits: HashMap::new(),
        };
        tokio::spawn(driver.run(rx));
        Engine { tx, store, registry, stored: Arc::default(), transitions, metrics, versions: Arc::default() }
    }

    /// Starts a run; its first entries, and its workflow version, are durable when
    /// this returns.
    pub async fn start_run(&self, wf: Arc<CompiledWorkflow>, input: Json) -> Result<String, StoreError> {
        self.start_new(NewRun { run_id: None, wf, input, inject: Vec::new() }).await.map(|(id, _)| id)
    }

    /// Starts a run of a given id, unless one of that id exists (answers false):
    /// what starts a run at most once for one event or one tick.
    pub async fn start_run_as(
        &self,
        run_id: String,
        wf: Arc<CompiledWorkflow>,
        input: Json,
    ) -> Result<bool, StoreError> {
        let run = NewRun { run_id: Some(run_id), wf, input, inject: Vec::new() };
        self.start_new(run).await.map(|(_, new)| new)
    }

    /// Starts a run as described; answers its id and whether this call started it.
    pub async fn start_new(&self, run: NewRun) -> Started {
        self.store_definition(&run.wf)?;
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Start { run, reply });
        answer.await.unwrap_or_else(|_| Err(StoreError("the engine stopped".into())))
    }

    /// Continues a run from its journal.
    pub async fn resume(&self, run_id: String, wf: Arc<CompiledWorkflow>, entries: Vec<Entry>) {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Resume { run_id, wf, entries, reply });
        let _ = answer.await;
    }

    /// Waits for a run to end and gives its record; a run that is no longer
    /// active is read back from the store. `None`: no such run, or it cannot end
    /// here (the engine stopped).
    pub async fn wait(&self, run_id: &str) -> Option<RunRecord> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Wait { run_id: run_id.to_owned(), reply });
        if let Some(record) = answer.await.ok().flatten() {
            return Some(record);
        }
        let state = self.replay(run_id).ok()?;
        (state.phase == Phase::Done).then(|| RunRecord::of(&state))
    }

    /// A run's state read back from the store (each version compiled once).
    pub fn replay(&self, run_id: &str) -> Result<super::machine::RunState, String> {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        super::replay(self.store.as_ref(), &mut versions, run_id, &self.registry)
    }

    /// A workflow version from the store's copy (compiled once).
    pub fn version(&self, hash: &str) -> Result<Arc<CompiledWorkflow>, String> {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.get(self.store.as_ref(), hash, &self.registry)
    }

    /// Keeps a copy of a workflow version, once, so its runs can be read back and resumed.
    fn store_definition(&self, wf: &CompiledWorkflow) -> Result<(), StoreError> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        if !stored.contains(&wf.hash) {
            if self.store.definition(&wf.hash)?.is_none() {
                self.store.put_definition(&wf.hash, &wf.source)?;
            }
            stored.insert(wf.hash.clone());
        }
        Ok(())
    }

    /// Sends an event from outside (the API, a test): durable when this returns,
    /// then delivered to the runs waiting for it.
    pub async fn publish(&self, kind: &str, key: &str, data: Json) -> Result<String, StoreError> {
        self.publish_event(kind, key, data).await.map(|(event, _)| event.id)
    }

    /// Sends an event from outside; answers it as stored and the runs whose
    /// waiting `event.wait` it ended.
    pub async fn publish_event(
        &self,
        kind: &str,
        key: &str,
        data: Json,
    ) -> Result<(EventRecord, Vec<String>), StoreError> {
        let id = format!("ev-{}", new_run_id());
        let event = EventRecord { id, kind: kind.to_owned(), key: key.to_owned(), data, at: now_ms() };
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Publish { event: event.clone(), reply });
        let woken = answer.await.unwrap_or_else(|_| Err(StoreError("the engine stopped".into())))?;
        Ok((event, woken))
    }

    /// Every transition committed from now on, live. A listener that falls
    /// more than a few thousand behind is told it lagged (then reads the store).
    pub fn transitions(&self) -> broadcast::Receiver<Arc<Transition>> {
        self.transitions.subscribe()
    }

    /// Stops launching attempts: a drain before the process ends. What is in
    /// flight ends and is recorded; the rest continues on the next start.
    pub fn pause(&self) {
        self.send(Msg::Pause);
    }

    /// Attempts launched and not yet ended.
    pub fn in_flight(&self) -> u64 {
        self.metrics.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Returns after one more turn of the loop: what reached the engine before
    /// this call (attempts' ends, new runs) is committed.
    pub async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Flush { reply });
        let _ = answer.await;
    }

    /// Asks a run to roll back; answers whether it will (a run whose forward
    /// steps have all ended, or that has ended, is not cancelled).
    pub async fn cancel(&self, run_id: &str) -> Result<(), CancelRefused> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Cancel { run_id: run_id.to_owned(), reply });
        answer.await.unwrap_or(Err(CancelRefused::Stopped))
    }

    fn send(&self, msg: Msg) {
        // A closed channel means the loop ended; the caller's reply then fails.
        let _ = self.tx.send(msg);
    }
}

struct Active {
    state: RunState,
    seq: u32,
    status: String,
    /// Attempts and compensations started by this process, with their cancel tokens.
    launched: HashMap<AttemptKey, CancellationToken>,
    /// When each attempt in flight was decided, for the step latency.
    decided: HashMap<(usize, Item), std::time::Instant>,
    /// Attempts whose end is in the commit under way.
    finished: Vec<(usize, Item)>,
    timers: Vec<(u64, u64)>,
}

/// A turn between deciding and acting: its commit, and who waits for it.
struct Turn {
    commit: Commit,
    touched: Vec<String>,
    started: Vec<(String, bool, oneshot::Sender<Started>)>,
    committed: Vec<oneshot::Sender<()>>,
    published: Vec<(String, oneshot::Sender<Woken>)>,
    cancels: Vec<oneshot::Sender<Result<(), CancelRefused>>>,
    emitted: Vec<EventRecord>,
    transitions: Vec<Transition>,
}

struct Driver {
    metrics: Arc<Metrics>,
    transitions: broadcast::Sender<Arc<Transition>>,
    /// Draining: no attempt is launched any more.
    paused: bool,
    subscriptions: Arc<Subscriptions>,
    simulation: Simulation,
    write_outage_limit: Option<StdDuration>,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    /// Weak, so the loop ends once every handle to the engine is gone (an attempt
    /// in its own task holds a strong one until its end is sent).
    tx: mpsc::WeakUnboundedSender<Msg>,
    permits: Arc<Semaphore>,
    runs: HashMap<String, Active>,
    timers: BTreeMap<(u64, u64), (String, Entry)>,
    timer_seq: u64,
    waiters: HashMap<String, Vec<oneshot::Sender<Option<RunRecord>>>>,
    /// Outcomes of attempts that ended as they were launched, for the next turn.
    ready: Vec<(String, Entry)>,
    /// Events emitted since the last commit: they go into the next one.
    outbox: Vec<EventRecord>,
    /// `event.wait` units waiting, by event type and key.
    waits: HashMap<(String, String), Vec<Waiter>>,
    /// Runs that only wait on timers far off, out of memory: their workflow version.
    /// A timer that fires brings the run back from its journal.
    evicted: HashMap<String, Evicted>,
}

/// An `event.wait` unit waiting for its event.
struct Waiter {
    run_id: String,
    step: usize,
    item: Item,
    attempt: u32,
}

/// What stays in memory of an evicted run: its version and its timers' keys.
struct Evicted {
    wf: Arc<CompiledWorkflow>,
    timers: Vec<(u64, u64)>,
}

/// A run whose next timer is further off than this leaves memory until it fires.
const EVICT_AFTER_MS: u64 = 2_000;

/// Messages taken in one turn of the loop, at most: one group commit.
const MAX_BATCH: usize = 4096;

impl Driver {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let mut batch: Vec<Msg> = if self.ready.is_empty() {
                match self.next_message(&mut rx).await {
                    Some(Some(first)) => vec![first],
                    Some(None) => continue,
                    None => return,
                }
            } else {
                // Let the runtime run other tasks between turns that need no waiting.
                tokio::task::yield_now().await;
                self.ready.drain(..).map(|(run_id, entry)| Msg::Outcome { run_id, entry }).collect()
            };
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(msg) => batch.push(msg),
                    Err(_) => break,
                }
            }
            if self.halts(&batch) {
                info!("a crash is simulated here (--crash): the engine stops before recording the attempt's end");
                return;
            }
            let turn = self.prepare(batch);
            if !self.write(&turn.commit, &rx).await {
                warn!("the store still cannot write; the engine stops, its runs are resumable");
                return;
            }
            self.finish(turn);
        }
    }

    /// Whether the batch holds the end of an attempt of the step to halt after.
    fn halts(&self, batch: &[Msg]) -> bool {
        let Some(halt) = &self.simulation.halt_after else { return false };
        batch.iter().any(|msg| match msg {
            Msg::Outcome { run_id, entry: Entry::AttemptFinished { step, .. } } => {
                self.runs.get(run_id).and_then(|a| a.state.wf.steps.get(*step)).is_some_and(|d| &d.id == halt)
            }
            _ => false,
        })
    }

    /// The next message, `Some(None)` when a timer fired instead, `None` when every
    /// handle to the engine is gone.
    async fn next_message(&mut self, rx: &mut mpsc::UnboundedReceiver<Msg>) -> Option<Option<Msg>> {
        match self.next_due() {
            Some(due) => tokio::select! {
                msg = rx.recv() => msg.map(Some),
                _ = tokio::time::sleep(StdDuration::from_millis(due.saturating_sub(now_ms()))) => {
                    self.fire_timers();
                    Some(None)
                }
            },
            None => rx.recv().await.map(Some),
        }
    }

    fn next_due(&self) -> Option<u64> {
        self.timers.keys().next().map(|(due, _)| *due)
    }

    fn fire_timers(&mut self) {
        let now = now_ms();
        let due: Vec<(u64, u64)> = self.timers.range(..(now + 1, 0)).map(|(k, _)| *k).collect();
        for key in due {
            if let Some((run_id, entry)) = self.timers.remove(&key) {
                self.ready.push((run_id, entry));
            }
        }
    }

    /// The first half of a turn: fold the messages in and decide; what is to
    /// be written, and what to do once it is.
    fn prepare(&mut self, batch: Vec<Msg>) -> Turn {
        let mut commit = Commit::default();
        let mut touched: Vec<String> = Vec::new();
        let mut started: Vec<(String, bool, oneshot::Sender<Started>)> = Vec::new();
        // Resumes and flushes, answered once the commit is done.
        let mut committed: Vec<oneshot::Sender<()>> = Vec::new();
        let mut published: Vec<(String, oneshot::Sender<Woken>)> = Vec::new();
        let mut cancels: Vec<oneshot::Sender<Result<(), CancelRefused>>> = Vec::new();
        for msg in batch {
            match msg {
                Msg::Start { run: NewRun { run_id, wf, input, inject }, reply } => {
                    let run_id = match run_id.map(|id| self.exists(&id).map(|known| (id, known))) {
                        Some(Ok((id, true))) => {
                            started.push((id, false, reply));
                            continue;
                        }
                        Some(Ok((id, false))) => id,
                        Some(Err(e)) => {
                            let _ = reply.send(Err(e));
                            continue;
                        }
                        None => new_run_id(),
                    };
                    let now = now_ms();
                    let deadline = wf.timeout_ms.map(|t| now + t);
                    let entry = Entry::RunStarted {
                        workflow: wf.name.clone(),
                        hash: wf.hash.clone(),
                        input,
                        at: now,
                        deadline,
                        inject,
                    };
                    self.runs.insert(run_id.clone(), Active::new(RunState::new(run_id.clone(), wf)));
                    self.record(&run_id, entry, &mut commit);
                    touched.push(run_id.clone());
                    started.push((run_id, true, reply));
                }
                Msg::Resume { run_id, wf, entries, reply } => {
                    self.runs.insert(run_id.clone(), Active::replayed(&run_id, wf, &entries));
                    touched.push(run_id);
                    committed.push(reply);
                }
                Msg::Outcome { run_id, entry } => {
                    if self.rehydrate(&run_id) {
                        self.record(&run_id, entry, &mut commit);
                        touched.push(run_id);
                    }
                }
                Msg::Cancel { run_id, reply } => match self.judge_cancel(&run_id) {
                    Ok(()) => {
                        self.record(&run_id, Entry::CancelRequested { at: now_ms() }, &mut commit);
                        touched.push(run_id);
                        // Answered once the cancel is on disk.
                        cancels.push(reply);
                    }
                    Err(refused) => {
                        let _ = reply.send(Err(refused));
                    }
                },
                Msg::Publish { event, reply } => {
                    published.push((event.id.clone(), reply));
                    self.outbox.push(event);
                }
                Msg::Pause => self.paused = true,
                Msg::Flush { reply } => committed.push(reply),
                Msg::Wait { run_id, reply } => {
                    match self.runs.contains_key(&run_id) || self.evicted.contains_key(&run_id) {
                        true => self.waiters.entry(run_id).or_default().push(reply),
                        false => {
                            let _ = reply.send(None);
                        }
                    }
                }
            }
        }
        touched.sort();
        touched.dedup();
        for run_id in &touched {
            self.decide(run_id, &mut commit);
        }
        commit.events.append(&mut self.outbox);
        commit.events.iter_mut().for_each(EventRecord::mask_secrets);
        let emitted = commit.events.clone();
        commit.deliveries = self.deliveries(&emitted);
        let transitions = self.committed_transitions(&commit);
        Turn { commit, touched, started, committed, published, cancels, emitted, transitions }
    }

    /// Whether a run takes a cancel now (its state judges; one that has left
    /// memory for good has ended, as its index row says).
    fn judge_cancel(&mut self, run_id: &str) -> Result<(), CancelRefused> {
        self.rehydrate(run_id);
        if let Some(active) = self.runs.get(run_id) {
            return active.state.cancellable();
        }
        match self.store.run(run_id) {
            Ok(Some(meta)) => Err(CancelRefused::Ended(meta.status)),
            Ok(None) => Err(CancelRefused::Unknown),
            Err(_) => Err(CancelRefused::Stopped),
        }
    }

    /// Writes a turn's commit. When the store fails (a full disk, say), the
    /// same commit is tried again, 100 ms doubling to 5 s apart, until it is
    /// written: nothing is lost or written twice, and meanwhile the store's
    /// health holds the error (the API answers 503, `/healthz` says why).
    /// False when the store still fails and every handle to the engine is gone.
    async fn write(&mut self, commit: &Commit, rx: &mpsc::UnboundedReceiver<Msg>) -> bool {
        let mut wait = StdDuration::from_millis(100);
        let first_failure = std::time::Instant::now();
        loop {
            let writing = std::time::Instant::now();
            match self.store.commit(commit) {
                Ok(()) => {
                    self.metrics.commit_latency.record(writing.elapsed().as_micros() as u64);
                    if self.metrics.storage.error().is_some() {
                        self.metrics.storage.recovered();
                        info!("the store takes writes again; the engine goes on");
                    }
                    return true;
                }
                Err(e) => {
                    if self.metrics.storage.error().is_none() {
                        warn!(error = %e, "the store cannot write; the engine tries the same commit again until it can");
                    }
                    self.metrics.storage.failed(e.0);
                    let too_long = self.write_outage_limit.is_some_and(|limit| first_failure.elapsed() >= limit);
                    if rx.is_closed() || too_long {
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(StdDuration::from_secs(5));
                }
            }
        }
    }

    /// The second half of a turn, once its commit is written: answer, wake, act.
    fn finish(&mut self, turn: Turn) {
        let Turn { commit, touched, started, committed, published, cancels, emitted, transitions } = turn;
        for reply in cancels {
            let _ = reply.send(Ok(()));
        }
        for t in transitions {
            let _ = self.transitions.send(Arc::new(t));
        }
        if !commit.deliveries.is_empty() {
            self.subscriptions.wake();
        }
        for (run_id, new, reply) in started {
            let _ = reply.send(Ok((run_id, new)));
        }
        for reply in committed {
            let _ = reply.send(());
        }
        let mut woken = self.deliver(&emitted);
        for (id, reply) in published {
            let _ = reply.send(Ok(woken.remove(&id).unwrap_or_default()));
        }
        for run_id in touched {
            self.act(&run_id);
        }
    }

    /// The commit's entries as transitions, when someone listens.
    fn committed_transitions(&self, commit: &Commit) -> Vec<Transition> {
        if self.transitions.receiver_count() == 0 {
            return Vec::new();
        }
        let version = |run_id: &str| self.runs.get(run_id).map(|a| a.state.wf.hash.clone()).unwrap_or_default();
        commit
            .entries
            .iter()
            .map(|(run_id, seq, entry)| Transition {
                run_id: run_id.clone(),
                seq: *seq,
                entry: entry.clone(),
                version: version(run_id),
            })
            .collect()
    }

    /// Whether a run of this id is known, here or in the store.
    fn exists(&self, run_id: &str) -> Result<bool, StoreError> {
        Ok(self.runs.contains_key(run_id) || self.evicted.contains_key(run_id) || self.store.run(run_id)?.is_some())
    }

    /// The outbox's share of a commit: each event, to every subscriber it has now.
    fn deliveries(&self, events: &[EventRecord]) -> Vec<Delivery> {
        if self.subscriptions.is_empty() {
            return Vec::new();
        }
        events
            .iter()
            .filter_map(|e| {
                let subscribers = self.subscriptions.subscribers(&e.kind);
                (!subscribers.is_empty()).then(|| Delivery::new(e.clone(), subscribers))
            })
            .collect()
    }

    /// Applies an entry to a run and adds it to the commit.
    fn record(&mut self, run_id: &str, mut entry: Entry, commit: &mut Commit) {
        let Some(active) = self.runs.get_mut(run_id) else { return };
        entry.mask_secrets();
        log_entry(run_id, &active.state, &entry);
        match &entry {
            Entry::AttemptStarted { step, item, .. } => {
                active.decided.insert((*step, *item), std::time::Instant::now());
                self.metrics.attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Entry::AttemptFinished { step, item, attempt, .. } => {
                active.finished.push((*step, *item));
                active.launched.remove(&AttemptKey {
                    compensation: false,
                    step: *step,
                    item: *item,
                    attempt: *attempt,
                });
                let is_wait = active.state.wf.steps.get(*step).is_some_and(|d| d.kind == StepKind::Wait);
                if let Some(awaited) = is_wait.then(|| active.state.awaited_event(*step, *item).ok()).flatten() {
                    // Only the list of this wait's own type and key can hold it.
                    if let Some(waiters) = self.waits.get_mut(&awaited) {
                        waiters.retain(|w| !(w.run_id == run_id && w.step == *step && w.item == *item));
                        if waiters.is_empty() {
                            self.waits.remove(&awaited);
                        }
                    }
                }
            }
            Entry::CompensationFinished { step, item, attempt, .. } => {
                active.launched.remove(&AttemptKey { compensation: true, step: *step, item: *item, attempt: *attempt });
            }
            Entry::RetryScheduled { .. } => {
                self.metrics.retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Entry::CompensationStarted { .. } => {
                self.metrics.compensations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            _ => {}
        }
        active.state.apply(&entry);
        commit.entries.push((run_id.to_owned(), active.seq, entry));
        active.seq += 1;
    }

    /// Asks the run what happens next until it has nothing more to say.
    fn decide(&mut self, run_id: &str, commit: &mut Commit) {
        let mut random = || fastrand::f64();
        for _ in 0..10_000 {
            let Some(active) = self.runs.get(run_id) else { return };
            let entries = active.state.decide(&mut Decide { now: now_ms(), random: &mut random });
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                self.record(run_id, entry, commit);
            }
        }
        let Some(active) = self.runs.get_mut(run_id) else { return };
        let status = run_status(&active.state);
        if status != active.status {
            self.metrics.run_moved(&active.state.wf.name, &active.status, &status);
            active.status = status.clone();
            let s = &active.state;
            commit.runs.push(RunMeta {
                run_id: run_id.to_owned(),
                workflow: s.wf.name.clone(),
                hash: s.wf.hash.clone(),
                status,
                started_at: s.started_at,
                updated_at: now_ms(),
            });
        }
    }

    /// After the commit: start what is in flight, arm timers, cancel, finish.
    fn act(&mut self, run_id: &str) {
        let Some(active) = self.runs.get_mut(run_id) else { return };
        for key in std::mem::take(&mut active.finished) {
            if let Some(at) = active.decided.remove(&key) {
                self.metrics.step_latency.record(at.elapsed().as_micros() as u64);
            }
        }
        if active.state.phase == Phase::Done {
            self.metrics.runs_finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            info!(run_id, workflow = %active.state.wf.name, status = %active.status, "run finished");
            // The record (a copy of every output) only for those waiting for it.
            let waiters = self.waiters.remove(run_id).unwrap_or_default();
            let record = (!waiters.is_empty()).then(|| RunRecord::of(&active.state));
            for (_, token) in active.launched.drain() {
                token.cancel();
            }
            for key in active.timers.drain(..) {
                self.timers.remove(&key);
            }
            self.runs.remove(run_id);
            for waiter in waiters {
                let _ = waiter.send(record.clone());
            }
            return;
        }
        if active.state.phase == Phase::RollingBack {
            for (key, token) in &active.launched {
                if !key.compensation {
                    token.cancel();
                }
            }
            for key in active.state.cut_short() {
                let outcome =
                    Outcome::Err(ActionError::new("cancelled", "the wait was cut short: the run is rolling back"));
                self.ready.push((run_id.to_owned(), key.finished(outcome, now_ms())));
            }
        }
        if self.paused {
            self.rearm(run_id);
            return;
        }
        let attempts: Vec<AttemptKey> =
            active.state.running().into_iter().filter(|key| !active.launched.contains_key(key)).collect();
        for key in attempts {
            self.launch(run_id, key);
        }
        self.rearm(run_id);
        self.maybe_evict(run_id);
    }

    /// Brings an evicted run back from its journal; whether the run is active.
    fn rehydrate(&mut self, run_id: &str) -> bool {
        if self.runs.contains_key(run_id) {
            return true;
        }
        let Some(Evicted { wf, timers }) = self.evicted.remove(run_id) else { return false };
        let entries = match self.store.entries(run_id) {
            Ok(entries) => entries,
            Err(e) => {
                warn!(run_id, error = %e, "cannot read an evicted run back; it stays in the store for resume");
                return false;
            }
        };
        let mut active = Active::replayed(run_id, wf, &entries);
        active.timers = timers;
        self.runs.insert(run_id.to_owned(), active);
        true
    }

    /// Takes a run out of memory when all it does is wait for a timer far off.
    fn maybe_evict(&mut self, run_id: &str) {
        let Some(active) = self.runs.get(run_id) else { return };
        let state = &active.state;
        let idle =
            state.in_flight().iter().all(|(s, ..)| state.is_wait_step(*s)) && state.compensation_in_flight().is_none();
        let next = active.timers.iter().map(|(due, _)| *due).min();
        let far = next.is_some_and(|due| due > now_ms() + EVICT_AFTER_MS);
        if idle && far && active.state.phase != Phase::Done {
            if let Some(active) = self.runs.remove(run_id) {
                self.evicted.insert(run_id.to_owned(), Evicted { wf: active.state.wf.clone(), timers: active.timers });
            }
        }
    }

    /// Starts an `event.wait`: an event of its type and key that came since the
    /// run started ends it at once (its outcome); otherwise it waits for one.
    fn begin_wait(&mut self, run_id: &str, at: AttemptKey, kind: String, key: String, since: u64) -> Option<Outcome> {
        let arrived = match self.store.events(&kind, &key, since) {
            Ok(arrived) => arrived,
            Err(e) => return Some(Outcome::Err(ActionError::new("unavailable", e.0))),
        };
        if let Some(event) = arrived.into_iter().next() {
            return Some(Outcome::Ok(event.data));
        }
        if let Some(answer) = &self.simulation.answer_waits {
            let data = answer.get(&kind).cloned().unwrap_or_else(|| serde_json::json!({}));
            let step = self.runs.get(run_id).map(|a| a.state.wf.steps[at.step].id.clone()).unwrap_or_default();
            let id = format!("sim-{run_id}:{step}:{}", at.item.unwrap_or(0));
            self.outbox.push(EventRecord { id, kind, key, data: data.clone(), at: now_ms() });
            return Some(Outcome::Ok(data));
        }
        let waiter = Waiter { run_id: run_id.to_owned(), step: at.step, item: at.item, attempt: at.attempt };
        self.waits.entry((kind, key)).or_default().push(waiter);
        None
    }

    /// An `event.emit`: the event joins the next commit, with the step's end (the
    /// outbox); its id is the step's idempotency key, so a repeat is the same event.
    fn emit(&mut self, id: String, kind: String, key: String, data: Json) -> Outcome {
        self.outbox.push(EventRecord { id: id.clone(), kind, key, data, at: now_ms() });
        Outcome::Ok(serde_json::json!({ "event_id": id }))
    }

    /// After a commit: every waiting unit an event matches ends with its data.
    /// Answers the runs each event woke, by event id.
    fn deliver(&mut self, events: &[EventRecord]) -> HashMap<String, Vec<String>> {
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

    fn rearm(&mut self, run_id: &str) {
        let Some(active) = self.runs.get_mut(run_id) else { return };
        for key in active.timers.drain(..) {
            self.timers.remove(&key);
        }
        for (due, entry) in active.state.timers() {
            self.timer_seq += 1;
            let key = (due, self.timer_seq);
            self.timers.insert(key, (run_id.to_owned(), entry));
            active.timers.push(key);
        }
    }

    /// Starts one attempt the way the run says ([`RunState::start`]): an
    /// immediate end, a durable timer, an event wait, an emit into the next
    /// commit, or a call of an action.
    fn launch(&mut self, run_id: &str, key: AttemptKey) {
        let Some(active) = self.runs.get_mut(run_id) else { return };
        let start = active.state.start(key);
        let token = CancellationToken::new();
        active.launched.insert(key, token.clone());
        let run = run_id.to_owned();
        let finished = move |outcome: Outcome| key.finished(outcome, now_ms());
        let call = match start {
            Start::Fail(error) => return self.ready.push((run, finished(Outcome::Err(error)))),
            Start::Sleep if self.simulation.skip_sleeps => {
                let Some(active) = self.runs.get(run_id) else { return };
                let outcome = active.state.sleep_end(key.step, key.item).map_or_else(Outcome::Err, |(_, woke)| woke);
                return self.ready.push((run, finished(outcome)));
            }
            // A durable timer, armed from the machine's timers.
            Start::Sleep => return,
            Start::Wait { kind, key: event, since } => {
                if let Some(outcome) = self.begin_wait(run_id, key, kind, event, since) {
                    self.ready.push((run, finished(outcome)));
                }
                return;
            }
            Start::Emit { id, kind, key: event, data } => {
                let outcome = self.emit(id, kind, event, data);
                return self.ready.push((run, finished(outcome)));
            }
            Start::Call(call) => call,
        };
        let Some(active) = self.runs.get(run_id) else { return };
        let state = &active.state;
        let def = &state.wf.steps[key.step];
        let (compensation, item, attempt) = (key.compensation, key.item, key.attempt);
        let wanted::Call { action: action_name, input, idempotency_key, timeout_ms } = *call;
        let Some(registered) = self.registry.shared(&action_name) else {
            let e = ActionError::new("failed", format!("the action `{action_name}` is not registered"));
            self.ready.push((run, finished(Outcome::Err(e))));
            return;
        };
        let call =
            Call { input, run_id: run.clone(), step: def.id.clone(), attempt, idempotency_key, cancel: token.clone() };
        let span = info_span!(
            "attempt",
            run_id = %run,
            workflow = %state.wf.name,
            step = %def.id,
            item,
            attempt,
            action = %action_name,
            compensation
        );
        span.in_scope(|| info!("attempt started"));
        let began = std::time::Instant::now();
        // With a permit free, poll the action once here: one that is done at once
        // (mock, a local sandbox service) needs no task and no channel hop.
        let permit = self.permits.clone().try_acquire_owned().ok();
        let mut future = registered.action.call(call);
        if permit.is_some() {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(result) = span.in_scope(|| future.as_mut().poll(&mut cx)) {
                let outcome = checked(&registered, result);
                span.in_scope(|| log_finished(&outcome, began));
                self.ready.push((run, finished(outcome)));
                return;
            }
        }
        let Some(tx) = self.tx.upgrade() else { return };
        let permits = self.permits.clone();
        let metrics = self.metrics.clone();
        metrics.in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tokio::spawn(
            async move {
                let permit = match permit {
                    Some(p) => Ok(p),
                    None => {
                        metrics.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let p = permits.acquire_owned().await;
                        metrics.queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        p
                    }
                };
                let outcome = match permit {
                    Ok(_permit) => attempt_outcome(&registered, future, token, timeout_ms).await,
                    Err(_) => Outcome::Err(ActionError::new("unavailable", "the engine is shutting down")),
                };
                log_finished(&outcome, began);
                let _ = tx.send(Msg::Outcome { run_id: run, entry: finished(outcome) });
                metrics.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
}

/// The end of an attempt, inside its span: the outcome and how long it took.
fn log_finished(outcome: &Outcome, began: std::time::Instant) {
    let duration_ms = began.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Outcome::Ok(_) => info!(outcome = "ok", duration_ms, "attempt finished"),
        Outcome::Err(e) => info!(outcome = %e.code, message = %e.message, duration_ms, "attempt failed"),
    }
}

/// The log events of a run's transitions: starts, retries, timeouts, compensations.
fn log_entry(run_id: &str, state: &RunState, entry: &Entry) {
    let workflow = state.wf.name.as_str();
    let step = |s: &usize| state.wf.steps.get(*s).map_or("", |d| d.id.as_str());
    match entry {
        Entry::RunStarted { .. } => info!(run_id, workflow, "run started"),
        Entry::InputRejected { error, .. } => warn!(run_id, workflow, message = %error.message, "run input rejected"),
        Entry::RetryScheduled { step: s, item, due } => {
            info!(run_id, workflow, step = step(s), item, in_ms = due.saturating_sub(now_ms()), "retry scheduled")
        }
        Entry::RunTimedOut { .. } => warn!(run_id, workflow, "run timed out; rolling back"),
        Entry::CancelRequested { .. } => info!(run_id, workflow, "run cancelled; rolling back"),
        Entry::StepFailed { step: s, error } => {
            warn!(run_id, workflow, step = step(s), code = %error.code, message = %error.message, "step failed")
        }
        Entry::CompensationStarted { step: s, item, attempt, .. } => {
            info!(run_id, workflow, step = step(s), item, attempt, "compensation started")
        }
        Entry::CompensationFinished { step: s, item, attempt, outcome, .. } => match outcome {
            Outcome::Ok(_) => info!(run_id, workflow, step = step(s), item, attempt, "compensation succeeded"),
            Outcome::Err(e) => {
                warn!(run_id, workflow, step = step(s), item, attempt, code = %e.code, message = %e.message, "compensation failed")
            }
        },
        _ => {}
    }
}

/// Runs one attempt under its timeout and cancellation, and checks its output.
async fn attempt_outcome(
    registered: &crate::actions::Registered,
    future: crate::actions::ActionFuture,
    token: CancellationToken,
    timeout_ms: Option<u64>,
) -> Outcome {
    let timeout = async {
        match timeout_ms {
            Some(ms) => tokio::time::sleep(StdDuration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = future => result,
        _ = token.cancelled() => Err(ActionError::new("cancelled", "the attempt was cancelled: the run is rolling back")),
        _ = timeout => {
            token.cancel();
            let limit = crate::dsl::duration::Duration(timeout_ms.unwrap_or(0));
            Err(ActionError::new("timeout", format!("the attempt took longer than its timeout of {limit}")))
        }
    };
    checked(registered, result)
}

/// A step's output may be at most about this large (it is journaled and kept).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// About how many bytes a value takes as JSON; stops counting past `limit`.
fn json_size(v: &Json, limit: usize) -> usize {
    match v {
        Json::Null | Json::Bool(_) => 5,
        Json::Number(_) => 20,
        Json::String(s) => s.len() + 2,
        Json::Array(items) => items
            .iter()
            .try_fold(2usize, |n, i| {
                let n = n + json_size(i, limit) + 1;
                if n > limit {
                    Err(n)
                } else {
                    Ok(n)
                }
            })
            .unwrap_or_else(|n| n),
        Json::Object(map) => map
            .iter()
            .try_fold(2usize, |n, (k, i)| {
                let n = n + k.len() + 4 + json_size(i, limit);
                if n > limit {
                    Err(n)
                } else {
                    Ok(n)
                }
            })
            .unwrap_or_else(|n| n),
    }
}

/// An action's result, with its output held to the action's output schema.
fn checked(registered: &crate::actions::Registered, result: Result<Json, ActionError>) -> Outcome {
    match result {
        Ok(output) if json_size(&output, MAX_OUTPUT_BYTES) > MAX_OUTPUT_BYTES => Outcome::Err(ActionError::new(
            "too_large",
            format!(
                "the action `{}` returned more than {} KiB of output, the most a step may keep",
                registered.spec.name,
                MAX_OUTPUT_BYTES / 1024
            ),
        )),
        Ok(output) if registered.output_validator.is_valid(&output) => Outcome::Ok(output),
        Ok(output) => {
            let why =
                registered.output_validator.iter_errors(&output).next().map(|e| e.to_string()).unwrap_or_default();
            Outcome::Err(ActionError::new(
                "schema",
                format!(
                    "the action `{}` returned output that does not match its output schema: {why}",
                    registered.spec.name
                ),
            ))
        }
        Err(e) => Outcome::Err(e),
    }
}

impl Active {
    /// A run brought back from its journal; its index row is already stored.
    fn replayed(run_id: &str, wf: Arc<CompiledWorkflow>, entries: &[Entry]) -> Active {
        let mut active = Active::new(RunState::replayed(run_id, wf, entries));
        active.seq = entries.len() as u32;
        active.status = run_status(&active.state);
        active
    }

    /// A new run: its empty status makes the first decision write its index row.
    fn new(state: RunState) -> Active {
        Active {
            state,
            seq: 0,
            status: String::new(),
            launched: HashMap::new(),
            decided: HashMap::new(),
            finished: Vec::new(),
            timers: Vec::new(),
        }
    }
}
