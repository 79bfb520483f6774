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
use crate::engine::compiled::CompiledWorkflow;
use crate::engine::driver::{Engine, Transition};
use crate::engine::machine::{Decide, Phase, RunState};
use crate::engine::record::RunRecord;
use crate::engine::wanted::{AttemptKey, Start};
use crate::store::ReadRuns;

/// What the world does for a run.
#[derive(Default, Clone)]
pub(crate) struct World {
    /// The data an awaited event of each type carries; `{}` for a type not given.
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
    fn read(store: &dyn ReadRuns, wf: &Arc<CompiledWorkflow>, run_id: &str) -> Option<Mirror> {
        let entries = store.entries(run_id).ok()?;
        let state = RunState::replayed_with(run_id, wf.clone(), &entries, wf.secret_values());
        Some(Mirror { state, next: entries.len() as u32, answered: HashSet::new() })
    }

    /// Folds one committed transition in. False: one was missed (read the store again).
    fn apply(&mut self, t: &Transition) -> bool {
        if t.run_id != self.state.run_id || t.seq < self.next {
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

    /// When the run waits on timers only: the first one's due time.
    fn idle_until(&self) -> Option<u64> {
        if self.state.phase == Phase::Done {
            return None;
        }
        let timers_only = self.state.running().into_iter().all(|k| match self.state.start(k) {
            Start::Sleep => true,
            Start::Wait { .. } => !self.answered.contains(&k),
            _ => false,
        });
        if !timers_only {
            return None;
        }
        self.state.timers().into_iter().map(|(due, _)| due).min()
    }
}

/// Follows a run to its end in this world. `seen` must be subscribed before
/// the run started or resumed, so no transition is missed. Answers the run's
/// record, or `None` when the engine stopped before the run ended.
pub(crate) async fn follow(
    engine: &Engine,
    store: &dyn ReadRuns,
    wf: &Arc<CompiledWorkflow>,
    run_id: &str,
    world: &World,
    mut seen: broadcast::Receiver<Arc<Transition>>,
) -> Option<RunRecord> {
    let ended = engine.wait(run_id);
    tokio::pin!(ended);
    let mut mirror = Mirror::read(store, wf, run_id);
    loop {
        if let Some(m) = mirror.as_mut() {
            act(engine, world, m).await;
        }
        let first = tokio::select! {
            biased;
            record = &mut ended => return record,
            t = seen.recv() => t,
        };
        let mut missed = false;
        let mut next = Some(first);
        while let Some(received) = next.take() {
            match received {
                Ok(t) => missed |= mirror.as_mut().is_some_and(|m| !m.apply(&t)),
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
            let answered = mirror.map(|m| m.answered).unwrap_or_default();
            mirror = Mirror::read(store, wf, run_id).map(|m| Mirror { answered, ..m });
        }
    }
}

/// What the world does for the run as it stands: publish the events its waits
/// wait for; with nothing else under way, move the clock to its first timer.
async fn act(engine: &Engine, world: &World, mirror: &mut Mirror) {
    if !mirror.settled() {
        return;
    }
    for (at, kind, key) in mirror.unanswered() {
        let data = world.answers.get(&kind).cloned().unwrap_or_else(|| serde_json::json!({}));
        if engine.publish(&kind, &key, data).await.is_ok() {
            mirror.answered.insert(at);
        }
    }
    if let (Some(clock), Some(due)) = (&world.clock, mirror.idle_until()) {
        clock.advance_to(due);
    }
}
