//! The sled store's share of retention: two derived indexes, `f/<finished
//! at><run>` (finished runs by the time their row last changed) and
//! `e/<at><id>` (events by time, the value their `k\0` key), so a prune reads
//! only what it removes; and the removals themselves.
//!
//! Both indexes are derived: an export leaves them out, an import and a store
//! written before they existed rebuild them. A finished run reopened by an
//! operator leaves a stale `f/` key behind; the row says so, and the key goes
//! the next time a prune meets it.

use super::sled::{dead_letters_of, err, event_key, start_key, time_key, write_err, SledStore};
use super::{decode, EventRecord, RunMeta, StoreError, MAX_SCANNED_PER_PAGE};

/// Marks a store whose retention indexes are complete.
const INDEXED_KEY: &str = "m/retention-index";

/// `f/<updated_at><run id>`: a finished run, by when it finished.
pub(super) fn finish_key(meta: &RunMeta) -> Vec<u8> {
    time_key(b"f/", meta.updated_at, &meta.run_id)
}

/// `e/<at><id>`: an event, by when it came.
pub(super) fn event_time_key(event: &EventRecord) -> Vec<u8> {
    time_key(b"e/", event.at, &event.id)
}

/// The first key of a time-ordered prefix at or after `at`.
fn time_bound(prefix: &[u8], at: u64) -> Vec<u8> {
    time_key(prefix, at, "")
}

/// The index keys a run row brings with it: its start, and its finish once finished.
pub(super) fn put_run_keys(batch: &mut sled::Batch, meta: &RunMeta) {
    batch.insert(start_key(meta), &[]);
    if meta.is_finished() {
        batch.insert(finish_key(meta), &[]);
    }
}

impl SledStore {
    /// Builds the retention indexes of a store written before they existed, once;
    /// a new store is marked at once.
    pub(super) fn index_for_retention(&self) -> Result<(), StoreError> {
        let marked = self.tree.get(INDEXED_KEY).map_err(|e| err(&self.path, "cannot read the store", e))?;
        if marked.is_some() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for item in self.tree.scan_prefix("r/") {
            let (_, value) = item.map_err(|e| err(&self.path, "cannot read the run index", e))?;
            let meta: RunMeta = decode(&value, "run index row")?;
            put_run_keys(&mut batch, &meta);
        }
        for item in self.tree.scan_prefix(b"k\0") {
            let (key, value) = item.map_err(|e| err(&self.path, "cannot read events", e))?;
            let event: EventRecord = decode(&value, "event")?;
            batch.insert(event_time_key(&event), key);
        }
        batch.insert(INDEXED_KEY, b"1".as_slice());
        self.tree.apply_batch(batch).map_err(|e| write_err(&self.path, "cannot write", e))?;
        self.sync()
    }

    /// Adds to a batch the removal of a finished run: its journal, its row, its index keys.
    pub(super) fn remove_run(&self, batch: &mut sled::Batch, meta: &RunMeta) -> Result<usize, StoreError> {
        let mut removed = 0;
        for key in self.tree.scan_prefix(format!("j/{}/", meta.run_id)).keys() {
            batch.remove(key.map_err(|e| err(&self.path, "cannot read the journal", e))?);
            removed += 1;
        }
        batch.remove(format!("r/{}", meta.run_id).into_bytes());
        batch.remove(start_key(meta));
        batch.remove(finish_key(meta));
        Ok(removed + 3)
    }

    /// Finished runs by finish time, up to `before`, after `after`; stale keys
    /// met on the way are removed.
    pub(super) fn finished_runs_before(
        &self,
        before: u64,
        after: Option<&RunMeta>,
        limit: usize,
    ) -> Result<Vec<RunMeta>, StoreError> {
        let mut found = Vec::new();
        let mut stale = sled::Batch::default();
        let mut any_stale = false;
        let from = match after {
            // Just past its key.
            Some(meta) => [finish_key(meta), vec![0]].concat(),
            None => b"f/".to_vec(),
        };
        for item in self.tree.range(from..time_bound(b"f/", before)) {
            if found.len() == limit {
                break;
            }
            let (key, _) = item.map_err(|e| err(&self.path, "cannot read the finish index", e))?;
            let run_id = String::from_utf8_lossy(key.get(10..).unwrap_or_default()).into_owned();
            let current = self.run_row(&run_id)?;
            match current {
                Some(meta) if meta.is_finished() && finish_key(&meta) == key.as_ref() => found.push(meta),
                _ => {
                    stale.remove(key);
                    any_stale = true;
                }
            }
        }
        if any_stale {
            self.tree.apply_batch(stale).map_err(|e| write_err(&self.path, "cannot write", e))?;
        }
        Ok(found)
    }

    fn run_row(&self, run_id: &str) -> Result<Option<RunMeta>, StoreError> {
        match self.tree.get(format!("r/{run_id}")).map_err(|e| err(&self.path, "cannot read the run index", e))? {
            Some(bytes) => decode(&bytes, "run index row").map(Some),
            None => Ok(None),
        }
    }

    /// The start of the oldest unfinished run, looking at most at a page's
    /// worth of runs in start order; past that, the start of the last one
    /// looked at (no unfinished run started before it).
    pub(super) fn oldest_unfinished_start(&self) -> Result<Option<u64>, StoreError> {
        for (looked, item) in self.tree.scan_prefix("t/").keys().enumerate() {
            let key = item.map_err(|e| err(&self.path, "cannot read the run index", e))?;
            let position = String::from_utf8_lossy(&key[2..]).into_owned();
            let started = position.get(..16).and_then(|hex| u64::from_str_radix(hex, 16).ok()).unwrap_or(0);
            if looked == MAX_SCANNED_PER_PAGE {
                return Ok(Some(started));
            }
            let run_id = position.get(16..).unwrap_or_default();
            if self.run_row(run_id)?.is_some_and(|m| !m.is_finished()) {
                return Ok(Some(started));
            }
        }
        // Every run has finished: nothing waits.
        Ok(None)
    }

    /// Up to `limit` events older than `before`, oldest first.
    pub(super) fn read_events_before(&self, before: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let mut events = Vec::new();
        for item in self.tree.range(b"e/".to_vec()..time_bound(b"e/", before)).values().take(limit) {
            let key = item.map_err(|e| err(&self.path, "cannot read the event index", e))?;
            let value = self.tree.get(&key).map_err(|e| err(&self.path, "cannot read events", e))?;
            // An index key without its event is left over from a crash between: nothing to read.
            if let Some(value) = value {
                events.push(decode(&value, "event")?);
            }
        }
        Ok(events)
    }

    /// Adds to a batch the removal of an event: its keys, and its dead letters.
    pub(super) fn remove_event(&self, batch: &mut sled::Batch, event: &EventRecord) -> Result<(), StoreError> {
        batch.remove(event_key(event));
        batch.remove(event_time_key(event));
        for key in self.tree.scan_prefix(dead_letters_of(event)).keys() {
            batch.remove(key.map_err(|e| err(&self.path, "cannot read the dead letters", e))?);
        }
        Ok(())
    }
}

/// The event's two keys in a batch: by type and key, and by time.
pub(super) fn put_event(batch: &mut sled::Batch, event: &EventRecord, value: Vec<u8>) {
    let key = event_key(event);
    batch.insert(event_time_key(event), key.clone());
    batch.insert(key, value);
}
