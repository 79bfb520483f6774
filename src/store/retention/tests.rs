//! The retention contract, on the memory store and on sled.

use super::*;
use crate::journal::entry::Entry;
use crate::journal::status::RunStatus;
use crate::store::contract_tests::each_store;
use crate::store::sled::SledStore;
use crate::store::{Commit, DeadLetter, Delivery};

fn meta(id: &str, status: RunStatus, started_at: u64, updated_at: u64) -> RunMeta {
    RunMeta {
        run_id: id.into(),
        workflow: "w".into(),
        hash: "h".into(),
        status,
        started_at,
        updated_at,
        parent: None,
        error: None,
    }
}

fn child(id: &str, parent: &str, updated_at: u64) -> RunMeta {
    RunMeta { parent: Some(parent.into()), ..meta(id, RunStatus::Succeeded, 1, updated_at) }
}

fn event(id: &str, at: u64) -> EventRecord {
    EventRecord { id: id.into(), kind: "order.paid".into(), key: "o1".into(), data: 1.into(), at, traceparent: None }
}

/// Writes runs, each with a two-entry journal, and events.
fn fill(store: &dyn Store, runs: &[RunMeta], events: &[EventRecord]) {
    let mut commit = Commit { runs: runs.to_vec(), events: events.to_vec(), ..Commit::default() };
    for m in runs {
        commit.entries.push((m.run_id.clone(), 0, Entry::CancelRequested { at: m.started_at }));
        commit.entries.push((m.run_id.clone(), 1, Entry::CancelRequested { at: m.updated_at }));
    }
    store.commit(&commit).expect("commit");
}

/// A run's row moves on (its journal is already written).
fn finish(store: &dyn Store, run: RunMeta) {
    store.commit(&Commit { runs: vec![run], ..Commit::default() }).expect("commit");
}

/// One whole pass, removing what it chooses as the command line does.
fn prune(store: &dyn Store, before: u64) -> Pruned {
    let mut pass = Prune::new(before);
    while let Some(runs) = pass.next_runs(store).expect("runs") {
        store.commit(&Commit { forget: runs, ..Commit::default() }).expect("forget runs");
    }
    while let Some(events) = pass.next_events(store).expect("events") {
        store.commit(&Commit { forget_events: events, ..Commit::default() }).expect("forget events");
    }
    pass.pruned
}

fn ids(store: &dyn Store) -> Vec<String> {
    store.runs().expect("runs").into_iter().map(|m| m.run_id).collect()
}

#[test]
fn runs_finished_before_the_cutoff_leave_with_their_journals_and_no_other_run_does() {
    each_store(|store| {
        let runs = [
            meta("old-ok", RunStatus::Succeeded, 1, 10),
            meta("old-bad", RunStatus::CompensationFailed, 2, 99),
            meta("young", RunStatus::Failed, 3, 100),
            meta("running", RunStatus::Running, 4, 5),
            meta("paused", RunStatus::Paused, 5, 6),
        ];
        fill(store, &runs, &[]);
        assert_eq!(prune(store, 100), Pruned { runs: 2, events: 0 });
        assert_eq!(ids(store), ["young", "running", "paused"]);
        assert!(store.entries("old-ok").expect("entries").is_empty(), "the journal left too");
        assert!(store.run("old-bad").expect("row").is_none());
        assert_eq!(store.entries("young").expect("entries").len(), 2);
        let page = store.runs_page(&Default::default(), None, 10).expect("page");
        let listed: Vec<&str> = page.runs.iter().map(|m| m.run_id.as_str()).collect();
        assert_eq!(listed, ["paused", "running", "young"], "the start index forgot them");
        assert_eq!(prune(store, 100), Pruned::default(), "a second pass finds nothing");
    });
}

#[test]
fn a_child_stays_while_its_parent_does_and_leaves_with_it() {
    each_store(|store| {
        fill(store, &[meta("parent", RunStatus::Waiting, 1, 2), child("kid", "parent", 3)], &[]);
        assert_eq!(prune(store, 100).runs, 0, "its parent may still undo it");
        finish(store, meta("parent", RunStatus::Compensated, 1, 50));
        assert_eq!(prune(store, 100).runs, 2);
        assert!(ids(store).is_empty());
    });
}

