//! The sled store read as [`Record`]s (export, check) and written from them
//! (import): every key of the run tree by its prefix, and the sandbox trees.

use super::backup::{Damage, Record, EXPORT_FORMAT};
use super::sled::{dead_letter_key, delivery_key, err, journal_key, write_err, SledStore, RUN_TREE};
use super::sled_retention::{put_event, put_run_keys};
use super::StoreError;

/// The prefix of the sandbox services' trees.
const SANDBOX_TREES: &str = "sandbox.";

/// How many records an import writes in one batch.
const IMPORT_BATCH: usize = 10_000;

impl SledStore {
    /// Every record of the store, in key order, each handed to `each` as it is
    /// read; a key or value that cannot be read is a [`Damage`] in its place.
    /// Stops at the first error `each` returns (a full output disk, say).
    pub(crate) fn records<E>(&self, mut each: impl FnMut(Result<Record, Damage>) -> Result<(), E>) -> Result<(), E> {
        each(Ok(Record::Header { format: EXPORT_FORMAT.into() }))?;
        for item in self.tree.iter() {
            // sled's iterator does not move past a read error: the rest of the tree is lost to it.
            let (key, value) = match item {
                Ok(pair) => pair,
                Err(e) => {
                    let problem = format!("{e}; the rest of the tree cannot be read");
                    each(Err(Damage { place: "the run tree".into(), problem }))?;
                    break;
                }
            };
            if let Some(record) = decode_run_key(&key, &value) {
                each(record)?;
            }
        }
        // By name, so an export reads the same from every store.
        let mut names = self.db.tree_names();
        names.sort();
        for name in names {
            let Some(tree) = std::str::from_utf8(&name).ok().filter(|n| n.starts_with(SANDBOX_TREES)) else { continue };
            let opened = match self.db.open_tree(tree) {
                Ok(opened) => opened,
                Err(e) => {
                    each(Err(Damage { place: format!("tree {tree}"), problem: e.to_string() }))?;
                    continue;
                }
            };
            for item in opened.iter() {
                let unreadable = item.is_err();
                each(decode_sandbox(tree, item))?;
                if unreadable {
                    break;
                }
            }
        }
        Ok(())
    }

    /// Whether the store holds nothing yet (a new data directory).
    pub(crate) fn is_empty(&self) -> bool {
        let only_marker = self.tree.iter().keys().all(|k| k.is_ok_and(|k| k.starts_with(b"m/")));
        let no_sandbox = self.db.tree_names().iter().all(|name| {
            !name.starts_with(SANDBOX_TREES.as_bytes()) || self.db.open_tree(name).is_ok_and(|t| t.is_empty())
        });
        only_marker && no_sandbox
    }

    /// Writes records read from an export into this store, which must be
    /// empty; durable when it returns. Answers how many were written.
    pub(crate) fn import(&self, records: impl Iterator<Item = Result<Record, StoreError>>) -> Result<u64, StoreError> {
        if !self.is_empty() {
            return Err(StoreError::other(format!(
                "{} already holds data; import into a new data directory (--data NEW)",
                self.path.display()
            )));
        }
        let mut batch = sled::Batch::default();
        let mut sandbox: Vec<(String, String, Vec<u8>)> = Vec::new();
        let (mut count, mut pending) = (0u64, 0usize);
        for record in records {
            match record? {
                Record::Header { format } if format == EXPORT_FORMAT => continue,
                Record::Header { format } => {
                    return Err(StoreError::other(format!(
                        "the export is of format {format}; this sagaflow reads {EXPORT_FORMAT}"
                    )))
                }
                Record::Sandbox { tree, key, value } if tree.starts_with(SANDBOX_TREES) => {
                    sandbox.push((tree, key, super::encode(&value)?));
                }
                Record::Sandbox { tree, .. } => {
                    return Err(StoreError::other(format!("`{tree}` is not a sandbox tree")))
                }
                other => put(&mut batch, &other)?,
            }
            count += 1;
            pending += 1;
            if pending == IMPORT_BATCH {
                self.write(std::mem::take(&mut batch), std::mem::take(&mut sandbox))?;
                pending = 0;
            }
        }
        self.write(batch, sandbox)?;
        self.sync()?;
        Ok(count)
    }

