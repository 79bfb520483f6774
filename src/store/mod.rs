//! Storage of runs, behind narrow traits: the journal (append-only, durable in
//! groups), the run index, and workflow definitions by content hash.
//! `sled` is the default; `memory` is for unit tests and benchmarks beside it.

pub(crate) mod backup;
pub(crate) mod faulty;
pub(crate) mod memory;
pub(crate) mod postgres;
pub(crate) mod retention;
pub(crate) mod sled;
mod sled_backup;
mod sled_retention;
pub(crate) mod wakeups;

use serde::{Deserialize, Serialize};

use crate::journal::entry::Entry;
pub(crate) use crate::journal::status::RunStatus;

/// A store that cannot do what was asked: what kind of failure, and a
/// message that says what and where.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
    /// For [`StoreErrorKind::Exists`]: the runs the commit meant to create that exist already.
    pub existing: Vec<String>,
}

/// What a store error means for the one who got it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The store cannot write now and may later (a full disk): the same write,
    /// tried again, may go through.
    Unavailable,
    /// The store refuses every write until the process restarts (sled after an
    /// I/O error).
    Broken,
    /// What the store holds cannot be read (a damaged record, another format).
    Corrupt,
    /// Another writer owns what the write touches (in a store shared by
    /// workers, a run fenced by the worker that took it over): tried again, it
    /// fails again; the writer must let the runs go.
    Conflict,
    /// Runs a commit meant to create exist already (another worker created
    /// them first): nothing was written; the same commit without them may be.
    Exists,
    /// Anything else: a path that is not a data directory, a lock held elsewhere.
    Other,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError { kind, message: message.into(), existing: Vec::new() }
    }

    /// An error of kind [`StoreErrorKind::Other`].
    pub fn other(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::Other, message)
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What the run index keeps of a run, to list and resume runs without replaying them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunMeta {
    pub run_id: String,
    pub workflow: String,
    pub hash: String,
    pub status: RunStatus,
    pub started_at: u64,
    pub updated_at: u64,
    /// The run whose `workflow.run` step started this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Why it ended badly or paused: the failed (or paused) step and the error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<MetaError>,
}

/// A run's failure as its index row keeps it: enough to list and filter runs by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MetaError {
    /// None: the run failed outside any step (its deadline, its input).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    pub code: String,
}

impl RunMeta {
    pub(crate) fn is_finished(&self) -> bool {
        self.status.is_finished()
    }
}

/// An event: emitted by a step (in the same commit as the step: the outbox) or
/// sent from outside. Its id makes delivery idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub key: String,
    pub data: serde_json::Value,
    /// Milliseconds since the epoch.
    pub at: u64,
    /// The span of the attempt that emitted it, sent on to webhooks (when traces are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EventRecord {
    /// Replaces every known secret's value in the event by `***` (DSL.md A6).
    pub(crate) fn mask_secrets(&mut self) {
        if crate::base::secrets::any() {
            crate::base::secrets::mask_string(&mut self.kind);
            crate::base::secrets::mask_string(&mut self.key);
            crate::base::secrets::mask_json(&mut self.data);
        }
    }
}

/// An event on its way to the subscribers that had subscribed when it was
/// committed (webhooks, workflows it triggers): the outbox. It leaves the
/// store when every subscriber has taken it or been given up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub event: EventRecord,
    pub pending: Vec<Pending>,
}

/// Who an event is delivered to. The outbox names it as text, `webhook:NAME`
/// or `workflow:NAME` (its [`Display`](std::fmt::Display) and [`Subscriber::parse`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Subscriber {
    /// A webhook of `sagaflow.toml`.
    Webhook(String),
    /// A workflow with an `event` trigger.
    Workflow(String),
}

impl Subscriber {
    /// A subscriber from its name in the outbox; none for a kind this sagaflow does not know.
    pub(crate) fn parse(id: &str) -> Option<Subscriber> {
        match id.split_once(':')? {
            ("webhook", name) => Some(Subscriber::Webhook(name.to_owned())),
            ("workflow", name) => Some(Subscriber::Workflow(name.to_owned())),
            _ => None,
        }
    }
}

impl std::fmt::Display for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Subscriber::Webhook(name) => write!(f, "webhook:{name}"),
            Subscriber::Workflow(name) => write!(f, "workflow:{name}"),
        }
    }
}

/// One subscriber still owed an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    /// `webhook:NAME` or `workflow:NAME`.
    pub subscriber: String,
    pub attempts: u32,
    /// Not before this time (milliseconds since the epoch).
    pub due: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Delivery {
    /// A new delivery of `event` to `subscribers`, due at once.
    pub(crate) fn new(event: EventRecord, subscribers: &[Subscriber]) -> Delivery {
        let pending =
            subscribers.iter().map(|s| Pending { subscriber: s.to_string(), attempts: 0, due: 0, last_error: None });
        Delivery { event, pending: pending.collect() }
    }

    /// When its next subscriber is due.
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.pending.iter().map(|p| p.due).min()
    }
}