#[test]
fn a_run_reopened_after_it_finished_is_not_taken_for_its_old_finish() {
    each_store(|store| {
        fill(store, &[meta("r", RunStatus::CompensationFailed, 1, 10)], &[]);
        // An operator's retry: the row says compensating now.
        store
            .commit(&Commit { runs: vec![meta("r", RunStatus::Compensating, 1, 20)], ..Commit::default() })
            .expect("w");
        assert_eq!(prune(store, 100).runs, 0);
        store
            .commit(&Commit { runs: vec![meta("r", RunStatus::Compensated, 1, 150)], ..Commit::default() })
            .expect("w");
        assert_eq!(prune(store, 100).runs, 0, "it finished again, after the cutoff");
        assert_eq!(prune(store, 200).runs, 1);
    });
}

#[test]
fn events_leave_once_older_than_the_cutoff_and_every_unfinished_run() {
    each_store(|store| {
        let events = [event("e10", 10), event("e60", 60), event("e150", 150)];
        fill(store, &[meta("waiting", RunStatus::Waiting, 50, 50)], &events);
        let dead = DeadLetter {
            event: event("e10", 10),
            subscriber: "webhook:a".into(),
            attempts: 3,
            error: "x".into(),
            at: 11,
        };
        let pending = crate::store::Pending { subscriber: "webhook:a".into(), attempts: 2, due: 10, last_error: None };
        let delivery = Delivery { event: event("e10", 10), pending: vec![pending] };
        store.commit(&Commit { deliveries: vec![delivery], ..Commit::default() }).expect("delivery");
        assert_eq!(store.due(20, 10).expect("due").0.len(), 1);
        store.settle(&Delivery { event: event("e10", 10), pending: vec![] }, &[dead]).expect("dead letter");
        assert_eq!(prune(store, 100).events, 1, "the waiting run started at 50 may still read e60");
        assert!(store.events("order.paid", "o1", 0).expect("events").iter().all(|e| e.id != "e10"));
        assert!(store.dead_letters().expect("dead").is_empty(), "its dead letter left with it");
        finish(store, meta("waiting", RunStatus::Succeeded, 50, 70));
        assert_eq!(prune(store, 100), Pruned { runs: 1, events: 1 });
        let left: Vec<String> =
            store.events("order.paid", "o1", 0).expect("events").into_iter().map(|e| e.id).collect();
        assert_eq!(left, ["e150"]);
    });
}

#[test]
fn more_runs_than_a_batch_all_leave_and_a_run_that_stays_does_not_stop_the_rest() {
    each_store(|store| {
        let mut runs: Vec<RunMeta> =
            (0..BATCH as u64 + 20).map(|i| meta(&format!("r{i:04}"), RunStatus::Succeeded, i, i + 1)).collect();
        // The first candidates are children of a run that stays.
        runs.push(meta("parent", RunStatus::Running, 0, 0));
        for i in 0..BATCH as u64 + 5 {
            runs.push(child(&format!("c{i:04}"), "parent", 0));
        }
        fill(store, &runs, &[]);
        assert_eq!(prune(store, 10_000).runs, BATCH + 20);
        assert_eq!(ids(store).len(), 1 + BATCH + 5);
    });
}

#[test]
fn a_sled_store_written_before_the_retention_indexes_gets_them_when_opened() {
    let dir = tempfile::tempdir().expect("dir");
    {
        let store = SledStore::open(dir.path()).expect("open");
        fill(&store, &[meta("old", RunStatus::Succeeded, 1, 10)], &[event("e1", 5)]);
        let derived: Vec<_> = store
            .db()
            .open_tree(crate::store::sled::RUN_TREE)
            .expect("tree")
            .iter()
            .keys()
            .map(|k| k.expect("key"))
            .filter(|k| k.starts_with(b"f/") || k.starts_with(b"e/") || k.as_ref() == b"m/retention-index")
            .collect();
        assert_eq!(derived.len(), 3);
        let tree = store.db().open_tree(crate::store::sled::RUN_TREE).expect("tree");
        for key in derived {
            tree.remove(key).expect("remove");
        }
        tree.flush().expect("flush");
    }
    let store = SledStore::open(dir.path()).expect("reopen");
    assert_eq!(prune(&store, 100), Pruned { runs: 1, events: 1 });
}
