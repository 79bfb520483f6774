//! The sled store: one tree, keys by prefix, so a group commit is one atomic
//! batch. `j/<run>/<seq>` journal entries, `r/<run>` the run index, `d/<hash>`
//! workflow definitions, `k\0<type>\0<key>\0<at><id>` events, `o/<at><id>` the
//! outbox's deliveries, `x/<at><id>\0<subscriber>` dead letters, `t/<start><run>`
//! the runs by start time (for paged listings), `s/<schedule>` schedules' last ticks;
//! `f/` and `e/` index finished runs and events by time, for retention (`sled_retention`).
//!
//! Durability: sled 0.34's `flush` only issues `sync_file_range`, which does not
//! reach the platter on every file system; after each flush we also `fdatasync`
//! the database file. When `commit` returns, the batch is on disk.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::sled_retention::{put_event, put_run_keys};
use super::{
    decode, encode, run_cursor, Commit, DeadLetter, Delivery, EventRecord, OutboxTable, ReadRuns, RunFilter, RunMeta,
    RunPage, ScheduleTable, StoreError, StoreErrorKind, WriteRuns, MAX_SCANNED_PER_PAGE,
};
use crate::journal::entry::Entry;

/// The key and value that say a sled database is a sagaflow store of this format.
pub(super) const FORMAT_KEY: &str = "m/format";
const FORMAT: &str = "sagaflow-store-1";

/// Free space the store leaves on its file system (see [`SledStore::ensure_space`]).
pub(crate) const FREE_SPACE_RESERVE: u64 = 16 * 1024 * 1024;

/// Bytes free to an unprivileged writer on the file system holding `path`.
fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
        // SAFETY: statvfs only writes the struct it is given; the path is NUL-terminated.
        let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
            return None;
        }
        Some(stat.f_bavail.saturating_mul(stat.f_frsize))
    }
    #[cfg(not(unix))]
    None
}

/// The sled tree that holds the runs (the sandbox services have trees of their own).
pub(crate) const RUN_TREE: &str = "sagaflow";

/// sled's page cache: an explicit budget (its default is 1 GiB).
pub(crate) const CACHE_BYTES: u64 = 16 * 1024 * 1024;

pub(crate) struct SledStore {
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    /// The database file, for fdatasync after each flush.
    file: Mutex<Option<File>>,
    pub(super) path: PathBuf,
    /// Run before each commit's batch, so their writes share its flush.
    before_commit: std::sync::OnceLock<BeforeCommit>,
}

/// Writes of others in the same database (the sandbox services') that must be
/// durable no later than the next commit.
pub(crate) type BeforeCommit = Box<dyn Fn() -> Result<(), Box<dyn std::error::Error + Send + Sync>> + Send + Sync>;

/// A write sled refused. After an I/O error sled 0.34 refuses every later
/// write until the process restarts, and the message says so.
pub(super) fn write_err(path: &Path, what: &str, e: sled::Error) -> StoreError {
    let sled::Error::Io(io) = &e else { return err(path, what, e) };
    let (cause, todo) = match is_no_space(io) {
        true => ("no space left on the device".to_owned(), "free some space, then restart it"),
        false => (e.to_string(), "restart it once the cause is fixed"),
    };
    let message = format!(
        "{what} in {}: {cause}; sled refuses every write after this until sagaflow restarts: {todo}",
        path.display()
    );
    StoreError::new(StoreErrorKind::Broken, message)
}

pub(super) fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::other(format!("{what} in {}: {e}", path.display()))
}

impl SledStore {
    /// Opens (or creates) a data directory.
    pub(crate) fn open(path: &Path) -> Result<SledStore, StoreError> {
        if path.exists() && !path.is_dir() {
            return Err(StoreError::other(format!("{} is a file, not a data directory", path.display())));
        }
        if path.is_dir()
            && std::fs::read_dir(path).map(|mut d| d.next().is_some()).unwrap_or(false)
            && !path.join("conf").exists()
        {
            return Err(StoreError::other(format!(
                "{} is not empty and is not a sagaflow data directory (no sled `conf` file); choose another --data",
                path.display()
            )));
        }
        let existed = path.join("conf").exists();
        let db = open_recovering(path, existed)?;
        write_holder(path);
        let tree = db.open_tree(RUN_TREE).map_err(|e| err(path, "cannot open the run tree", e))?;
        let file = File::open(path.join("db")).ok();
        let store =
            SledStore { db, tree, file: Mutex::new(file), path: path.to_owned(), before_commit: Default::default() };
        store.check_format(existed)?;
        store.index_start_times()?;
        store.index_for_retention()?;
        Ok(store)
    }

