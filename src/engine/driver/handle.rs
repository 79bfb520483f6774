//! The engine's public handle: start, resume, wait for, cancel and follow runs.

use super::*;
use crate::engine::operator::Request;
use crate::store::Letter;

pub(crate) struct EngineOptions {
    /// At most this many action attempts run at once, across all runs.
    pub max_concurrent_attempts: usize,
    pub metrics: Arc<Metrics>,
    /// Who takes the events runs emit, beside the runs waiting for them.
    pub subscriptions: Arc<Subscriptions>,
    /// What tells the time: the system's in production; a virtual clock
    /// where a simulation skips the waits of a run with nothing else to do.
    pub clock: Arc<dyn Clock>,
    /// How long the engine tries again a commit the store refuses before it
    /// stops (its runs resumable); none: until it goes through, as `serve` does.
    pub write_outage_limit: Option<StdDuration>,
    /// Where the workflows `workflow.run` steps name are found.
    pub library: Arc<dyn crate::engine::library::Library>,
    /// Whether attempts send a `traceparent` (to HTTP services, `http.request`,
    /// webhooks through their events): when traces are exported.
    pub propagate_traces: bool,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_concurrent_attempts: 256,
            metrics: Arc::new(Metrics::default()),
            subscriptions: Arc::default(),
            clock: Arc::new(SystemClock),
            write_outage_limit: Some(StdDuration::from_secs(30)),
            library: Arc::new(crate::engine::library::NoLibrary),
            propagate_traces: false,
        }
    }
}

/// A run to start.
pub(crate) struct NewRun {
    /// None: a new id. Some: this id, unless a run of it exists (then nothing starts).
    pub run_id: Option<String>,
    pub wf: Arc<CompiledWorkflow>,
    pub input: Json,
    pub inject: Vec<Injection>,
    /// The run and step that start it, for a child run.
    pub parent: Option<crate::journal::entry::ParentLink>,
    /// A bound on the run besides its workflow's `timeout` (a child's step timeout).
    pub timeout_ms: Option<u64>,
    /// The run this one runs again (`rerun`).
    pub rerun_of: Option<String>,
    /// The trace it starts in (a request's `traceparent`, a parent's attempt).
    pub trace: Option<crate::base::trace::TraceParent>,
}

impl NewRun {
    /// A top-level run of `wf` with this input.
    pub(crate) fn of(wf: Arc<CompiledWorkflow>, input: Json) -> NewRun {
        NewRun {
            run_id: None,
            wf,
            input,
            inject: Vec::new(),
            parent: None,
            timeout_ms: None,
            rerun_of: None,
            trace: None,
        }
    }
}

/// One committed transition of a run, as the engine broadcasts it after the commit.
#[derive(Clone)]
pub(crate) struct Transition {
    pub run_id: String,
    /// The run's workflow version.
    pub wf: Arc<CompiledWorkflow>,
    /// The entry's place in the run's journal, from 0.
    pub seq: u32,
    pub entry: Entry,
}

/// How many transitions a slow listener may fall behind before it must read
/// the rest from the store.
const TRANSITIONS_BUFFER: usize = 8192;

/// A handle to the engine loop; cheap to clone.
#[derive(Clone)]
pub(crate) struct Engine {
    tx: mpsc::UnboundedSender<Msg>,
    store: Arc<dyn Store>,
    registry: Arc<Registry>,
    /// Workflow versions whose copy is known to be in the store.
    definitions: Arc<super::Definitions>,
    transitions: broadcast::Sender<Arc<Transition>>,
    metrics: Arc<Metrics>,
    /// Versions compiled from the store's copies, for reading runs back.
    versions: Arc<std::sync::Mutex<super::super::Versions>>,
    clock: Arc<dyn Clock>,
}

