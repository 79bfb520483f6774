//! The run cache: runs in memory, and those that left it to wait for a timer far off.

use super::*;

pub(super) struct Active {
    pub(super) state: RunState,
    pub(super) seq: u32,
    pub(super) status: Option<RunStatus>,
    /// Attempts and compensations started by this process, with their cancel tokens.
    pub(super) launched: HashMap<AttemptKey, CancellationToken>,
    /// When each attempt in flight was decided, for the step latency.
    pub(super) decided: HashMap<(usize, Item), std::time::Instant>,
    /// Attempts whose end is in the commit under way.
    pub(super) finished: Vec<(usize, Item)>,
    pub(super) timers: Vec<(u64, u64)>,
    /// It ended in the turn under way (not a finished run read back to be
    /// acted on): counted and logged once.
    pub(super) ends_now: bool,
}

/// What stays in memory of an evicted run: its version and its timers' keys.
pub(super) struct Evicted {
    pub(super) wf: Arc<CompiledWorkflow>,
    pub(super) timers: Vec<(u64, u64)>,
}

/// A run whose next timer is further off than this leaves memory until it fires.
pub(super) const EVICT_AFTER_MS: u64 = 2_000;

impl Driver {
    /// Brings an evicted run back from its journal; whether the run is active.
    pub(super) fn rehydrate(&mut self, run_id: &str) -> bool {
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
    pub(super) fn maybe_evict(&mut self, run_id: &str) {
        let Some(active) = self.runs.get(run_id) else { return };
        let state = &active.state;
        let idle =
            state.in_flight().iter().all(|(s, ..)| state.is_wait_step(*s)) && state.compensation_in_flight().is_none();
        let next = active.timers.iter().map(|(due, _)| *due).min();
        let far = next.is_some_and(|due| due > self.clock.now_ms() + EVICT_AFTER_MS);
        if idle && far && active.state.phase != Phase::Done {
            if let Some(active) = self.runs.remove(run_id) {
                self.evicted.insert(run_id.to_owned(), Evicted { wf: active.state.wf.clone(), timers: active.timers });
            }
        }
    }
}

impl Active {
    /// A run brought back from its journal; its index row is already stored.
    pub(super) fn replayed(run_id: &str, wf: Arc<CompiledWorkflow>, entries: &[Entry]) -> Active {
        let secrets = wf.secret_values();
        let mut active = Active::new(RunState::replayed_with(run_id, wf, entries, secrets));
        active.seq = entries.len() as u32;
        active.status = Some(run_status(&active.state));
        active
    }

    /// A new run: no status yet, so the first decision writes its index row.
    pub(super) fn new(state: RunState) -> Active {
        Active {
            state,
            seq: 0,
            status: None,
            launched: HashMap::new(),
            decided: HashMap::new(),
            finished: Vec::new(),
            timers: Vec::new(),
            ends_now: false,
        }
    }
}
