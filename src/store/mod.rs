//! Storage of runs, behind narrow traits: the journal (append-only, durable in
//! groups), the run index, and workflow definitions by content hash.
//! `sled` is the default; `memory` is for unit tests and benchmarks beside it.

pub mod memory;
pub mod sled;

use serde::{Deserialize, Serialize};

use crate::engine::journal::Entry;

/// A store that cannot do what was asked: the message says what and where.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the run index keeps of a run, to list and resume runs without replaying them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub run_id: String,
    pub workflow: String,
    pub hash: String,
    pub status: String,
    pub started_at: u64,
    pub updated_at: u64,
}

impl RunMeta {
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "compensated" | "compensation_failed")
    }
}

/// An event: emitted by a step (in the same commit as the step: the outbox) or
/// sent from outside. Its id makes delivery idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    pub data: serde_json::Value,
    /// Milliseconds since the epoch.
    pub at: u64,
}

/// One group commit: journal entries of many runs, their index rows, and the
/// events their steps emitted.
#[derive(Debug, Default)]
pub struct Commit {
    /// (run, sequence number within the run, entry)
    pub entries: Vec<(String, u32, Entry)>,
    pub runs: Vec<RunMeta>,
    pub events: Vec<EventRecord>,
}

impl Commit {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.runs.is_empty() && self.events.is_empty()
    }
}

/// Reading runs back: for `show`, `runs` and recovery.
pub trait ReadRuns: Send + Sync {
    fn entries(&self, run_id: &str) -> Result<Vec<Entry>, StoreError>;
    fn run(&self, run_id: &str) -> Result<Option<RunMeta>, StoreError>;
    /// Every run in the index, oldest first.
    fn runs(&self) -> Result<Vec<RunMeta>, StoreError>;
    fn definition(&self, hash: &str) -> Result<Option<String>, StoreError>;
    /// Events of this type and key that came at or after `since`, oldest first.
    fn events(&self, kind: &str, key: &str, since: u64) -> Result<Vec<EventRecord>, StoreError>;
}

/// Writing runs. Invariant: when `commit` returns Ok, everything in it is durable
/// (on disk for sled), and all of it or none of it is.
pub trait WriteRuns: Send + Sync {
    fn commit(&self, commit: Commit) -> Result<(), StoreError>;
    fn put_definition(&self, hash: &str, source: &str) -> Result<(), StoreError>;
}

/// A whole store.
pub trait Store: ReadRuns + WriteRuns {}

impl<T: ReadRuns + WriteRuns> Store for T {}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError(format!("cannot encode a record: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError(format!(
            "the store holds a {what} that cannot be read ({e}); is this a sagaflow data directory of this version?"
        ))
    })
}