    /// Sets what runs before each commit (once; later calls are ignored).
    pub(crate) fn before_commit(&self, hook: BeforeCommit) {
        let _ = self.before_commit.set(hook);
    }

    /// The database, for the sandbox services' own trees.
    pub(crate) fn db(&self) -> sled::Db {
        self.db.clone()
    }

    /// A new store gets a format marker; an existing one must have it, or it is
    /// corrupt or someone else's (sled itself reads a damaged file as empty).
    fn check_format(&self, existed: bool) -> Result<(), StoreError> {
        let marker = self.tree.get(FORMAT_KEY).map_err(|e| err(&self.path, "cannot read the format marker", e))?;
        match marker {
            Some(value) if value.as_ref() == FORMAT.as_bytes() => Ok(()),
            Some(value) => Err(StoreError::other(format!(
                "{} holds sagaflow data of another format ({}); this sagaflow reads {FORMAT}",
                self.path.display(),
                String::from_utf8_lossy(&value)
            ))),
            None if existed => Err(StoreError::other(format!(
                "{} is corrupt, or is a sled database that sagaflow did not write: its format marker is missing",
                self.path.display()
            ))),
            None => {
                self.tree
                    .insert(FORMAT_KEY, FORMAT.as_bytes())
                    .map_err(|e| write_err(&self.path, "cannot write", e))?;
                self.sync()
            }
        }
    }

