//! The driver: one async loop owns every active run's state. It takes outcomes
//! in (attempts that ended, timers that fired, new runs), folds them through the
//! state machines, commits every resulting entry in one group commit, and only
//! then acts on them: starts attempts, arms timers, cancels, answers waiters.
//!
//! The loop and its turn are here; what it holds has a file each: the public
//! handle (`handle`), the run cache (`run_cache`), the timer queue (`timers`),
//! event waits and emits (`events`), attempt dispatch (`attempt`), logs (`observe`).

mod attempt;
mod children;
mod events;
mod handle;
mod observe;
mod retention;
mod run_cache;
mod timers;

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
use super::operator::{Ask, Refused};
use super::record::{run_status, RunRecord};
use super::relay::Subscriptions;
use super::wanted::{self, AttemptKey, Start};
use crate::actions::{Call, Ctx, Registry};
use crate::base::clock::{Clock, SystemClock};
use crate::base::ids::new_run_id;
use crate::journal::entry::{ActionError, Entry, Item, OperatorAction, Outcome};
use crate::journal::injection::Injection;
use crate::journal::status::RunStatus;
use crate::store::{Commit, Delivery, EventRecord, RunMeta, Store, StoreError};

pub(crate) use attempt::{longer_than, MAX_OUTPUT_BYTES};
use events::Waiter;
pub(crate) use handle::{Engine, EngineOptions, NewRun, Transition};
use observe::{log_entry, log_finished};
use run_cache::{Active, Evicted};

/// A new run's answer.
type StartAnswer = Result<StartedRun, StoreError>;

/// A run a start asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StartedRun {
    pub run_id: String,
    /// Whether this call started it (false: a run of that id existed already).
    pub created: bool,
    /// Its status as its first commit wrote it (none: it existed already).
    pub status: Option<RunStatus>,
}