    fn write(&self, batch: sled::Batch, sandbox: Vec<(String, String, Vec<u8>)>) -> Result<(), StoreError> {
        self.ensure_space(sandbox.iter().map(|(_, k, v)| k.len() + v.len()).sum())?;
        self.tree.apply_batch(batch).map_err(|e| write_err(&self.path, "cannot write", e))?;
        for (tree, key, value) in sandbox {
            let opened = self.db.open_tree(&tree).map_err(|e| err(&self.path, "cannot open a sandbox tree", e))?;
            opened.insert(key.as_bytes(), value).map_err(|e| write_err(&self.path, "cannot write", e))?;
        }
        Ok(())
    }
}

/// The keys and value of one record in the run tree.
fn put(batch: &mut sled::Batch, record: &Record) -> Result<(), StoreError> {
    use super::encode;
    match record {
        Record::Definition { hash, source } => batch.insert(format!("d/{hash}").into_bytes(), source.as_bytes()),
        Record::Run { run } => {
            batch.insert(format!("r/{}", run.run_id).into_bytes(), encode(run)?);
            put_run_keys(batch, run);
        }
        Record::Entry { run_id, seq, entry } => batch.insert(journal_key(run_id, *seq), encode(entry)?),
        Record::Event { event } => put_event(batch, event, encode(event)?),
        Record::Delivery { delivery } => batch.insert(delivery_key(&delivery.event), encode(delivery)?),
        Record::DeadLetter { dead_letter } => batch.insert(dead_letter_key(dead_letter), encode(dead_letter)?),
        Record::Schedule { schedule, last_tick } => {
            batch.insert(format!("s/{schedule}").into_bytes(), &last_tick.to_be_bytes())
        }
        Record::Header { .. } | Record::Sandbox { .. } => {}
    }
    Ok(())
}

/// A key of the run tree as its record; `None` for what is derived (the
/// start-time and retention indexes) or a marker.
fn decode_run_key(key: &[u8], value: &[u8]) -> Option<Result<Record, Damage>> {
    let damage = |problem: String| Damage { place: format!("key {}", String::from_utf8_lossy(key)), problem };
    let json = |what: &str| -> Result<serde_json::Value, Damage> {
        serde_json::from_slice(value).map_err(|e| damage(format!("the {what} is not JSON: {e}")))
    };
    let typed = |what: &str, record: fn(serde_json::Value) -> Result<Record, serde_json::Error>| {
        json(what).and_then(|v| record(v).map_err(|e| damage(format!("the {what} cannot be read: {e}"))))
    };
    let record = match key.first().copied().zip(key.get(1).copied()) {
        Some((b'm' | b't' | b'f' | b'e', b'/')) => return None,
        Some((b'r', b'/')) => typed("run index row", |v| Ok(Record::Run { run: serde_json::from_value(v)? })),
        Some((b'j', b'/')) => journal_entry(key, value).map_err(damage),
        Some((b'd', b'/')) => match std::str::from_utf8(value) {
            Ok(source) => Ok(Record::Definition { hash: text(&key[2..]), source: source.to_owned() }),
            Err(_) => Err(damage("the workflow definition is not UTF-8 text".into())),
        },
        Some((b'k', 0)) => typed("event", |v| Ok(Record::Event { event: serde_json::from_value(v)? })),
        Some((b'o', b'/')) => typed("delivery", |v| Ok(Record::Delivery { delivery: serde_json::from_value(v)? })),
        Some((b'x', b'/')) => {
            typed("dead letter", |v| Ok(Record::DeadLetter { dead_letter: serde_json::from_value(v)? }))
        }
        Some((b's', b'/')) => match <[u8; 8]>::try_from(value) {
            Ok(tick) => Ok(Record::Schedule { schedule: text(&key[2..]), last_tick: u64::from_be_bytes(tick) }),
            Err(_) => Err(damage(format!("a schedule's last tick is 8 bytes, not {}", value.len()))),
        },
        _ => Err(damage(format!("no record of sagaflow's has this key (in tree {RUN_TREE})"))),
    };
    Some(record)
}