    /// Data written before the start-time index existed gets it, once.
    fn index_start_times(&self) -> Result<(), StoreError> {
        let indexed = self.tree.scan_prefix("t/").next().is_some();
        let has_runs = self.tree.scan_prefix("r/").next().is_some();
        if indexed || !has_runs {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for meta in self.scan::<RunMeta>("r/", "run index row")? {
            batch.insert(start_key(&meta), &[]);
        }
        self.tree.apply_batch(batch).map_err(|e| write_err(&self.path, "cannot write", e))?;
        self.sync()
    }

    /// Refuses a write of about `bytes` when the file system would keep less
    /// than [`FREE_SPACE_RESERVE`] free. sled (0.34) keeps the first write
    /// error it meets for the life of the process, so a write that hit a full
    /// disk would stop the store until a restart; refused here, nothing is
    /// written, and the same write goes through once space comes back.
    pub(super) fn ensure_space(&self, bytes: usize) -> Result<(), StoreError> {
        let Some(free) = free_bytes(&self.path) else { return Ok(()) };
        let needed = FREE_SPACE_RESERVE.saturating_add(2 * bytes as u64);
        if free >= needed {
            return Ok(());
        }
        Err(StoreError::new(StoreErrorKind::Unavailable, format!(
            "no space left on the device: {} has {} free, and sagaflow keeps {} MiB free so that a full disk never breaks the store; free some space and the writes go on by themselves",
            self.path.display(),
            crate::base::file::size(free),
            FREE_SPACE_RESERVE / (1024 * 1024)
        )))
    }

    pub(super) fn sync(&self) -> Result<(), StoreError> {
        self.db.flush().map_err(|e| write_err(&self.path, "cannot flush", e))?;
        let guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = guard.as_ref() {
            file.sync_data().map_err(|e| err(&self.path, "cannot fdatasync", e))?;
        }
        Ok(())
    }
}

/// The file in a data directory that names the process holding it.
const HOLDER_FILE: &str = "holder";

/// Says who holds the directory now (pid and command line), for the error a
/// second process gets. Best effort: the lock itself is sled's.
fn write_holder(path: &Path) {
    let command: Vec<String> = std::env::args().collect();
    let _ = std::fs::write(path.join(HOLDER_FILE), format!("pid {}: {}", std::process::id(), command.join(" ")));
}

/// Opens sled's database; when sled finds it corrupt, recovers what a crash
/// leaves behind and says so in the log.
///
/// sled (0.34) writes its snapshot, a table of where each page lies in its
/// log, only while a database opens: to `snap.<lsn>.generating`, then renamed
/// to `snap.<lsn>`. It reads the newest `snap.*` file and nothing else, so a
/// kill mid-write (spacejam/sled#1527), or one damaged bit, makes every later
/// open fail. The snapshot holds no data of its own: without one, sled replays
/// its whole log and writes a new one. So: first the unfinished snapshots are
/// removed, then (if that is not enough) the finished ones are moved aside to
/// `damaged-snapshots/`; what the log gives back must then still hold the run
/// tree, or the error says what to try.
fn open_recovering(path: &Path, existed: bool) -> Result<sled::Db, StoreError> {
    let first = match open_sled(path) {
        Ok(db) => return Ok(db),
        Err(e) => e,
    };
    if !existed || !is_corruption(&first) {
        return Err(open_error(path, first));
    }
    let unfinished = snapshot_files(path, |name| name.ends_with(".generating"));
    for file in &unfinished {
        tracing::warn!(file = %file.display(), "removing an unfinished sled snapshot (left by a crash while it was written)");
        let _ = std::fs::remove_file(file);
    }
    if !unfinished.is_empty() {
        match open_sled(path) {
            Ok(db) => return recovered(path, db, "an unfinished snapshot was removed"),
            Err(e) if !is_corruption(&e) => return Err(open_error(path, e)),
            Err(_) => {}
        }
    }
    let aside = path.join(DAMAGED_SNAPSHOTS);
    let snapshots = snapshot_files(path, |_| true);
    if snapshots.is_empty() {
        return Err(damaged_log(path));
    }
    std::fs::create_dir_all(&aside).map_err(|e| err(path, "cannot make a folder for the damaged snapshot", e))?;
    // Rebuilding may write to the log (sled starts afresh where it finds nothing):
    // a copy of the log as it was is kept until the rebuild is known good.
    let log_copy = aside.join("db.before-rebuild");
    std::fs::copy(path.join("db"), &log_copy).map_err(|e| {
        err(path, "cannot copy the log aside before rebuilding the store from it (nothing was changed)", e)
    })?;
    for file in &snapshots {
        let to = aside.join(file.file_name().unwrap_or_default());
        tracing::warn!(file = %file.display(), to = %to.display(), "moving a damaged sled snapshot aside; the store is rebuilt from its log");
        std::fs::rename(file, &to).map_err(|e| err(path, "cannot move the damaged snapshot aside", e))?;
    }
    let rebuilt = match open_sled(path) {
        Ok(db) => recovered(path, db, "the damaged snapshot was moved aside and the store rebuilt from its log"),
        Err(e) if is_corruption(&e) => Err(damaged_log(path)),
        Err(e) => Err(open_error(path, e)),
    };
    if rebuilt.is_ok() {
        let _ = std::fs::remove_file(&log_copy);
    }
    rebuilt
}

/// Where damaged snapshots are moved, inside the data directory.
const DAMAGED_SNAPSHOTS: &str = "damaged-snapshots";

/// Opens sled's database. A lock held by this very process is one being let
/// go (sled's threads end a moment after its last handle is dropped): that is
/// waited for, up to 5 s.
fn open_sled(path: &Path) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let opened = std::panic::catch_unwind(|| sled::Config::new().path(path).cache_capacity(CACHE_BYTES).open())
            .unwrap_or_else(|_| Err(sled::Error::Corruption { at: None, bt: () }));
        match opened {
            Err(e) if is_lock(&e) && held_by_us(path) && std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// Whether sled could not take the data directory's lock.
fn is_lock(e: &sled::Error) -> bool {
    let text = e.to_string();
    text.contains("WouldBlock") || text.contains("lock")
}

/// Whether the holder file names this process.
fn held_by_us(path: &Path) -> bool {
    let holder = std::fs::read_to_string(path.join(HOLDER_FILE)).unwrap_or_default();
    holder.strip_prefix("pid ").and_then(|rest| rest.split(':').next()) == Some(&std::process::id().to_string())
}

fn is_corruption(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Corruption { .. })
}

/// sled's snapshot files in the data directory whose name `keep` takes.
fn snapshot_files(path: &Path, keep: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(path) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with("snap.") && keep(n)))
        .map(|e| e.path())
        .collect()
}

/// A database sled opened after a recovery: it must have found its data (sled
/// starts an empty one when it finds none) and hold the run tree.
fn recovered(path: &Path, db: sled::Db, how: &str) -> Result<sled::Db, StoreError> {
    let has_runs = db.tree_names().iter().any(|n| n.as_ref() == RUN_TREE.as_bytes());
    if !db.was_recovered() || !has_runs {
        return Err(damaged_log(path));
    }
    tracing::warn!(data = %path.display(), "the store was recovered: {how}");
    Ok(db)
}