enum Msg {
    Start {
        run: NewRun,
        reply: oneshot::Sender<StartAnswer>,
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
    /// `letter`: the inbox letter that asked, which leaves with the commit that acts.
    Cancel {
        run_id: String,
        letter: Option<i64>,
        reply: oneshot::Sender<Result<(), CancelRefused>>,
    },
    /// An operator's ask (retry, skip, abort): judged, then journaled with who asked.
    Operate {
        run_id: String,
        ask: Ask,
        by: String,
        letter: Option<i64>,
        reply: oneshot::Sender<Result<OperatorAction, Refused>>,
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
    /// Which of these runs this engine does not have (neither moving nor parked).
    Absent {
        run_ids: Vec<String>,
        reply: oneshot::Sender<Vec<String>>,
    },
    /// Events another worker committed: they wake this worker's waits.
    Arrived {
        events: Vec<EventRecord>,
    },
    /// Finished runs that leave the store (retention); answered with how many
    /// did, once they are gone.
    Forget {
        runs: Vec<RunMeta>,
        reply: oneshot::Sender<usize>,
    },
}

/// The runs an event published from outside woke.
type Woken = Result<Vec<String>, StoreError>;

/// How a turn's commit went.
enum Written {
    Yes,
    /// Refused: these runs it meant to create exist already (another worker's).
    Exists(Vec<String>),
    /// The store cannot write, and the engine stops.
    No,
}

/// A turn between deciding and acting: its commit, and who waits for it.
struct Turn {
    commit: Commit,
    touched: Vec<String>,
    started: Vec<(String, bool, oneshot::Sender<StartAnswer>)>,
    committed: Vec<oneshot::Sender<()>>,
    published: Vec<(String, oneshot::Sender<Woken>)>,
    cancels: Vec<oneshot::Sender<Result<(), CancelRefused>>>,
    operated: Vec<(OperatorAction, oneshot::Sender<Result<OperatorAction, Refused>>)>,
    emitted: Vec<EventRecord>,
    transitions: Vec<Transition>,
    forgotten: Vec<(usize, oneshot::Sender<usize>)>,
}

struct Driver {
    /// The runtime attempts run on (the loop itself has a thread of its own).
    runtime: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    transitions: broadcast::Sender<Arc<Transition>>,
    /// Draining: no attempt is launched any more.
    paused: bool,
    subscriptions: Arc<Subscriptions>,
    clock: Arc<dyn Clock>,
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
    /// Where the workflows that `workflow.run` steps name are found.
    library: Arc<dyn crate::engine::library::Library>,
    /// Whether attempts carry a `traceparent`.
    propagate_traces: bool,
    /// Child runs to start in the next turn.
    spawns: Vec<NewRun>,
    /// The workflow versions whose copy is in the store (shared with the handle).
    definitions: Arc<Definitions>,
    /// Versions compiled from the store's copies (shared with the handle).
    versions: Arc<std::sync::Mutex<super::Versions>>,
}

/// The workflow versions known to have their copy in the store, so a run's
/// version is written once, before its first entry.
#[derive(Default)]
pub(crate) struct Definitions {
    stored: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Definitions {
    /// Keeps a copy of a workflow version in the store, once.
    pub(crate) fn keep(&self, store: &dyn Store, wf: &CompiledWorkflow) -> Result<(), StoreError> {
        let mut stored = self.stored.lock().unwrap_or_else(|p| p.into_inner());
        if !stored.contains(&wf.hash) {
            if store.definition(&wf.hash)?.is_none() {
                store.put_definition(&wf.hash, &wf.source)?;
            }
            stored.insert(wf.hash.clone());
        }
        Ok(())
    }
}

/// Messages taken in one turn of the loop, at most: one group commit.
const MAX_BATCH: usize = 4096;

impl Driver {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        loop {
            let mut batch: Vec<Msg> = if self.ready.is_empty() && self.spawns.is_empty() {
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
            let mut turn = self.prepare(batch);
            loop {
                match self.write(&turn.commit, &rx).await {
                    Written::Yes => break,
                    Written::Exists(existing) => self.drop_existing(&mut turn, &existing),
                    Written::No => {
                        warn!("the store still cannot write; the engine stops, its runs are resumable");
                        return;
                    }
                }
            }
            self.finish(turn);
        }
    }
    /// The next message, `Some(None)` when a timer fired instead, `None` when every
    /// handle to the engine is gone.
    async fn next_message(&mut self, rx: &mut mpsc::UnboundedReceiver<Msg>) -> Option<Option<Msg>> {
        match self.next_due() {
            Some(due) => tokio::select! {
                msg = rx.recv() => msg.map(Some),
                _ = self.clock.until(due) => {
                    self.fire_timers();
                    Some(None)
                }
            },
            None => rx.recv().await.map(Some),
        }
    }
    /// The first half of a turn: fold the messages in and decide; what is to
    /// be written, and what to do once it is.
    fn prepare(&mut self, batch: Vec<Msg>) -> Turn {
        let mut commit = Commit::default();
        let mut touched: Vec<String> = Vec::new();
        let mut started: Vec<(String, bool, oneshot::Sender<StartAnswer>)> = Vec::new();
        // Resumes and flushes, answered once the commit is done.
        let mut committed: Vec<oneshot::Sender<()>> = Vec::new();
        let mut published: Vec<(String, oneshot::Sender<Woken>)> = Vec::new();
        let mut cancels: Vec<oneshot::Sender<Result<(), CancelRefused>>> = Vec::new();
        let mut operated = Vec::new();
        let mut forgets = Vec::new();
        // Children first: an end or a cancel in this batch may be for one of them.
        for run in std::mem::take(&mut self.spawns) {
            match self.begin_run(run, &mut commit) {
                Ok((run_id, true)) => touched.push(run_id),
                Ok((_, false)) => {}
                // The parent's step waits for the child's end; a resume starts it again.
                Err(e) => warn!(error = %e, "a child run could not start now"),
            }
        }
        for msg in batch {
            match msg {
                Msg::Start { run, reply } => match self.begin_run(run, &mut commit) {
                    Ok((run_id, true)) => {
                        touched.push(run_id.clone());
                        started.push((run_id, true, reply));
                    }
                    Ok((run_id, false)) => started.push((run_id, false, reply)),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                },
                Msg::Resume { run_id, wf, entries, reply } => {
                    // A run already here goes on as it is (its attempts in flight are not launched again).
                    if !self.is_here(&run_id) {
                        self.runs.insert(run_id.clone(), Active::replayed(&run_id, wf, &entries));
                        touched.push(run_id);
                    }
                    committed.push(reply);
                }
                Msg::Outcome { run_id, entry } => {
                    // An undo may be for a finished child: it comes back from the store.
                    let undo = matches!(entry, Entry::UndoRequested { .. });
                    let here = self.rehydrate(&run_id) || (undo && self.reopen(&run_id));
                    if !here {
                        continue;
                    }
                    if self.runs.get(&run_id).is_some_and(|a| a.state.accepts(&entry)) {
                        self.record(&run_id, entry, &mut commit);
                        touched.push(run_id);
                    } else {
                        // Stale: it changes nothing and is not journaled; its attempt is over.
                        self.forget(&run_id, &entry);
                    }
                }
                Msg::Cancel { run_id, letter, reply } => match self.judge_cancel(&run_id) {
                    Ok(()) => {
                        self.record(&run_id, Entry::CancelRequested { at: self.clock.now_ms() }, &mut commit);
                        commit.letters.extend(letter);
                        touched.push(run_id);
                        // Answered once the cancel is on disk.
                        cancels.push(reply);
                    }
                    Err(refused) => {
                        let _ = reply.send(Err(refused));
                    }
                },
                Msg::Operate { run_id, ask, by, letter, reply } => match self.judge_ask(&run_id, &ask) {
                    Ok(action) => {
                        let at = self.clock.now_ms();
                        self.record(&run_id, Entry::Operator { action: action.clone(), by, at }, &mut commit);
                        commit.letters.extend(letter);
                        touched.push(run_id);
                        // Answered once it is on disk.
                        operated.push((action, reply));
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
                Msg::Absent { mut run_ids, reply } => {
                    run_ids.retain(|id| !self.is_here(id));
                    let _ = reply.send(run_ids);
                }
                Msg::Forget { runs, reply } => forgets.push((runs, reply)),
                // Already committed: the waits they match end in the next turn.
                Msg::Arrived { events } => drop(self.deliver(&events)),
                Msg::Wait { run_id, reply } => match self.runs.get(&run_id) {
                    // Paused: it goes on only when an operator acts.
                    Some(a) if a.status == Some(RunStatus::Paused) => {
                        let _ = reply.send(Some(RunRecord::of(&a.state)));
                    }
                    Some(_) => self.waiters.entry(run_id).or_default().push(reply),
                    None if self.evicted.contains_key(&run_id) => self.waiters.entry(run_id).or_default().push(reply),
                    None => {
                        let _ = reply.send(None);
                    }
                },
            }
        }
        touched.sort();
        touched.dedup();
        for run_id in &touched {
            self.decide(run_id, &mut commit);
        }
        // Last: a run reopened in this turn is in memory by now, and stays.
        let forgotten = self.take_forgets(forgets, &mut commit);
        commit.events.append(&mut self.outbox);
        commit.events.iter_mut().for_each(EventRecord::mask_secrets);
        let emitted = commit.events.clone();
        commit.deliveries = self.deliveries(&emitted);
        let transitions = self.committed_transitions(&commit);
        Turn { commit, touched, started, committed, published, cancels, operated, emitted, transitions, forgotten }
    }
    /// What an operator's ask does to a run (its state judges; an unknown or
    /// ended run is refused).
    fn judge_ask(&mut self, run_id: &str, ask: &Ask) -> Result<OperatorAction, Refused> {
        // A finished run comes back from the store to be judged (its failed
        // compensations may be retried); it leaves memory again unless taken.
        if !self.rehydrate(run_id) && self.reopen(run_id) {
            let judged = self.runs.get(run_id).map(|a| a.state.judge(ask));
            if !matches!(judged, Some(Ok(_))) {
                self.forget_finished(run_id);
            }
            return judged.unwrap_or(Err(Refused::Unknown));
        }
        if let Some(active) = self.runs.get(run_id) {
            return active.state.judge(ask);
        }
        match self.store.run(run_id) {
            // Unfinished and not here: being taken over, or another worker's.
            Ok(Some(meta)) if !meta.is_finished() => Err(Refused::Stopped),
            Ok(Some(meta)) => Err(Refused::Over(meta.status)),
            Ok(None) => Err(Refused::Unknown),
            Err(_) => Err(Refused::Stopped),
        }
    }
    /// Starts a run (its `RunStarted` into the commit) unless a run of its id
    /// exists; answers its id and whether it started.
    fn begin_run(&mut self, run: NewRun, commit: &mut Commit) -> Result<(String, bool), StoreError> {
        let NewRun { run_id, wf, input, inject, parent, timeout_ms, rerun_of, trace } = run;
        let run_id = match run_id {
            Some(id) if self.exists(&id)? => return Ok((id, false)),
            Some(id) => id,
            None => new_run_id(),
        };
        let now = self.clock.now_ms();
        // A child's deadline is also its step's timeout, from now.
        let deadline = [wf.timeout_ms, timeout_ms].into_iter().flatten().min().map(|t| now + t);
        let entry = Entry::RunStarted {
            workflow: wf.name.clone(),
            hash: wf.hash.clone(),
            input,
            at: now,
            deadline,
            inject,
            parent,
            rerun_of,
            trace,
        };
        let mut state = RunState::new(run_id.clone(), wf);
        // The secrets it reads enter the state here, once; the fold never reads them.
        state.secrets = state.wf.secret_values();
        self.runs.insert(run_id.clone(), Active::new(state));
        self.record(&run_id, entry, commit);
        commit.created.push(run_id.clone());
        Ok((run_id, true))
    }
    /// Whether a run takes a cancel now (its state judges; one that has left
    /// memory for good has ended, as its index row says).
    fn judge_cancel(&mut self, run_id: &str) -> Result<(), CancelRefused> {
        self.rehydrate(run_id);
        if let Some(active) = self.runs.get(run_id) {
            return active.state.cancellable();
        }
        match self.store.run(run_id) {
            // Unfinished and not here: being taken over, or another worker's.
            Ok(Some(meta)) if !meta.is_finished() => Err(CancelRefused::Stopped),
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
    async fn write(&mut self, commit: &Commit, rx: &mpsc::UnboundedReceiver<Msg>) -> Written {
        if commit.is_empty() {
            // A turn that only read (a wait, a flush): nothing to ask of the store.
            return Written::Yes;
        }
        let mut wait = StdDuration::from_millis(100);
        let first_failure = std::time::Instant::now();
        loop {
            let writing = std::time::Instant::now();
            match self.store.commit_turn(commit).await {
                Ok(()) => {
                    self.metrics.commit_latency.record(writing.elapsed().as_micros() as u64);
                    if self.metrics.storage.error().is_some() {
                        self.metrics.storage.recovered();
                        info!("the store takes writes again; the engine goes on");
                    }
                    return Written::Yes;
                }
                // Another worker created some of these runs first: they are not this one's.
                Err(e) if e.kind == crate::store::StoreErrorKind::Exists => return Written::Exists(e.existing),
                Err(e) => {
                    if self.metrics.storage.error().is_none() {
                        warn!(error = %e, "the store cannot write; the engine tries the same commit again until it can");
                    }
                    // A store broken for good is not waited for where waiting has a bound;
                    // a commit another writer fenced off is never tried again (the runs
                    // are no longer this engine's to move; their owner goes on with them).
                    let broken = e.kind == crate::store::StoreErrorKind::Broken;
                    let fenced = e.kind == crate::store::StoreErrorKind::Conflict;
                    self.metrics.storage.failed(e.message);
                    let too_long =
                        self.write_outage_limit.is_some_and(|limit| broken || first_failure.elapsed() >= limit);
                    if rx.is_closed() || too_long || fenced {
                        return Written::No;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(StdDuration::from_secs(5));
                }
            }
        }
    }
    /// The second half of a turn, once its commit is written: answer, wake, act.
    fn finish(&mut self, turn: Turn) {
        let Turn { commit, touched, started, committed, published, cancels, operated, emitted, transitions, forgotten } =
            turn;
        for (count, reply) in forgotten {
            let _ = reply.send(count);
        }
        for reply in cancels {
            let _ = reply.send(Ok(()));
        }
        for (action, reply) in operated {
            let _ = reply.send(Ok(action));
        }
        for t in transitions {
            let _ = self.transitions.send(Arc::new(t));
        }
        if !commit.deliveries.is_empty() {
            self.subscriptions.wake();
        }
        for (run_id, created, reply) in started {
            let status = created.then(|| self.runs.get(&run_id).and_then(|a| a.status)).flatten();
            let _ = reply.send(Ok(StartedRun { run_id, created, status }));
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
        let transition = |(run_id, seq, entry): &(String, u32, Entry)| {
            let wf = self.runs.get(run_id)?.state.wf.clone();
            Some(Transition { run_id: run_id.clone(), wf, seq: *seq, entry: entry.clone() })
        };
        commit.entries.iter().filter_map(transition).collect()
    }
    /// Whether a run of this id is known, here or in the store.
    fn exists(&self, run_id: &str) -> Result<bool, StoreError> {
        Ok(self.is_here(run_id) || self.store.run(run_id)?.is_some())
    }
    /// Whether this engine has the run, moving or parked.
    fn is_here(&self, run_id: &str) -> bool {
        self.runs.contains_key(run_id) || self.evicted.contains_key(run_id)
    }
    /// An attempt whose end came too late to count is no longer launched.
    fn forget(&mut self, run_id: &str, entry: &Entry) {
        let (Some(active), Some(key)) = (self.runs.get_mut(run_id), AttemptKey::ended_by(entry)) else { return };
        active.launched.remove(&key);
    }

    /// Applies an entry to a run and adds it to the commit.
    fn record(&mut self, run_id: &str, mut entry: Entry, commit: &mut Commit) {
        let now = self.clock.now_ms();
        let Some(active) = self.runs.get_mut(run_id) else { return };
        entry.mask_secrets();
        log_entry(run_id, &active.state, &entry, now);
        if let Some(key) = AttemptKey::ended_by(&entry) {
            active.launched.remove(&key);
        }
        match &entry {
            Entry::AttemptStarted { step, item, .. } => {
                active.decided.insert((*step, *item), std::time::Instant::now());
                self.metrics.attempts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if let Some(wait) = events::awaited(&active.state, run_id, *step, *item) {
                    // Ended earlier in this commit, begun again: it waits.
                    commit.waits_ended.retain(|w| w != &wait);
                    commit.waits_begun.push(wait);
                }
            }
            Entry::AttemptFinished { step, item, .. } => {
                active.finished.push((*step, *item));
                if let Some(wait) = events::awaited(&active.state, run_id, *step, *item) {
                    // Only the list of this wait's own type and key can hold it.
                    let awaited = (wait.kind.clone(), wait.key.clone());
                    if let Some(waiters) = self.waits.get_mut(&awaited) {
                        waiters.retain(|w| !(w.run_id == run_id && w.at.step == *step && w.at.item == *item));
                        if waiters.is_empty() {
                            self.waits.remove(&awaited);
                        }
                    }
                    // Begun earlier in this commit, ended: it waits no more.
                    commit.waits_begun.retain(|w| w != &wait);
                    commit.waits_ended.push(wait);
                }
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
        self.metrics.entries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        commit.entries.push((run_id.to_owned(), active.seq, entry));
        active.seq += 1;
        match commit.entries.last() {
            // A child's end tells its parent, in the same commit.
            Some((_, _, entry @ Entry::RunFinished { .. })) => {
                self.outbox.extend(crate::engine::child::end_event(&active.state, entry))
            }
            // A step that paused the run tells the run's subscribers (DSL.md C1).
            Some((_, seq, Entry::AttemptFinished { step, item, at, .. })) => {
                self.outbox.extend(crate::engine::operator::paused_event(&active.state, *step, *item, *seq, *at))
            }
            _ => {}
        }
    }
    /// Asks the run what happens next until it has nothing more to say.
    fn decide(&mut self, run_id: &str, commit: &mut Commit) {
        let mut random = || fastrand::f64();
        for _ in 0..10_000 {
            let Some(active) = self.runs.get(run_id) else { return };
            let entries = active.state.decide(&mut Decide { now: self.clock.now_ms(), random: &mut random });
            if entries.is_empty() {
                break;
            }
            for entry in entries {
                self.record(run_id, entry, commit);
            }
        }
        let Some(active) = self.runs.get_mut(run_id) else { return };
        let status = run_status(&active.state);
        if Some(status) != active.status {
            active.ends_now = status.is_finished();
            let before = active.status.map_or("", RunStatus::as_str);
            self.metrics.run_moved(&active.state.wf.name, before, status.as_str());
            active.status = Some(status);
            let s = &active.state;
            commit.runs.push(RunMeta {
                run_id: run_id.to_owned(),
                workflow: s.wf.name.clone(),
                hash: s.wf.hash.clone(),
                status,
                started_at: s.started_at,
                updated_at: self.clock.now_ms(),
                parent: s.parent.as_ref().map(|p| p.run_id.clone()),
                error: super::record::meta_error(s),
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
            if std::mem::take(&mut active.ends_now) {
                self.metrics.runs_finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let status = active.status.map_or("", RunStatus::as_str);
                info!(run_id, workflow = %active.state.wf.name, status, "run finished");
            }
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
            // The forward attempts stop; compensations, `on_failure` and `finally` run on.
            let steps = &active.state.wf.steps;
            for (key, token) in &active.launched {
                if !key.compensation && steps[key.step].section == crate::dsl::model::Section::Steps {
                    token.cancel();
                }
            }
            for key in active.state.cut_short() {
                let outcome =
                    Outcome::Err(ActionError::new("cancelled", "the wait was cut short: the run is rolling back"));
                self.ready.push((run_id.to_owned(), key.finished(outcome, self.clock.now_ms())));
            }
            // The children its steps wait for are cancelled; each rolls back on its own.
            let now = self.clock.now_ms();
            let cancels = active.state.running_children().into_iter().map(|c| (c, Entry::CancelRequested { at: now }));
            self.ready.extend(cancels);
        }
        if active.state.phase == Phase::Forward && active.status == Some(RunStatus::Paused) {
            // A paused run goes on only when an operator says so: who waits for it hears now.
            if let Some(waiters) = self.waiters.remove(run_id) {
                let record = RunRecord::of(&active.state);
                for waiter in waiters {
                    let _ = waiter.send(Some(record.clone()));
                }
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
}
