//! A store around another that fails the commits a rule picks: a crash
//! simulated at a chosen point (`explore --crash`), a full disk (tests); and
//! that may take a while to answer a commit, as a database over the network
//! does. Reads and every other write go to the store inside.

use std::sync::Arc;

use super::{
    Commit, DeadLetter, Delivery, EventRecord, OutboxTable, ReadRuns, RunMeta, ScheduleTable, Store, StoreError,
    WriteRuns,
};
use crate::journal::entry::Entry;

/// Which commits fail, and with what error.
pub(crate) type FailRule = Box<dyn Fn(&Commit) -> Option<StoreError> + Send + Sync>;

/// A store whose commits fail when [`FailRule`] says so.
pub(crate) struct Faulty {
    inner: Arc<dyn Store>,
    fails: FailRule,
    /// How long each commit the engine awaits takes before it is written.
    latency: std::time::Duration,
}

impl Faulty {
    pub(crate) fn new(inner: Arc<dyn Store>, fails: FailRule) -> Faulty {
        Faulty { inner, fails, latency: std::time::Duration::ZERO }
    }
    /// Each awaited commit answers only after `latency`, as over a network.
    #[cfg(test)]
    pub(crate) fn with_latency(mut self, latency: std::time::Duration) -> Faulty {
        self.latency = latency;
        self
    }
}

impl ReadRuns for Faulty {
    fn entries(&self, run_id: &str) -> Result<Vec<Entry>, StoreError> {
        self.inner.entries(run_id)
    }
    fn run(&self, run_id: &str) -> Result<Option<RunMeta>, StoreError> {
        self.inner.run(run_id)
    }
    fn runs(&self) -> Result<Vec<RunMeta>, StoreError> {
        self.inner.runs()
    }
    fn definition(&self, hash: &str) -> Result<Option<String>, StoreError> {
        self.inner.definition(hash)
    }
    fn events(&self, kind: &str, key: &str, since: u64) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events(kind, key, since)
    }
    fn finished_before(&self, before: u64, after: Option<&RunMeta>, limit: usize) -> Result<Vec<RunMeta>, StoreError> {
        self.inner.finished_before(before, after, limit)
    }
    fn events_before(&self, before: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events_before(before, limit)
    }
    fn unfinished_since(&self) -> Result<Option<u64>, StoreError> {
        self.inner.unfinished_since()
    }
    fn unfinished(&self) -> Result<Vec<RunMeta>, StoreError> {
        self.inner.unfinished()
    }
    fn status_counts(&self) -> Result<Vec<(String, crate::store::RunStatus, u64)>, StoreError> {
        self.inner.status_counts()
    }
}

impl WriteRuns for Faulty {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        match (self.fails)(commit) {
            Some(error) => Err(error),
            None => self.inner.commit(commit),
        }
    }
    fn commit_turn<'a>(&'a self, commit: &'a Commit) -> super::Committing<'a> {
        Box::pin(async move {
            if !self.latency.is_zero() {
                tokio::time::sleep(self.latency).await;
            }
            match (self.fails)(commit) {
                Some(error) => Err(error),
                None => self.inner.commit_turn(commit).await,
            }
        })
    }
    fn put_definition(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        self.inner.put_definition(hash, source)
    }
    fn check_writable(&self) -> Result<(), StoreError> {
        self.inner.check_writable()
    }
}

impl OutboxTable for Faulty {
    fn due(&self, now: u64, limit: usize) -> Result<(Vec<Delivery>, Option<u64>), StoreError> {
        self.inner.due(now, limit)
    }
    fn settle(&self, delivery: &Delivery, dead: &[DeadLetter]) -> Result<(), StoreError> {
        self.inner.settle(delivery, dead)
    }
    fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        self.inner.pending()
    }
    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.inner.dead_letters()
    }
}

impl super::Ownership for Faulty {
    fn claim(&self, limit: usize) -> Result<Vec<RunMeta>, StoreError> {
        self.inner.claim(limit)
    }
    fn claim_run(&self, run_id: &str) -> Result<bool, StoreError> {
        self.inner.claim_run(run_id)
    }
    fn expire_workers(&self) -> Result<Vec<String>, StoreError> {
        self.inner.expire_workers()
    }
    fn leave(&self) -> Result<(), StoreError> {
        self.inner.leave()
    }
    fn is_fenced(&self) -> bool {
        self.inner.is_fenced()
    }
    fn is_shared(&self) -> bool {
        self.inner.is_shared()
    }
    fn events_since(&self, since: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.events_since(since, limit)
    }
}

impl ScheduleTable for Faulty {
    fn last_tick(&self, schedule: &str) -> Result<Option<u64>, StoreError> {
        self.inner.last_tick(schedule)
    }
    fn set_last_tick(&self, schedule: &str, at: u64) -> Result<(), StoreError> {
        self.inner.set_last_tick(schedule, at)
    }
}