fn damaged_log(path: &Path) -> StoreError {
    StoreError::other(format!(
        "the data directory {} is damaged beyond its snapshot: sled cannot read its log. Its snapshots and a copy of the log as it was \
         (`db.before-rebuild`) are in {}/. Restore a backup made with `sagaflow store export` into a new directory \
         (`sagaflow store import FILE --data NEW`), or keep this one for inspection",
        path.display(),
        path.join(DAMAGED_SNAPSHOTS).display()
    ))
}

fn open_error(path: &Path, e: sled::Error) -> StoreError {
    if is_lock(&e) {
        let holder =
            std::fs::read_to_string(path.join(HOLDER_FILE)).map(|h| format!(" ({})", h.trim())).unwrap_or_default();
        StoreError::other(format!(
            "the data directory {} is in use by another sagaflow process{holder}; stop it, use another --data, or talk to it with --server",
            path.display()
        ))
    } else if let sled::Error::Io(io) = &e {
        if is_no_space(io) {
            StoreError::other(format!(
                "cannot open the data directory {}: no space left on the device; free some space and try again",
                path.display()
            ))
        } else {
            StoreError::other(format!("cannot open the data directory {}: {io}", path.display()))
        }
    } else {
        StoreError::other(format!("{} is not a sagaflow data directory, or it is corrupt (sled: {e})", path.display()))
    }
}

/// Whether an I/O error is a full disk (or a quota reached).
pub(crate) fn is_no_space(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull
        || e.kind() == std::io::ErrorKind::QuotaExceeded
        || e.raw_os_error() == Some(libc::ENOSPC)
}

/// `k\0<type>\0<key>\0`: the prefix of one type and key's events.
fn event_prefix(kind: &str, key: &str) -> Vec<u8> {
    format!("k\0{kind}\0{key}\0").into_bytes()
}

/// Events sort by time under their prefix; the id makes a repeat land on itself.
pub(super) fn event_key(event: &EventRecord) -> Vec<u8> {
    let mut key = event_prefix(&event.kind, &event.key);
    key.extend_from_slice(&event.at.to_be_bytes());
    key.extend_from_slice(event.id.as_bytes());
    key
}

/// `o/<at><id>`: a delivery, in the order its events came.
pub(super) fn delivery_key(event: &EventRecord) -> Vec<u8> {
    time_key(b"o/", event.at, &event.id)
}

