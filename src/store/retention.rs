//! Retention: finished runs leave the store a period after they finished,
//! with their journals and index rows, and events leave once no run can wait
//! for them (`[retention] finished`, `sagaflow store prune`).
//!
//! [`Prune`] only chooses; its caller removes what it chose, in a commit of
//! its own: the engine's loop while it runs (so no run it reopens is removed
//! under it), the store directly from the command line. Each choice can be
//! written out first ([`run_records`]) for `--export`.

use std::collections::HashSet;

use super::backup::Record;
use super::{EventRecord, RunMeta, Store, StoreError};

/// How many runs, or events, one choice holds: one commit each.
pub(crate) const BATCH: usize = 500;

/// What a prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Pruned {
    pub runs: usize,
    pub events: usize,
}

/// One pass of retention over a store: the finished runs, then the events,
/// older than `before`, in batches.
pub(crate) struct Prune {
    before: u64,
    /// The last candidate looked at: the next batch starts after it.
    after: Option<RunMeta>,
    pub pruned: Pruned,
}

impl Prune {
    /// A pass removing what finished (or came) before `before`, in milliseconds since the epoch.
    pub(crate) fn new(before: u64) -> Prune {
        Prune { before, after: None, pruned: Pruned::default() }
    }

    /// The next finished runs that leave; none once there are no more. A
    /// child run stays as long as its parent does (the parent may undo it).
    pub(crate) fn next_runs(&mut self, store: &dyn Store) -> Result<Option<Vec<RunMeta>>, StoreError> {
        loop {
            let batch = store.finished_before(self.before, self.after.as_ref(), BATCH)?;
            let Some(last) = batch.last() else { return Ok(None) };
            self.after = Some(last.clone());
            let leaving = self.leaving(store, batch)?;
            if !leaving.is_empty() {
                self.pruned.runs += leaving.len();
                return Ok(Some(leaving));
            }
        }
    }

    fn leaving(&self, store: &dyn Store, batch: Vec<RunMeta>) -> Result<Vec<RunMeta>, StoreError> {
        let ids: HashSet<String> = batch.iter().map(|m| m.run_id.clone()).collect();
        let mut leaving = Vec::with_capacity(batch.len());
        for meta in batch {
            let parent_goes = match &meta.parent {
                None => true,
                Some(parent) if ids.contains(parent) => true,
                Some(parent) => store.run(parent)?.is_none_or(|p| p.is_finished() && p.updated_at < self.before),
            };
            if parent_goes {
                leaving.push(meta);
            }
        }
        Ok(leaving)
    }

    /// The next events that leave: older than the period, and than every
    /// unfinished run (a wait reads the events that came since its run started).
    pub(crate) fn next_events(&mut self, store: &dyn Store) -> Result<Option<Vec<EventRecord>>, StoreError> {
        let before = store.unfinished_since()?.map_or(self.before, |since| since.min(self.before));
        let events = store.events_before(before, BATCH)?;
        if events.is_empty() {
            return Ok(None);
        }
        self.pruned.events += events.len();
        Ok(Some(events))
    }
}

/// A run as export lines: its index row, then its journal.
pub(crate) fn run_records(store: &dyn Store, meta: &RunMeta) -> Result<Vec<Record>, StoreError> {
    let mut records = vec![Record::Run { run: meta.clone() }];
    for (seq, entry) in store.entries(&meta.run_id)?.into_iter().enumerate() {
        records.push(Record::Entry { run_id: meta.run_id.clone(), seq: seq as u32, entry });
    }
    Ok(records)
}

#[cfg(test)]
mod tests;