/// A delivery given up on: the subscriber, the event, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeadLetter {
    pub event: EventRecord,
    pub subscriber: String,
    pub attempts: u32,
    pub error: String,
    pub at: u64,
}

/// One group commit: journal entries of many runs, their index rows, the
/// events their steps emitted, and those events' deliveries (the outbox);
/// and the finished runs that leave the store (retention).
#[derive(Debug, Default)]
pub(crate) struct Commit {
    /// (run, sequence number within the run, entry)
    pub entries: Vec<(String, u32, Entry)>,
    pub runs: Vec<RunMeta>,
    pub events: Vec<EventRecord>,
    pub deliveries: Vec<Delivery>,
    /// Finished runs to remove, each as its index row last said: the row,
    /// its journal and its index keys go. Never a run with entries in `entries`.
    pub forget: Vec<RunMeta>,
    /// Events to remove, with their dead letters.
    pub forget_events: Vec<EventRecord>,
    /// The runs this commit creates (their `RunStarted` is in it): in a store
    /// workers share, one that exists already refuses the commit
    /// ([`StoreErrorKind::Exists`]), so a run id is created once, whoever asks.
    pub created: Vec<String>,
    /// Letters to this worker (cancels, operators' acts) this commit carries
    /// out: they leave the inbox with it, so each is acted on once.
    pub letters: Vec<i64>,
    /// `event.wait` units this commit starts waiting, and those whose wait it
    /// ends. Kept by a store workers share, so an event posted to any of them
    /// lists the runs it wakes on every other ([`Ownership::waiting`]); a
    /// store of one process leaves them: its engine knows its waits.
    pub waits_begun: Vec<Wait>,
    pub waits_ended: Vec<Wait>,
}

/// An `event.wait` unit waiting: for which event, in which run and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wait {
    pub kind: String,
    pub key: String,
    pub run_id: String,
    pub step: usize,
    pub item: Option<usize>,
}

impl Commit {
    pub(crate) fn is_empty(&self) -> bool {
        self.letters.is_empty()
            && self.entries.is_empty()
            && self.runs.is_empty()
            && self.events.is_empty()
            && self.deliveries.is_empty()
            && self.forget.is_empty()
            && self.forget_events.is_empty()
            && self.waits_begun.is_empty()
            && self.waits_ended.is_empty()
    }
}

/// Which runs a listing wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct RunFilter {
    pub workflow: Option<String>,
    /// Any of these statuses; empty: any status.
    pub statuses: Vec<RunStatus>,
}

impl RunFilter {
    pub(crate) fn matches(&self, meta: &RunMeta) -> bool {
        self.workflow.as_ref().is_none_or(|w| &meta.workflow == w)
            && (self.statuses.is_empty() || self.statuses.contains(&meta.status))
    }
}

/// One page of a run listing, newest first; `next` continues it.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct RunPage {
    pub runs: Vec<RunMeta>,
    /// Give this back as the cursor for the next page; none: this was the last.
    pub next: Option<String>,
}

/// A listing looks at most this many runs per page, so one request stays
/// cheap however rare the runs it filters for; `next` goes on from there.
pub(crate) const MAX_SCANNED_PER_PAGE: usize = 20_000;

/// The cursor of a listing: the run after which the next page starts.
pub(crate) fn run_cursor(meta: &RunMeta) -> String {
    format!("{:016x}{}", meta.started_at, meta.run_id)
}

/// Reading runs back: for `show`, `runs` and recovery.
pub(crate) trait ReadRuns: Send + Sync {
    /// Runs matching the filter, newest first, after the cursor (a page's `next`).
    fn runs_page(&self, filter: &RunFilter, cursor: Option<&str>, limit: usize) -> Result<RunPage, StoreError> {
        let mut all = self.runs()?;
        all.reverse();
        let mut page = RunPage::default();
        let after_cursor = |m: &RunMeta| cursor.is_none_or(|c| run_cursor(m).as_str() < c);
        for meta in all.into_iter().filter(after_cursor) {
            if page.runs.len() == limit {
                page.next = page.runs.last().map(run_cursor);
                break;
            }
            if filter.matches(&meta) {
                page.runs.push(meta);
            }
        }
        Ok(page)
    }