/// `<prefix><at, 8 bytes big-endian><id>`: keys in time order under a prefix.
pub(super) fn time_key(prefix: &[u8], at: u64, id: &str) -> Vec<u8> {
    let mut key = prefix.to_vec();
    key.extend_from_slice(&at.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

pub(super) fn dead_letter_key(dead: &DeadLetter) -> Vec<u8> {
    let mut key = dead_letters_of(&dead.event);
    key.extend_from_slice(dead.subscriber.as_bytes());
    key
}

/// `x/<at><id>\0`: the prefix of an event's dead letters.
pub(super) fn dead_letters_of(event: &EventRecord) -> Vec<u8> {
    let mut key = time_key(b"x/", event.at, &event.id);
    key.push(0);
    key
}

/// `t/<started_at, 16 hex digits><run id>`: the runs in the order they started.
pub(super) fn start_key(meta: &RunMeta) -> Vec<u8> {
    format!("t/{}", run_cursor(meta)).into_bytes()
}

pub(super) fn journal_key(run: &str, seq: u32) -> Vec<u8> {
    let mut key = format!("j/{run}/").into_bytes();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

impl ReadRuns for SledStore {
    fn entries(&self, run_id: &str) -> Result<Vec<Entry>, StoreError> {
        self.tree
            .scan_prefix(format!("j/{run_id}/"))
            .map(|item| {
                let (_, value) = item.map_err(|e| err(&self.path, "cannot read the journal", e))?;
                decode(&value, "journal entry")
            })
            .collect()
    }

    fn run(&self, run_id: &str) -> Result<Option<RunMeta>, StoreError> {
        match self.tree.get(format!("r/{run_id}")).map_err(|e| err(&self.path, "cannot read the run index", e))? {
            Some(bytes) => decode(&bytes, "run index row").map(Some),
            None => Ok(None),
        }
    }

    fn runs(&self) -> Result<Vec<RunMeta>, StoreError> {
        let mut runs: Vec<RunMeta> = self
            .tree
            .scan_prefix("r/")
            .map(|item| {
                let (_, value) = item.map_err(|e| err(&self.path, "cannot read the run index", e))?;
                decode(&value, "run index row")
            })
            .collect::<Result<_, _>>()?;
        runs.sort_by(|a, b| (a.started_at, &a.run_id).cmp(&(b.started_at, &b.run_id)));
        Ok(runs)
    }

    fn events(&self, kind: &str, key: &str, since: u64) -> Result<Vec<EventRecord>, StoreError> {
        self.read_events(kind, key, since)
    }

    fn finished_before(&self, before: u64, after: Option<&RunMeta>, limit: usize) -> Result<Vec<RunMeta>, StoreError> {
        self.finished_runs_before(before, after, limit)
    }

    fn events_before(&self, before: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        self.read_events_before(before, limit)
    }

    fn unfinished_since(&self) -> Result<Option<u64>, StoreError> {
        self.oldest_unfinished_start()
    }

    fn runs_page(&self, filter: &RunFilter, cursor: Option<&str>, limit: usize) -> Result<RunPage, StoreError> {
        let end = match cursor {
            Some(c) => format!("t/{c}").into_bytes(),
            None => b"t0".to_vec(),
        };
        let mut page = RunPage::default();
        let mut last = None;
        for (scanned, item) in self.tree.range(b"t/".to_vec()..end).rev().enumerate() {
            let (key, _) = item.map_err(|e| err(&self.path, "cannot read the run index", e))?;
            let position = String::from_utf8_lossy(&key[2..]).into_owned();
            if page.runs.len() == limit || scanned == MAX_SCANNED_PER_PAGE {
                page.next = last;
                break;
            }
            let run_id = position.get(16..).unwrap_or_default();
            if let Some(meta) = self.run(run_id)?.filter(|m| filter.matches(m)) {
                page.runs.push(meta);
            }
            last = Some(position);
        }
        Ok(page)
    }

    fn definition(&self, hash: &str) -> Result<Option<String>, StoreError> {
        match self.tree.get(format!("d/{hash}")).map_err(|e| err(&self.path, "cannot read a definition", e))? {
            Some(bytes) => String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| StoreError::other(format!("the definition {hash} is not text"))),
            None => Ok(None),
        }
    }
}

impl SledStore {
    fn read_events(&self, kind: &str, key: &str, since: u64) -> Result<Vec<EventRecord>, StoreError> {
        let prefix = event_prefix(kind, key);
        let mut from = prefix.clone();
        from.extend_from_slice(&since.to_be_bytes());
        self.tree
            .range(from..)
            .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(|item| {
                let (_, value) = item.map_err(|e| err(&self.path, "cannot read events", e))?;
                decode(&value, "event")
            })
            .collect()
    }
}

impl WriteRuns for SledStore {
    fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        if commit.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        let mut bytes = 0usize;
        let mut put = |key: Vec<u8>, value: Vec<u8>| {
            bytes += key.len() + value.len();
            batch.insert(key, value);
        };
        for (run, seq, entry) in &commit.entries {
            put(journal_key(run, *seq), encode(entry)?);
        }
        for meta in &commit.runs {
            put(format!("r/{}", meta.run_id).into_bytes(), encode(meta)?);
        }
        for delivery in &commit.deliveries {
            put(delivery_key(&delivery.event), encode(delivery)?);
        }
        for meta in &commit.runs {
            put_run_keys(&mut batch, meta);
        }
        for event in &commit.events {
            let value = encode(event)?;
            bytes += 2 * value.len();
            put_event(&mut batch, event, value);
        }
        for meta in &commit.forget {
            self.remove_run(&mut batch, meta)?;
        }
        for event in &commit.forget_events {
            self.remove_event(&mut batch, event)?;
        }
        self.ensure_space(bytes)?;
        if let Some(hook) = self.before_commit.get() {
            hook().map_err(|e| err(&self.path, "cannot write the sandbox", e))?;
        }
        self.tree.apply_batch(batch).map_err(|e| write_err(&self.path, "cannot write", e))?;
        self.sync()
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        self.ensure_space(0)
    }

    fn put_definition(&self, hash: &str, source: &str) -> Result<(), StoreError> {
        self.ensure_space(source.len())?;
        self.tree
            .insert(format!("d/{hash}"), source.as_bytes())
            .map_err(|e| write_err(&self.path, "cannot write a definition", e))?;
        self.sync()
    }
}

impl SledStore {
    fn scan<T: for<'de> serde::Deserialize<'de>>(&self, prefix: &str, what: &str) -> Result<Vec<T>, StoreError> {
        self.tree
            .scan_prefix(prefix)
            .map(|item| {
                let (_, value) = item.map_err(|e| err(&self.path, &format!("cannot read the {what}s"), e))?;
                decode(&value, what)
            })
            .collect()
    }
}

impl OutboxTable for SledStore {
    fn due(&self, now: u64, limit: usize) -> Result<(Vec<Delivery>, Option<u64>), StoreError> {
        let mut due = Vec::new();
        let mut later: Option<u64> = None;
        for item in self.tree.scan_prefix("o/") {
            let (_, value) = item.map_err(|e| err(&self.path, "cannot read the outbox", e))?;
            let delivery: Delivery = decode(&value, "delivery")?;
            match delivery.next_due() {
                Some(at) if at <= now && due.len() < limit => due.push(delivery),
                Some(at) => later = Some(later.map_or(at, |l: u64| l.min(at))),
                None => {}
            }
        }
        Ok((due, later))
    }

    fn settle(&self, delivery: &Delivery, dead: &[DeadLetter]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for letter in dead {
            batch.insert(dead_letter_key(letter), encode(letter)?);
        }
        match delivery.pending.is_empty() {
            true => batch.remove(delivery_key(&delivery.event)),
            false => batch.insert(delivery_key(&delivery.event), encode(delivery)?),
        }
        self.ensure_space(dead.len() * 1024)?;
        self.tree.apply_batch(batch).map_err(|e| write_err(&self.path, "cannot write the outbox", e))?;
        self.sync()
    }

    fn pending(&self) -> Result<Vec<Delivery>, StoreError> {
        self.scan("o/", "delivery")
    }

    fn dead_letters(&self) -> Result<Vec<DeadLetter>, StoreError> {
        self.scan("x/", "dead letter")
    }
}

impl super::Ownership for SledStore {}

impl ScheduleTable for SledStore {
    fn last_tick(&self, schedule: &str) -> Result<Option<u64>, StoreError> {
        let value = self.tree.get(format!("s/{schedule}")).map_err(|e| err(&self.path, "cannot read a schedule", e))?;
        Ok(value.and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok()).map(u64::from_be_bytes))
    }

    /// Never back (the contract every store keeps, shared ones across workers).
    fn set_last_tick(&self, schedule: &str, at: u64) -> Result<(), StoreError> {
        let at = self.last_tick(schedule)?.map_or(at, |last| last.max(at));
        self.ensure_space(schedule.len())?;
        self.tree
            .insert(format!("s/{schedule}"), &at.to_be_bytes())
            .map_err(|e| write_err(&self.path, "cannot write a schedule", e))?;
        self.sync()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::status::RunStatus;

    #[test]
    fn a_sled_database_sagaflow_did_not_write_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let other = sled::open(dir.path()).expect("sled");
            other.insert("someone", "else").expect("insert");
            other.flush().expect("flush");
        }
        let e = SledStore::open(dir.path()).err().map(|e| e.message).unwrap_or_default();
        assert!(e.contains("format marker is missing"), "{e}");
    }

    /// A store with 300 runs' index rows, closed; opened and closed again so sled
    /// writes a snapshot.
    fn store_with_runs(dir: &Path) {
        let store = SledStore::open(dir).expect("open");
        let runs = (0..300).map(|i| meta(i, "w")).collect();
        store.commit(&Commit { runs, ..Commit::default() }).expect("commit");
        drop(store);
        drop(SledStore::open(dir).unwrap_or_else(|e| panic!("reopen: {e}")));
    }

    fn snapshots(dir: &Path) -> Vec<PathBuf> {
        snapshot_files(dir, |_| true)
    }

    #[test]
    fn an_unfinished_snapshot_left_by_a_kill_is_removed_and_the_store_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        store_with_runs(dir.path());
        assert_eq!(snapshots(dir.path()).len(), 1, "sled wrote its snapshot");
        // What a SIGKILL while sled writes its next snapshot leaves: a name that sorts last, half written.
        let unfinished = dir.path().join("snap.FFFFFFFFFFFFFFF0.generating");
        std::fs::write(&unfinished, vec![7u8; 100]).expect("plant");
        assert!(is_corruption(&open_sled(dir.path()).expect_err("sled alone refuses it")));
        let store = SledStore::open(dir.path()).expect("opens by itself");
        assert_eq!(store.runs().expect("runs").len(), 300);
        assert!(!unfinished.exists());
    }

    #[test]
    fn a_damaged_snapshot_is_moved_aside_and_the_store_rebuilt_from_its_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        store_with_runs(dir.path());
        let snapshot = snapshots(dir.path()).pop().expect("a snapshot");
        let mut bytes = std::fs::read(&snapshot).expect("read");
        bytes[0] ^= 0x10;
        std::fs::write(&snapshot, bytes).expect("flip a bit");
        let store = SledStore::open(dir.path()).expect("opens by itself");
        assert_eq!(store.runs().expect("runs").len(), 300);
        let aside = dir.path().join(DAMAGED_SNAPSHOTS).join(snapshot.file_name().expect("name"));
        assert!(aside.exists(), "the damaged snapshot is kept for inspection");
        drop(store);
        assert_eq!(SledStore::open(dir.path()).expect("again").runs().expect("runs").len(), 300);
    }

    #[test]
    fn a_damaged_log_is_an_error_that_says_what_to_try() {
        let dir = tempfile::tempdir().expect("temp dir");
        store_with_runs(dir.path());
        let snapshot = snapshots(dir.path()).pop().expect("a snapshot");
        std::fs::write(&snapshot, vec![0u8; 64]).expect("wreck the snapshot");
        std::fs::write(dir.path().join("db"), vec![0xA5u8; 4096]).expect("wreck the log");
        let e = SledStore::open(dir.path()).err().map(|e| e.message).unwrap_or_default();
        assert!(e.contains("sagaflow store import"), "{e}");
    }

    #[test]
    fn commits_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        let meta = RunMeta {
            run_id: "r1".into(),
            workflow: "w".into(),
            hash: "h".into(),
            status: crate::journal::status::RunStatus::Running,
            started_at: 1,
            updated_at: 2,
            parent: None,
            error: None,
        };
        let entry = Entry::RetryDue { step: 1, item: Some(2) };
        {
            let store = SledStore::open(dir.path()).expect("open");
            let event = EventRecord {
                id: "e1".into(),
                kind: "a.b".into(),
                key: "k/1".into(),
                data: serde_json::json!(1),
                at: 5,
                traceparent: None,
            };
            let commit = Commit {
                entries: vec![("r1".into(), 0, entry.clone())],
                runs: vec![meta.clone()],
                events: vec![event],
                ..Commit::default()
            };
            store.commit(&commit).expect("commit");
            store.put_definition("h", "name: w").expect("definition");
        }
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.entries("r1").expect("entries"), vec![entry]);
        assert_eq!(store.run("r1").expect("run"), Some(meta));
        assert_eq!(store.definition("h").expect("definition").as_deref(), Some("name: w"));
        assert_eq!(store.events("a.b", "k/1", 5).expect("events").len(), 1);
        assert_eq!(store.events("a.b", "k/1", 6).expect("events").len(), 0, "only events since the time asked");
        assert_eq!(store.events("a.b", "k", 0).expect("events").len(), 0, "keys are not prefixes of each other");
    }

    fn meta(i: u64, workflow: &str) -> RunMeta {
        RunMeta {
            run_id: format!("run{i:03}"),
            workflow: workflow.into(),
            hash: "h".into(),
            status: RunStatus::Succeeded,
            started_at: 1000 + i,
            updated_at: 1000 + i,
            parent: None,
            error: None,
        }
    }

    #[test]
    fn schedule_ticks_survive_reopening() {
        let dir = tempfile::tempdir().expect("temp dir");
        SledStore::open(dir.path()).expect("open").set_last_tick("w/0", 42).expect("tick");
        let store = SledStore::open(dir.path()).expect("reopen");
        assert_eq!(store.last_tick("w/0").expect("read"), Some(42));
        assert_eq!(store.last_tick("w/1").expect("read"), None);
    }
}
