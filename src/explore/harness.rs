//! The simulated world `test`, `explore` and `run --answer-waits` run a run
//! in. A task beside the engine follows the run's committed transitions,
//! folding them through the same state machine the engine uses, and:
//!
//! - answers each `event.wait` that starts by publishing the awaited event
//!   (the data given for its type, `{}` for a type not given), as a person or
//!   another system would;
//! - on a virtual clock, once the run has nothing under way but timers
//!   (sleeps, retry backoffs, wait timeouts, its deadline), moves the clock
//!   to the first of them, so a flow that sleeps a day explores in milliseconds.
//!
//! The engine's loop knows nothing of it: it reads the time from its clock and
//! takes the events as any other.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::Value as Json;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};

use crate::base::clock::VirtualClock;
use crate::engine::driver::{Engine, Transition};
use crate::engine::machine::{Decide, Phase, RunState};
use crate::engine::record::RunRecord;
use crate::engine::wanted::{AttemptKey, Start};

/// What the world does for a run.
#[derive(Default, Clone)]
pub(crate) struct World {
    /// The data an awaited event of each type carries; `{}` for a type not
    /// given; `null`: an event of that type never comes (waits time out).
    pub answers: BTreeMap<String, Json>,
    /// Some: time skips ahead whenever the run waits on timers only.
    pub clock: Option<VirtualClock>,
}

/// A run as its committed transitions say it is.
struct Mirror {
    state: RunState,
    /// The place in the journal of the next entry to apply.
    next: u32,
    /// Waits whose event was published.
    answered: HashSet<AttemptKey>,
}

impl Mirror {
    /// The run as the store holds it now.
    fn read(engine: &Engine, run_id: &str) -> Option<Mirror> {
        let (state, next) = engine.replay_counted(run_id).ok()?;
        Some(Mirror { state, next, answered: HashSet::new() })
    }

    /// Folds one committed transition in. False: one was missed (read the store again).
    fn apply(&mut self, t: &Transition) -> bool {
        if t.seq < self.next {
            return true;
        }
        if t.seq > self.next {
            return false;
        }
        self.state.apply(&t.entry);
        self.next += 1;
        true
    }

    /// Whether the mirror holds the whole of the run's last commit: the engine
    /// commits a turn only once the machine has nothing more to decide, so a
    /// state that still has something to decide is a commit seen in part.
    fn settled(&self) -> bool {
        self.state.decide(&mut Decide { now: 0, random: &mut || 0.0 }).is_empty()
    }

    /// The waits under way with no event published for them yet.
    fn unanswered(&self) -> Vec<(AttemptKey, String, String)> {
        let waits = self.state.running().into_iter().filter(|k| !self.answered.contains(k));
        waits
            .filter_map(|k| match self.state.start(k) {
                Start::Wait { kind, key, .. } => Some((k, kind, key)),
                _ => None,
            })
            .collect()
    }

    /// Whether all the run does is wait: on timers, on waits nobody answers,
    /// or on children (`waiting`: those whose runs still go on).
    fn idle(&self, waiting: &dyn Fn(&str) -> bool) -> bool {
        self.state.phase == Phase::Done
            || self.state.running().into_iter().all(|k| match self.state.start(k) {
                Start::Sleep => true,
                Start::Wait { .. } => !self.answered.contains(&k),
                Start::Child(child) => waiting(&child.run_id),
                Start::UndoChild { run_id } => waiting(&run_id),
                _ => false,
            })
    }
}

/// The run followed and the child runs it started (theirs too), by run id.
struct Mirrors {
    top: String,
    runs: BTreeMap<String, Mirror>,
}

impl Mirrors {
    /// Folds a transition into its run's mirror; a run first seen (a child
    /// starting) is read from the store. False: a transition was missed.
    fn apply(&mut self, engine: &Engine, t: &Transition) -> bool {
        match self.runs.get_mut(&t.run_id) {
            Some(m) => m.apply(t),
            None if matches!(t.entry, crate::journal::entry::Entry::RunStarted { parent: Some(_), .. }) => {
                if let Some(m) = Mirror::read(engine, &t.run_id) {
                    self.runs.insert(t.run_id.clone(), m);
                }
                true
            }
            None => true,
        }
    }

    /// Reads every mirror again from the store, keeping what was answered.
    fn reread(&mut self, engine: &Engine) {
        for (run_id, m) in self.runs.iter_mut() {
            if let Some(fresh) = Mirror::read(engine, run_id) {
                let answered = std::mem::take(&mut m.answered);
                *m = Mirror { answered, ..fresh };
            }
        }
    }

    /// When every run waits on timers only: the first one's due time.
    fn idle_until(&self) -> Option<u64> {
        let going = |run_id: &str| self.runs.get(run_id).is_some_and(|m| m.state.phase != Phase::Done);
        if self.runs.get(&self.top).is_none_or(|m| m.state.phase == Phase::Done) {
            return None;
        }
        if !self.runs.values().all(|m| m.idle(&going)) {
            return None;
        }
        self.runs.values().flat_map(|m| m.state.timers()).map(|(due, _)| due).min()
    }
}

/// Follows a run to its end in this world, and the child runs it starts.
/// `seen` must be subscribed before the run started or resumed, so no
/// transition is missed. Answers the run's record, or `None` when the engine
/// stopped before the run ended.
pub(crate) async fn follow(
    engine: &Engine,
    run_id: &str,
    world: &World,
    mut seen: broadcast::Receiver<Arc<Transition>>,
) -> Option<RunRecord> {
    let ended = engine.wait(run_id);
    tokio::pin!(ended);
    let mut mirrors = Mirrors { top: run_id.to_owned(), runs: BTreeMap::new() };
    if let Some(m) = Mirror::read(engine, run_id) {
        mirrors.runs.insert(run_id.to_owned(), m);
    }
    loop {
        act(engine, world, &mut mirrors).await;
        let first = tokio::select! {
            biased;
            record = &mut ended => return record,
            t = seen.recv() => t,
        };
        let mut missed = false;
        let mut next = Some(first);
        while let Some(received) = next.take() {
            match received {
                Ok(t) => missed |= !mirrors.apply(engine, &t),
                Err(RecvError::Lagged(_)) => missed = true,
                Err(RecvError::Closed) => return ended.await,
            }
            next = match seen.try_recv() {
                Ok(t) => Some(Ok(t)),
                Err(TryRecvError::Lagged(n)) => Some(Err(RecvError::Lagged(n))),
                Err(_) => None,
            };
        }
        if missed {
            mirrors.reread(engine);
        }
    }
}

/// What the world does for the runs as they stand: publish the events their
/// waits wait for (none for a type whose data is `null`: that event never
/// comes); with nothing else under way, move the clock to the first timer.
async fn act(engine: &Engine, world: &World, mirrors: &mut Mirrors) {
    if !mirrors.runs.values().all(Mirror::settled) {
        return;
    }
    for m in mirrors.runs.values_mut() {
        for (at, kind, key) in m.unanswered() {
            let data = world.answers.get(&kind).cloned().unwrap_or_else(|| serde_json::json!({}));
            if data.is_null() {
                continue;
            }
            if engine.publish(&kind, &key, data).await.is_ok() {
                m.answered.insert(at);
            }
        }
    }
    if let (Some(clock), Some(due)) = (&world.clock, mirrors.idle_until()) {
        clock.advance_to(due);
    }
}