/// `j/<run>/<seq: 4 bytes>` and its entry.
fn journal_entry(key: &[u8], value: &[u8]) -> Result<Record, String> {
    let body = &key[2..];
    let Some((run, seq)) = body.len().checked_sub(5).map(|at| (&body[..at], &body[at + 1..])) else {
        return Err("a journal key too short to hold a run and a number".into());
    };
    let seq = u32::from_be_bytes(<[u8; 4]>::try_from(seq).map_err(|_| "a journal key without its number")?);
    let entry = serde_json::from_slice(value).map_err(|e| format!("the journal entry cannot be read: {e}"))?;
    Ok(Record::Entry { run_id: text(run), seq, entry })
}

fn decode_sandbox(tree: &str, item: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Record, Damage> {
    let (key, value) = item.map_err(|e| Damage { place: format!("tree {tree}"), problem: e.to_string() })?;
    let place = format!("tree {tree}, key {}", String::from_utf8_lossy(&key));
    let key = std::str::from_utf8(&key)
        .map_err(|_| Damage { place: place.clone(), problem: "the key is not text".into() })?;
    let value = serde_json::from_slice(&value)
        .map_err(|e| Damage { place: place.clone(), problem: format!("the value is not JSON: {e}") })?;
    Ok(Record::Sandbox { tree: tree.to_owned(), key: key.to_owned(), value })
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Commit, EventRecord, ReadRuns, RunMeta, ScheduleTable, WriteRuns};

    fn filled(dir: &std::path::Path) -> SledStore {
        let store = SledStore::open(dir).expect("open");
        let run = RunMeta {
            run_id: "r1".into(),
            workflow: "w".into(),
            hash: "h1".into(),
            status: crate::journal::status::RunStatus::Running,
            started_at: 5,
            updated_at: 6,
            parent: None,
            error: None,
        };
        let event = EventRecord {
            id: "e1".into(),
            kind: "order.paid".into(),
            key: "o1".into(),
            data: 1.into(),
            at: 7,
            traceparent: None,
        };
        let entries = (0..3).map(|seq| ("r1".to_owned(), seq, Entry::CancelRequested { at: u64::from(seq) })).collect();
        store.commit(&Commit { entries, runs: vec![run], events: vec![event], ..Commit::default() }).expect("commit");
        store.put_definition("h1", "name: w\n").expect("definition");
        store.set_last_tick("w#0", 42).expect("tick");
        let sandbox = store.db.open_tree("sandbox.inventory").expect("tree");
        sandbox.insert("product/p1", br#"{"stock": 3}"#.to_vec()).expect("insert");
        store
    }

    use crate::journal::entry::Entry;

    fn export(store: &SledStore) -> Vec<Record> {
        let mut out = Vec::new();
        store
            .records(|r| {
                out.push(r.map_err(|d| format!("{}: {}", d.place, d.problem))?);
                Ok::<_, String>(())
            })
            .expect("readable");
        out
    }

    #[test]
    fn an_export_imported_into_a_new_store_exports_the_same() {
        let (a, b) = (tempfile::tempdir().expect("dir"), tempfile::tempdir().expect("dir"));
        let records = export(&filled(a.path()));
        let kinds: Vec<&str> = records.iter().map(Record::kind).collect();
        assert_eq!(kinds, ["header", "definition", "entry", "entry", "entry", "event", "run", "schedule", "sandbox"]);
        let copy = SledStore::open(b.path()).expect("open");
        assert_eq!(copy.import(records.clone().into_iter().map(Ok)).expect("import"), 8);
        assert_eq!(export(&copy), records);
        assert_eq!(copy.runs_page(&Default::default(), None, 10).expect("page").runs.len(), 1, "start index rebuilt");
        let e = copy.import(records.into_iter().map(Ok)).expect_err("not empty");
        assert!(e.message.contains("already holds data"), "{e}");
    }

    #[test]
    fn a_value_that_cannot_be_read_is_named_by_its_key() {
        let dir = tempfile::tempdir().expect("dir");
        let store = filled(dir.path());
        store.tree.insert(journal_key("r1", 1), b"{not json".to_vec()).expect("damage");
        let mut damage = Vec::new();
        store
            .records(|r| {
                if let Err(d) = r {
                    damage.push(d);
                }
                Ok::<_, ()>(())
            })
            .expect("read");
        assert_eq!(damage.len(), 1);
        assert!(damage[0].place.starts_with("key j/r1/"), "{damage:?}");
        assert!(damage[0].problem.starts_with("the journal entry cannot be read"), "{damage:?}");
    }
}
