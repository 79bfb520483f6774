//! An in-memory store: the same contract as sled, nothing on disk.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{
    Commit, DeadLetter, Delivery, EventRecord, OutboxTable, ReadRuns, RunMeta, ScheduleTable, StoreError, WriteRuns,
};
use crate::journal::entry::Entry;

#[derive(Default)]
pub(crate) struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    journal: BTreeMap<String, Vec<Entry>>,
    runs: BTreeMap<String, RunMeta>,
    definitions: BTreeMap<String, String>,
    events: Vec<EventRecord>,
    /// By (event time, event id), as sled orders them.
    outbox: BTreeMap<(u64, String), Delivery>,
    dead: Vec<DeadLetter>,
    ticks: BTreeMap<String, u64>,
}

impl MemoryStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ReadRuns for MemoryStore {
    fn entries(&self, run_id: &str) -> Result<Vec<Entry>, StoreError> {
        Ok(self.lock().journal.get(run_id).cloned().unwrap_or_default())
    }

    fn run(&self, run_id: &str) -> Result<Option<RunMeta>, StoreError> {
        Ok(self.lock().runs.get(run_id).cloned())
    }

    fn runs(&self) -> Result<Vec<RunMeta>, StoreError> {
        let mut runs: Vec<RunMeta> = self.lock().runs.values().cloned().collect();
        runs.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        Ok(runs)
    }

    fn definition(&self, hash: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().definitions.get(hash).cloned())
    }

    fn events(&self, kind: &str, key: &str, since: u64) -> Result<Vec<EventRecord>, StoreError> {
        let inner = self.lock();
        Ok(inner.events.iter().filter(|e| e.kind == kind && e.key == key && e.at >= since).cloned().collect())
    }

    fn events_before(&self, before: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let mut old: Vec<EventRecord> = self.lock().events.iter().filter(|e| e.at < before).cloned().collect();
        old.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
        old.truncate(limit);
        Ok(old)
    }
}

impl WriteRuns for MemoryStore {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for (run, _, entry) in &commit.entries {
            inner.journal.entry(run.clone()).or_default().push(entry.clone());
        }
        for meta in &commit.runs {
            inner.runs.insert(meta.run_id.clone(), meta.clone());
        }
        for event in &commit.events {
            if !inner.events.iter().any(|e| e.id == event.id) {
                inner.events.push(event.clone());
            }
        }
        for delivery in &commit.deliveries {
            inner.outbox.insert((delivery.event.at, delivery.event.id.clone()), delivery.clone());
        }
        for meta in &commit.forget {
            inner.journal.remove(&meta.run_id);
            inner.runs.remove(&meta.run_id);
        }
        let gone: std::collections::HashSet<&str> = commit.forget_events.iter().map(|e| e.id.as_str()).collect();
        inner.events.retain(|e| !gone.contains(e.id.as_str()));
        inner.dead.retain(|d| !gone.contains(d.event.id.as_str()));
        Ok(())
    }

    fn put_definition(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        self.lock().definitions.insert(hash.to_owned(), source.to_owned());
        Ok(())
    }
}

impl OutboxTable for MemoryStore {
    fn due(&self, now: u64, limit: usize) -> Result<(Vec<Delivery>, Option<u64>), StoreError> {
        let inner = self.lock();
        let (due, later): (Vec<&Delivery>, Vec<&Delivery>) =
            inner.outbox.values().partition(|d| d.next_due().is_some_and(|at| at <= now));
        let next = later.iter().filter_map(|d| d.next_due()).min();
        Ok((due.into_iter().take(limit).cloned().collect(), next))
    }

    fn settle(&self, delivery: &Delivery, dead: &[DeadLetter]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.dead.extend_from_slice(dead);
        let key = (delivery.event.at, delivery.event.id.clone());
        match delivery.pending.is_empty() {
            true => inner.outbox.remove(&key),
            false => inner.outbox.insert(key, delivery.clone()),
        };
        Ok(())
    }

    fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        Ok(self.lock().outbox.values().cloned().collect())
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.lock().dead.clone())
    }
}

impl super::Ownership for MemoryStore {}

impl ScheduleTable for MemoryStore {
    fn last_tick(&self, schedule: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().ticks.get(schedule).copied())
    }

    fn set_last_tick(&self, schedule: &str, at: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let tick = inner.ticks.entry(schedule.to_owned()).or_insert(at);
        *tick = (*tick).max(at);
        Ok(())
    }
}