impl Engine {
    /// Starts the loop on the current tokio runtime.
    pub(crate) fn start(store: Arc<dyn Store>, registry: Arc<Registry>, options: EngineOptions) -> Engine {
        let (tx, rx) = mpsc::unbounded_channel();
        let (transitions, _) = broadcast::channel(TRANSITIONS_BUFFER);
        let metrics = options.metrics.clone();
        let runtime = tokio::runtime::Handle::current();
        let definitions = Arc::new(super::Definitions::default());
        let versions: Arc<std::sync::Mutex<super::super::Versions>> = Arc::default();
        let driver = Driver {
            runtime: runtime.clone(),
            transitions: transitions.clone(),
            paused: false,
            store: store.clone(),
            registry: registry.clone(),
            tx: tx.downgrade(),
            permits: Arc::new(Semaphore::new(options.max_concurrent_attempts.max(1))),
            metrics: options.metrics,
            subscriptions: options.subscriptions,
            clock: options.clock.clone(),
            write_outage_limit: options.write_outage_limit,
            runs: HashMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            waiters: HashMap::new(),
            evicted: HashMap::new(),
            ready: Vec::new(),
            outbox: Vec::new(),
            waits: HashMap::new(),
            library: options.library,
            propagate_traces: options.propagate_traces,
            spawns: Vec::new(),
            definitions: definitions.clone(),
            versions: versions.clone(),
        };
        // The loop has a thread of its own: its group commits (fsync) and the
        // synchronous start of actions never hold up a worker of the runtime,
        // where the actions themselves, the server and the relay run.
        // It logs where its starter logs (a scoped subscriber too).
        let logs = tracing::dispatcher::get_default(Clone::clone);
        let spawned = std::thread::Builder::new().name("sagaflow-engine".into()).spawn(move || {
            tracing::dispatcher::with_default(&logs, || {
                match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(own) => own.block_on(driver.run(rx)),
                    Err(e) => tracing::error!(error = %e, "the engine's thread cannot run; no run moves"),
                }
            })
        });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "the engine's thread cannot start; no run moves");
        }
        let clock = options.clock;
        Engine { tx, store, registry, definitions, transitions, metrics, versions, clock }
    }

    /// Starts a run; its first entries, and its workflow version, are durable when
    /// this returns.
    pub(crate) async fn start_run(&self, wf: Arc<CompiledWorkflow>, input: Json) -> Result<String, StoreError> {
        self.start_new(NewRun::of(wf, input)).await.map(|s| s.run_id)
    }

    /// Starts a run of a given id, unless one of that id exists (answers false):
    /// what starts a run at most once for one event or one tick.
    pub(crate) async fn start_run_as(
        &self,
        run_id: String,
        wf: Arc<CompiledWorkflow>,
        input: Json,
    ) -> Result<bool, StoreError> {
        let run = NewRun { run_id: Some(run_id), ..NewRun::of(wf, input) };
        self.start_new(run).await.map(|s| s.created)
    }

    /// Starts a run as described; answers its id and whether this call started it.
    pub(crate) async fn start_new(&self, mut run: NewRun) -> StartAnswer {
        self.definitions.keep(self.store.as_ref(), &run.wf)?;
        run.input = run.wf.with_defaults(run.input);
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Start { run, reply });
        answer.await.unwrap_or_else(|_| Err(StoreError::other("the engine stopped")))
    }

    /// Continues a run from its journal.
    pub(crate) async fn resume(&self, run_id: String, wf: Arc<CompiledWorkflow>, entries: Vec<Entry>) {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Resume { run_id, wf, entries, reply });
        let _ = answer.await;
    }

    /// Runs a run again (DSL.md C2): a new run of `wf` (the version to run:
    /// the one active now, or the old run's) with `input` (or the old run's),
    /// linked both ways (`rerun_of` in the new, an operator's `Rerun` in the old).
    pub(crate) async fn rerun(
        &self,
        old: &str,
        wf: Option<Arc<CompiledWorkflow>>,
        input: Option<Json>,
        by: &str,
    ) -> Result<String, super::super::ReplayError> {
        let state = self.replay(old)?;
        let wf = wf.unwrap_or_else(|| state.wf.clone());
        let input = input.unwrap_or_else(|| state.input.clone());
        let run = NewRun { rerun_of: Some(old.to_owned()), ..NewRun::of(wf, input) };
        let new = self.start_new(run).await?.run_id;
        let _ = self.operate(old, super::super::operator::Ask::Rerun { run_id: new.clone() }, by).await;
        Ok(new)
    }

    /// Takes an unfinished run up from its journal (as `resume` does, for one run).
    pub(crate) async fn take_up(&self, run_id: &str) -> Result<(), super::super::ReplayError> {
        let meta = self.store.run(run_id)?.ok_or_else(|| super::super::ReplayError::NoSuchRun(run_id.to_owned()))?;
        if !meta.is_finished() && !self.store.claim_run(run_id)? {
            return Err(super::super::ReplayError::OwnedElsewhere(run_id.to_owned()));
        }
        if !meta.is_finished() {
            let wf = self.version(&meta.hash)?;
            let entries = self.store.entries(run_id)?;
            self.resume(run_id.to_owned(), wf, entries).await;
        }
        Ok(())
    }

    /// Waits for a run to end, or to pause for an operator (it goes on only
    /// when one acts), and gives its record; a run that is no longer active is
    /// read back from the store. `None`: no such run, or it cannot end here
    /// (the engine stopped).
    ///
    /// In a store several workers share, a run another worker owns is
    /// watched in the store (its index row, twice a second) until it ends or pauses.
    pub(crate) async fn wait(&self, run_id: &str) -> Option<RunRecord> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Wait { run_id: run_id.to_owned(), reply });
        if let Some(record) = answer.await.ok().flatten() {
            return Some(record);
        }
        loop {
            let status = self.store.run(run_id).ok()??.status;
            if status.is_finished() || status == RunStatus::Paused {
                let state = self.replay(run_id).ok()?;
                let done = state.phase == Phase::Done || status == RunStatus::Paused;
                return done.then(|| RunRecord::of(&state));
            }
            // Alone, or this engine stopped: no one else moves it on.
            if !self.store.is_shared() || self.tx.is_closed() {
                return None;
            }
            tokio::time::sleep(StdDuration::from_millis(500)).await;
        }
    }

    /// A run's state read back from the store (each version compiled once).
    pub(crate) fn replay(&self, run_id: &str) -> Result<super::super::machine::RunState, super::super::ReplayError> {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        super::super::replay(self.store.as_ref(), &mut versions, run_id, &self.registry)
    }

    /// A run's state read back from the store, and how many entries its journal holds.
    pub(crate) fn replay_counted(
        &self,
        run_id: &str,
    ) -> Result<(super::super::machine::RunState, u32), super::super::ReplayError> {
        let meta = self.store.run(run_id)?.ok_or_else(|| super::super::ReplayError::NoSuchRun(run_id.to_owned()))?;
        let wf = self.version(&meta.hash)?;
        let entries = self.store.entries(run_id)?;
        let secrets = wf.secret_values();
        let state = super::super::machine::RunState::replayed_with(run_id, wf, &entries, secrets);
        Ok((state, entries.len() as u32))
    }

    /// A workflow version from the store's copy (compiled once).
    pub(crate) fn version(&self, hash: &str) -> Result<Arc<CompiledWorkflow>, super::super::ReplayError> {
        let mut versions = self.versions.lock().unwrap_or_else(|p| p.into_inner());
        versions.get(self.store.as_ref(), hash, &self.registry)
    }

    /// Sends an event from outside (the API, a test): durable when this returns,
    /// then delivered to the runs waiting for it.
    pub(crate) async fn publish(&self, kind: &str, key: &str, data: Json) -> Result<String, StoreError> {
        self.publish_event(kind, key, data).await.map(|(event, _)| event.id)
    }

    /// Sends an event from outside; answers it as stored and the runs whose
    /// waiting `event.wait` it ended: here, and on a shared store those the
    /// other workers' commits said were waiting for it as it came (read
    /// before it is committed: once it is, their owners may end the waits
    /// before a read after could see them).
    pub(crate) async fn publish_event(
        &self,
        kind: &str,
        key: &str,
        data: Json,
    ) -> Result<(EventRecord, Vec<String>), StoreError> {
        let id = format!("ev-{}", new_run_id());
        let event = EventRecord {
            id,
            kind: kind.to_owned(),
            key: key.to_owned(),
            data,
            at: self.clock.now_ms(),
            traceparent: None,
        };
        let elsewhere = if self.store.is_shared() { self.store.waiting(kind, key)? } else { Vec::new() };
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Publish { event: event.clone(), reply });
        let mut woken = answer.await.unwrap_or_else(|_| Err(StoreError::other("the engine stopped")))?;
        if !elsewhere.is_empty() {
            woken.extend(elsewhere);
            woken.sort();
            woken.dedup();
        }
        Ok((event, woken))
    }

    /// Every transition committed from now on, live. A listener that falls
    /// more than a few thousand behind is told it lagged (then reads the store).
    pub(crate) fn transitions(&self) -> broadcast::Receiver<Arc<Transition>> {
        self.transitions.subscribe()
    }

    /// Stops launching attempts: a drain before the process ends. What is in
    /// flight ends and is recorded; the rest continues on the next start.
    pub(crate) fn pause(&self) {
        self.send(Msg::Pause);
    }

    /// Attempts launched and not yet ended.
    pub(crate) fn in_flight(&self) -> u64 {
        self.metrics.in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(crate) fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Returns after one more turn of the loop: what reached the engine before
    /// this call (attempts' ends, new runs) is committed.
    pub(crate) async fn flush(&self) {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Flush { reply });
        let _ = answer.await;
    }

    /// Which of `run_ids` this engine does not have now (none if it stopped):
    /// one it has cannot end and leave before a resume that follows would
    /// bring it back from a journal read before its end.
    pub(crate) async fn absent(&self, run_ids: Vec<String>) -> Vec<String> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Absent { run_ids, reply });
        answer.await.unwrap_or_default()
    }

    /// Asks a run to roll back; answers whether it will (a run whose forward
    /// steps have all ended, or that has ended, is not cancelled). A run
    /// another worker owns is judged as its journal stands, and the cancel
    /// left in that worker's inbox.
    pub(crate) async fn cancel(&self, run_id: &str) -> Result<(), CancelRefused> {
        if self.store.is_elsewhere(run_id).unwrap_or(false) {
            let state = self.replay(run_id).map_err(|_| CancelRefused::Stopped)?;
            state.cancellable()?;
            return self.store.post(run_id, &Request::Cancel.to_json()).map_err(|_| CancelRefused::Stopped);
        }
        self.cancel_here(run_id, None).await
    }

    async fn cancel_here(&self, run_id: &str, letter: Option<i64>) -> Result<(), CancelRefused> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Cancel { run_id: run_id.to_owned(), letter, reply });
        answer.await.unwrap_or(Err(CancelRefused::Stopped))
    }

    /// An operator's ask of a run (retry, skip, abort), journaled with who
    /// asked (`by`); answers what it did once that is durable, or why not.
    /// A run another worker owns: what it would do as its journal stands,
    /// once the ask is in that worker's inbox.
    pub(crate) async fn operate(&self, run_id: &str, ask: Ask, by: &str) -> Result<OperatorAction, Refused> {
        if self.store.is_elsewhere(run_id).unwrap_or(false) {
            let state = self.replay(run_id).map_err(|_| Refused::Stopped)?;
            let action = state.judge(&ask)?;
            let request = Request::Operate { ask, by: by.to_owned() }.to_json();
            self.store.post(run_id, &request).map_err(|_| Refused::Stopped)?;
            return Ok(action);
        }
        self.operate_here(run_id, ask, by, None).await
    }

    async fn operate_here(
        &self,
        run_id: &str,
        ask: Ask,
        by: &str,
        letter: Option<i64>,
    ) -> Result<OperatorAction, Refused> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Operate { run_id: run_id.to_owned(), ask, by: by.to_owned(), letter, reply });
        answer.await.unwrap_or(Err(Refused::Stopped))
    }

    /// Acts on a letter another worker left for a run this one owns; answers
    /// whether the letter is done with (acted on, or refused for good). An
    /// act is journaled in the commit that removes its letter: once.
    pub(crate) async fn take_letter(&self, letter: &Letter) -> bool {
        let request = match serde_json::from_value::<Request>(letter.request.clone()) {
            Ok(request) => request,
            Err(e) => {
                warn!(run_id = %letter.run_id, error = %e, "a request to this worker cannot be read; it is dropped");
                return true;
            }
        };
        let refused = match request {
            Request::Cancel => match self.cancel_here(&letter.run_id, Some(letter.id)).await {
                Ok(()) => return true,
                Err(CancelRefused::Stopped) => None,
                Err(refused) => Some(refused.to_string()),
            },
            Request::Operate { ask, by } => match self.operate_here(&letter.run_id, ask, &by, Some(letter.id)).await {
                Ok(_) => return true,
                Err(Refused::Stopped) => None,
                Err(refused) => Some(refused.to_string()),
            },
        };
        match refused {
            // Not judged now (the run is being taken up): the letter waits.
            None => false,
            Some(why) => {
                info!(run_id = %letter.run_id, why, "a request from another worker was refused: the run moved on");
                true
            }
        }
    }

    /// Removes finished runs from the store (retention), in the loop's next
    /// commit; answers how many left (a run reopened meanwhile stays).
    pub(crate) async fn forget(&self, runs: Vec<RunMeta>) -> Result<usize, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Msg::Forget { runs, reply });
        answer.await.map_err(|_| StoreError::other("the engine has stopped"))
    }

    /// Hands the engine events other workers committed; the runs here that
    /// wait for them go on (an event given twice wakes nothing more).
    pub(crate) fn arrived(&self, events: Vec<EventRecord>) {
        self.send(Msg::Arrived { events });
    }

    fn send(&self, msg: Msg) {
        // A closed channel means the loop ended; the caller's reply then fails.
        let _ = self.tx.send(msg);
    }
}