    fn entries(&self, run_id: &str) -> Result<Vec<Entry>, StoreError>;
    /// The journals of several runs (a takeover's batch), by run; a store
    /// over a network reads them in one round trip.
    fn journals(&self, run_ids: &[String]) -> Result<std::collections::HashMap<String, Vec<Entry>>, StoreError> {
        run_ids.iter().map(|id| Ok((id.clone(), self.entries(id)?))).collect()
    }
    fn run(&self, run_id: &str) -> Result<Option<RunMeta>, StoreError>;
    /// Every run in the index, oldest first.
    fn runs(&self) -> Result<Vec<RunMeta>, StoreError>;
    fn definition(&self, hash: &str) -> Result<Option<String>, StoreError>;
    /// Events of this type and key that came at or after `since`, oldest first.
    fn events(&self, kind: &str, key: &str, since: u64) -> Result<Vec<EventRecord>, StoreError>;
    /// Up to `limit` finished runs whose last change came before `before`
    /// (milliseconds since the epoch), the longest finished first, after the
    /// run `after` names: retention's candidates.
    fn finished_before(&self, before: u64, after: Option<&RunMeta>, limit: usize) -> Result<Vec<RunMeta>, StoreError> {
        let place = |m: &RunMeta| (m.updated_at, m.run_id.clone());
        let mut old: Vec<RunMeta> = self
            .runs()?
            .into_iter()
            .filter(|m| m.is_finished() && m.updated_at < before && after.is_none_or(|a| place(m) > place(a)))
            .collect();
        old.sort_by_key(place);
        old.truncate(limit);
        Ok(old)
    }
    /// The runs that have not ended (to resume them), oldest first.
    fn unfinished(&self) -> Result<Vec<RunMeta>, StoreError> {
        Ok(self.runs()?.into_iter().filter(|m| !m.is_finished()).collect())
    }
    /// How many runs each workflow has in each status (for `/metrics`).
    fn status_counts(&self) -> Result<Vec<(String, RunStatus, u64)>, StoreError> {
        let mut counts: std::collections::BTreeMap<(String, &'static str), (RunStatus, u64)> = Default::default();
        for meta in self.runs()? {
            counts.entry((meta.workflow, meta.status.as_str())).or_insert((meta.status, 0)).1 += 1;
        }
        Ok(counts.into_iter().map(|((workflow, _), (status, n))| (workflow, status, n)).collect())
    }
    /// Up to `limit` events that came before `before`, oldest first.
    fn events_before(&self, before: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError>;
    /// A time no unfinished run started before: the start of the oldest
    /// unfinished run, or an earlier time (a store may look at only so many
    /// runs); none when every run has finished. Events older than it are read
    /// by no run's wait again.
    fn unfinished_since(&self) -> Result<Option<u64>, StoreError> {
        Ok(self.runs()?.into_iter().filter(|m| !m.is_finished()).map(|m| m.started_at).min())
    }
}

/// A commit under way: durable, all of it, once it answers Ok.
pub(crate) type Committing<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Writing runs. Invariant: when `commit` returns Ok, everything in it is durable
/// (on disk for sled), and all of it or none of it is.
pub(crate) trait WriteRuns: Send + Sync {
    /// On an error nothing of it is written, and the same commit may be tried
    /// again (unless the error is [`StoreErrorKind::Conflict`]: then the runs
    /// are another writer's).
    fn commit(&self, commit: &Commit) -> Result<(), StoreError>;
    /// The same, for the engine's loop, which awaits it: a store that commits
    /// over the network (a shared database, where a commit takes milliseconds
    /// and may be fenced off) answers when its transaction did, without holding
    /// the loop's thread. A local store writes at once, on the loop's own
    /// thread (it has one, so a flush never holds up a worker of the runtime).
    fn commit_turn<'a>(&'a self, commit: &'a Commit) -> Committing<'a> {
        Box::pin(std::future::ready(self.commit(commit)))
    }
    fn put_definition(&self, hash: &str, source: &str) -> Result<(), StoreError>;
    /// Whether a write could go through now (for health checks and to refuse
    /// new work early); a store with nothing to check says yes.
    fn check_writable(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The outbox: deliveries written by [`WriteRuns::commit`], taken by the relay.
/// Invariant: a delivery stays until `settle` says each of its subscribers
/// took it or was given up on (then it is a dead letter), so a crash at any
/// point delivers again rather than never.
///
/// In a store several workers share, the relays share the outbox: `due`
/// leases what it answers to this worker until it settles them (or dies, or
/// the lease runs out), and no other relay is given them meanwhile.
pub(crate) trait OutboxTable: Send + Sync {
    /// Up to `limit` deliveries with a subscriber due at `now`, oldest event first,
    /// and the earliest time one of the others is due.
    fn due(&self, now: u64, limit: usize) -> Result<(Vec<Delivery>, Option<u64>), StoreError>;
    /// Writes a delivery's progress durably: what is still pending (none: it is
    /// done and removed) and the dead letters of subscribers given up on.
    /// Shared, a delivery whose lease this worker lost is refused (`Conflict`)
    /// and nothing is written: the relay that holds it now delivers it.
    fn settle(&self, delivery: &Delivery, dead: &[DeadLetter]) -> Result<(), StoreError>;
    /// Every delivery still pending, oldest first.
    fn pending(&self) -> Result<Vec<Delivery>, StoreError>;
    /// Dead letters, oldest first.
    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError>;
}

/// Where each schedule got to: the last tick it fired (milliseconds since the
/// epoch), so a restart neither fires a tick twice nor forgets one it missed.
pub(crate) trait ScheduleTable: Send + Sync {
    fn last_tick(&self, schedule: &str) -> Result<Option<u64>, StoreError>;
    /// Durable when it returns.
    fn set_last_tick(&self, schedule: &str, at: u64) -> Result<(), StoreError>;
}

/// Which process runs which run. Alone on its store (sled, memory) a process
/// owns every run and these answer so; in a store several workers share,
/// each run is one live worker's, and a dead worker's runs are claimed.
pub(crate) trait Ownership: ReadRuns {
    /// Takes up to `limit` unfinished runs for this process to run: alone,
    /// all of them; shared, those no live worker owns, each to one claimer.
    fn claim(&self, limit: usize) -> Result<Vec<RunMeta>, StoreError> {
        let mut all = self.unfinished()?;
        all.truncate(limit);
        Ok(all)
    }
    /// Whether this process may take `run_id` up now (claiming it if it is an orphan).
    fn claim_run(&self, _run_id: &str) -> Result<bool, StoreError> {
        Ok(true)
    }
    /// Declares dead the other workers whose lease ran out; answers them.
    fn expire_workers(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
    /// This process stops owning runs: others take them up at once.
    fn leave(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether another worker took this one's runs over: it must stop.
    fn is_fenced(&self) -> bool {
        false
    }
    /// Whether other processes write to this store too (their events must be looked for).
    fn is_shared(&self) -> bool {
        false
    }
    /// Up to `limit` events of any worker that came at or after `since`,
    /// oldest first (to wake the waits of this worker's runs). Alone on its
    /// store, a process delivers its events as it commits them: none.
    fn events_since(&self, _since: u64, _limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        Ok(Vec::new())
    }
    /// Whether another live worker owns `run_id` (an act on it goes by letter).
    fn is_elsewhere(&self, _run_id: &str) -> Result<bool, StoreError> {
        Ok(false)
    }
    /// Leaves a request for whichever worker owns `run_id` (now, or after a takeover).
    fn post(&self, _run_id: &str, _request: &serde_json::Value) -> Result<(), StoreError> {
        Err(StoreError::other("a store of one process has no inbox: its runs are all its own"))
    }
    /// Up to `limit` letters to this worker (for runs it owns), oldest first.
    fn letters(&self, _limit: usize) -> Result<Vec<Letter>, StoreError> {
        Ok(Vec::new())
    }
    /// Removes a letter that was refused (acting on it changed nothing).
    fn drop_letter(&self, _id: i64) -> Result<(), StoreError> {
        Ok(())
    }
    /// Other workers' changes as they happen (none: nothing to hear, alone on its store).
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }
    /// The runs with a unit waiting for an event of `kind` and `key` now, on
    /// any worker, as their commits said (none alone on its store: its engine knows).
    fn waiting(&self, _kind: &str, _key: &str) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }
}

/// What a store several workers share says has changed, so a worker's task
/// need not wait for its next poll to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// New events (waits may end).
    Events,
    /// New deliveries in the outbox.
    Outbox,
    /// New letters in an inbox.
    Letters,
    /// Runs without a live owner (a worker left or died).
    Orphans,
}

impl Change {
    pub(crate) const ALL: [Change; 4] = [Change::Events, Change::Outbox, Change::Letters, Change::Orphans];
}

/// A request left for the worker that owns a run: what to do, as the engine wrote it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Letter {
    pub id: i64,
    pub run_id: String,
    pub request: serde_json::Value,
    /// Milliseconds since the epoch, by the database's clock.
    pub at: u64,
}

/// A whole store.
pub(crate) trait Store: ReadRuns + WriteRuns + OutboxTable + ScheduleTable + Ownership {}

impl<T: ReadRuns + WriteRuns + OutboxTable + ScheduleTable + Ownership> Store for T {}

#[cfg(test)]
pub(crate) mod contract_tests;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::other(format!("cannot encode a record: {e}")))
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| {
        StoreError::new(
            StoreErrorKind::Corrupt,
            format!(
            "the store holds a {what} that cannot be read ({e}); is this a sagaflow data directory of this version?"
        ),
        )
    })
}
