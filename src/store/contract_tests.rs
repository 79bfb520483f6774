//! The store contract, on every store: memory, sled and PostgreSQL (the last
//! when `SAGAFLOW_TEST_PG` names a server; always under CI).

use super::memory::MemoryStore;
use super::postgres::{testing::fresh_database, PgStore};
use super::sled::SledStore;
use super::*;

/// Runs `check` on a new store of each kind.
pub(crate) fn each_store(check: impl Fn(&dyn Store)) {
    check(&MemoryStore::default());
    let dir = tempfile::tempdir().expect("dir");
    check(&SledStore::open(dir.path()).expect("open sled"));
    if let Some(url) = fresh_database() {
        check(&PgStore::open(&url, Some("w1")).unwrap_or_else(|e| panic!("{e}")));
    }
}

fn meta(i: u64, workflow: &str) -> RunMeta {
    RunMeta {
        run_id: format!("run{i:03}"),
        workflow: workflow.into(),
        hash: "h".into(),
        status: if i.is_multiple_of(2) { RunStatus::Succeeded } else { RunStatus::Failed },
        started_at: 1000 + i,
        updated_at: 1000 + i,
        parent: None,
        error: None,
    }
}

fn event(id: &str, key: &str, at: u64) -> EventRecord {
    let data = serde_json::json!({ "z": 1, "a": [2, 3] });
    EventRecord { id: id.into(), kind: "a.b".into(), key: key.into(), data, at, traceparent: None }
}

#[test]
fn a_commit_reads_back_whole_and_in_order() {
    each_store(|store| {
        let run = RunMeta {
            parent: Some("p1".into()),
            error: Some(MetaError { step: Some("charge".into()), code: "card_declined".into() }),
            status: RunStatus::Paused,
            ..meta(1, "w")
        };
        let entries: Vec<Entry> = (0..3).map(|i| Entry::RetryDue { step: i, item: Some(2) }).collect();
        let commit = Commit {
            entries: entries.iter().enumerate().map(|(i, e)| ("run001".to_owned(), i as u32, e.clone())).collect(),
            runs: vec![run.clone()],
            events: vec![event("e1", "k/1", 5), event("e2", "k", 7)],
            ..Commit::default()
        };
        store.commit(&commit).expect("commit");
        store.put_definition("h", "name: w\n").expect("definition");
        store.put_definition("h", "name: w\n").expect("a definition again is no error");
        assert_eq!(store.entries("run001").expect("entries"), entries);
        assert_eq!(store.run("run001").expect("run"), Some(run));
        assert_eq!(store.run("nope").expect("run"), None);
        assert_eq!(store.definition("h").expect("definition").as_deref(), Some("name: w\n"));
        let since = store.events("a.b", "k/1", 5).expect("events");
        assert_eq!(since, vec![event("e1", "k/1", 5)], "the data as written, its keys' order too");
        assert_eq!(store.events("a.b", "k/1", 6).expect("events").len(), 0, "only events since the time asked");
        assert_eq!(store.events("a.b", "k", 0).expect("events").len(), 1, "keys are not prefixes of each other");
        store.commit(&Commit { events: vec![event("e1", "k/1", 5)], ..Commit::default() }).expect("again");
        assert_eq!(store.events("a.b", "k/1", 0).expect("events").len(), 1, "an event id lands once");
    });
}

#[test]
fn the_journals_of_several_runs_read_together_are_each_whole_and_in_order() {
    each_store(|store| {
        let entry = |i: usize| Entry::RetryDue { step: i, item: None };
        let entries =
            (0..3).flat_map(|i| [("a".to_owned(), i as u32, entry(i)), ("b".to_owned(), i as u32, entry(10 + i))]);
        store.commit(&Commit { entries: entries.collect(), ..Commit::default() }).expect("commit");
        let journals = store.journals(&["b".into(), "a".into(), "none".into()]).expect("journals");
        assert_eq!(journals["a"], (0..3).map(entry).collect::<Vec<_>>());
        assert_eq!(journals["b"], (10..13).map(entry).collect::<Vec<_>>());
        assert_eq!(journals["none"], vec![], "a run without a journal has an empty one");
    });
}

#[test]
fn run_pages_go_newest_first_filtered_and_each_run_comes_once() {
    each_store(|store| {
        let runs: Vec<RunMeta> = (0..25).map(|i| meta(i, if i % 3 == 0 { "a" } else { "b" })).collect();
        store.commit(&Commit { runs: runs.clone(), ..Commit::default() }).expect("commit");
        let filters = [
            RunFilter::default(),
            RunFilter { workflow: Some("a".into()), statuses: vec![] },
            RunFilter { workflow: None, statuses: vec![RunStatus::Failed, RunStatus::Paused] },
        ];
        for filter in filters {
            let mut seen = Vec::new();
            let mut cursor = None;
            loop {
                let page = store.runs_page(&filter, cursor.as_deref(), 4).expect("page");
                seen.extend(page.runs.iter().map(|m| m.started_at));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            let mut want: Vec<u64> = runs.iter().filter(|m| filter.matches(m)).map(|m| m.started_at).collect();
            want.reverse();
            assert_eq!(seen, want, "{filter:?}");
        }
    });
}

#[test]
fn the_outbox_gives_what_is_due_keeps_progress_and_keeps_dead_letters() {
    each_store(|store| {
        let pending = |due| Pending { subscriber: "webhook:a".into(), attempts: 0, due, last_error: None };
        let soon = Delivery { event: event("e1", "k", 1), pending: vec![pending(10)] };
        let later = Delivery { event: event("e2", "k", 2), pending: vec![pending(50)] };
        store.commit(&Commit { deliveries: vec![soon.clone(), later.clone()], ..Commit::default() }).expect("commit");
        assert_eq!(store.due(20, 10).expect("due"), (vec![soon.clone()], Some(50)));
        let tried = Delivery { pending: vec![Pending { attempts: 1, due: 40, ..pending(40) }], ..soon.clone() };
        store.settle(&tried, &[]).expect("settle");
        assert_eq!(store.due(20, 10).expect("due"), (vec![], Some(40)));
        let letter = DeadLetter {
            event: soon.event.clone(),
            subscriber: "webhook:a".into(),
            attempts: 2,
            error: "410".into(),
            at: 45,
        };
        assert_eq!(store.due(45, 10).expect("due").0, vec![tried], "its progress, due again");
        store.settle(&Delivery { pending: vec![], ..soon }, std::slice::from_ref(&letter)).expect("give up");
        assert_eq!(store.pending().expect("pending"), vec![later]);
        assert_eq!(store.dead_letters().expect("dead"), vec![letter]);
    });
}

/// Relays share the outbox: what one took is no other's until it settles,
/// or its worker dies; then another takes it, and the first one's late
/// settle writes nothing.
#[test]
fn a_delivery_one_relay_took_is_no_others_until_it_settles_or_its_worker_dies() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (PgStore::open(&url, Some("a")).expect("a"), PgStore::open(&url, Some("b")).expect("b"));
    let pending = |due| Pending { subscriber: "webhook:a".into(), attempts: 0, due, last_error: None };
    let delivery = |i: u64| Delivery { event: event(&format!("e{i}"), "k", i), pending: vec![pending(10)] };
    a.commit(&Commit { deliveries: vec![delivery(1), delivery(2)], ..Commit::default() }).expect("commit");
    assert_eq!(a.due(20, 1).expect("due").0, vec![delivery(1)]);
    assert_eq!(b.due(20, 10).expect("due").0, vec![delivery(2)], "what a took is a's");
    assert_eq!(a.due(20, 10).expect("due").0, vec![], "and what b took, b's");
    let tried = Delivery { pending: vec![Pending { attempts: 1, due: 15, ..pending(15) }], ..delivery(2) };
    b.settle(&tried, &[]).expect("b settles its own");
    assert_eq!(a.due(20, 10).expect("due").0, vec![tried], "settled, it is anyone's when due");

    // a dies holding both: b takes them, and a's late settle writes nothing.
    super::postgres::block_on(a.age_lease()).expect("a's lease runs out");
    b.expire_workers().expect("expire");
    assert_eq!(b.due(20, 10).expect("due").0.len(), 2, "a dead relay's deliveries are taken over");
    let refused = a.settle(&Delivery { pending: vec![], ..delivery(1) }, &[]).expect_err("no longer a's");
    assert_eq!(refused.kind, StoreErrorKind::Conflict, "{refused}");
    assert_eq!(b.pending().expect("pending").len(), 2, "nothing of a's settle");
    b.settle(&Delivery { pending: vec![], ..delivery(1) }, &[]).expect("b settles it");
    assert_eq!(b.pending().expect("pending").len(), 1);
}

/// A letter to a run's worker reaches whoever owns the run, now or after a
/// takeover, and leaves with the commit that acts on it.
#[test]
fn a_letter_reaches_the_runs_owner_and_leaves_with_the_commit_that_acts_on_it() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (PgStore::open(&url, Some("a")).expect("a"), PgStore::open(&url, Some("b")).expect("b"));
    let running = RunMeta { status: RunStatus::Running, ..meta(1, "w") };
    a.commit(&Commit { runs: vec![running.clone()], ..Commit::default() }).expect("a's run");
    assert!(b.is_elsewhere("run001").expect("owner") && !a.is_elsewhere("run001").expect("owner"));
    b.post("run001", &serde_json::json!({ "request": "cancel" })).expect("post");
    assert_eq!(b.letters(10).expect("letters"), vec![], "not b's run");
    let letters = a.letters(10).expect("letters");
    assert_eq!(
        letters.iter().map(|l| (l.run_id.as_str(), l.request.clone())).collect::<Vec<_>>(),
        [("run001", serde_json::json!({ "request": "cancel" }))]
    );
    // a dies before acting: the letter goes with the run to b.
    super::postgres::block_on(a.age_lease()).expect("a's lease runs out");
    b.expire_workers().expect("expire");
    assert_eq!(b.claim(10).expect("claim").len(), 1);
    let letters = b.letters(10).expect("letters");
    assert_eq!(letters.len(), 1, "b owns the run and its letter now");
    let acted = Commit { runs: vec![running], letters: vec![letters[0].id], ..Commit::default() };
    b.commit(&acted).expect("acts");
    assert_eq!(b.letters(10).expect("letters"), vec![], "acted on once");
}

/// Workers hear of each other's events, deliveries, letters and departures
/// as they are committed (LISTEN/NOTIFY), not at their next poll.
#[test]
fn a_worker_hears_what_another_commits() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (PgStore::open(&url, Some("a")).expect("a"), PgStore::open(&url, Some("b")).expect("b"));
    let mut heard = a.changes().expect("a shared store tells its changes");
    let hear = |heard: &mut tokio::sync::broadcast::Receiver<Change>, want: Change| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match heard.try_recv() {
                Ok(change) if change == want => return,
                Ok(_) | Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
            assert!(std::time::Instant::now() < deadline, "never heard {want:?}");
        }
    };
    // The listener is up once a notification of its own comes through.
    let pending = Pending { subscriber: "webhook:a".into(), attempts: 0, due: 10, last_error: None };
    let delivery = Delivery { event: event("e1", "k", 1), pending: vec![pending] };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !matches!(heard.try_recv(), Ok(Change::Outbox)) {
        b.commit(&Commit { deliveries: vec![delivery.clone()], ..Commit::default() }).expect("delivery");
        assert!(std::time::Instant::now() < deadline, "never heard a delivery");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    b.commit(&Commit { events: vec![event("e2", "k", 2)], ..Commit::default() }).expect("event");
    hear(&mut heard, Change::Events);
    b.commit(&Commit { runs: vec![RunMeta { status: RunStatus::Running, ..meta(1, "w") }], ..Commit::default() })
        .expect("b's run");
    a.post("run001", &serde_json::json!({ "request": "cancel" })).expect("post");
    hear(&mut heard, Change::Letters);
    b.leave().expect("leave");
    hear(&mut heard, Change::Orphans);
}

/// TLS as the URL's `sslmode` asks, libpq's way: `verify-full` checks the
/// server's certificate against the authority `sslrootcert` names (and
/// refuses one the web's authorities did not sign), `disable` goes plain.
#[test]
fn the_database_is_reached_over_tls_as_sslmode_asks_and_its_certificate_checked() {
    let Some(url) = fresh_database() else { return };
    let Ok(ca) = std::env::var("SAGAFLOW_TEST_PG_CA") else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "SAGAFLOW_TEST_PG_CA is not set under CI");
        return;
    };
    let with = |query: &str| format!("{url}?{query}");
    let checked = PgStore::open(&with(&format!("sslmode=verify-full&sslrootcert={ca}")), Some("w1"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(super::postgres::block_on(checked.encrypted()).expect("ssl"), "encrypted");
    checked.commit(&Commit { runs: vec![meta(1, "w")], ..Commit::default() }).expect("a commit over TLS");
    let localhost = with(&format!("sslmode=verify-full&sslrootcert={ca}")).replace("127.0.0.1", "localhost");
    PgStore::open(&localhost, None).unwrap_or_else(|e| panic!("the certificate names localhost too: {e}"));
    let refused = PgStore::open(&with("sslmode=verify-full"), None).err().map(|e| e.message).unwrap_or_default();
    assert!(refused.contains("cannot connect") && refused.to_lowercase().contains("certificate"), "{refused}");
    let plain = PgStore::open(&with("sslmode=disable"), None).unwrap_or_else(|e| panic!("{e}"));
    assert!(!super::postgres::block_on(plain.encrypted()).expect("ssl"), "sslmode=disable goes plain");
    let required = PgStore::open(&with("sslmode=require"), None).unwrap_or_else(|e| panic!("{e}"));
    assert!(super::postgres::block_on(required.encrypted()).expect("ssl"), "require: encrypted, unchecked");
}

#[test]
fn schedule_ticks_are_kept_and_never_move_back() {
    each_store(|store| {
        assert_eq!(store.last_tick("w#0").expect("read"), None);
        store.set_last_tick("w#0", 42).expect("tick");
        store.set_last_tick("w#0", 41).expect("an older tick");
        assert_eq!(store.last_tick("w#0").expect("read"), Some(42), "two workers moving one schedule keep the later");
    });
}

#[test]
fn a_worker_whose_generation_was_taken_over_writes_nothing_more() {
    let Some(url) = fresh_database() else { return };
    let old = PgStore::open(&url, Some("w1")).unwrap_or_else(|e| panic!("{e}"));
    let run = |i| Commit { runs: vec![meta(i, "w")], ..Commit::default() };
    old.commit(&run(1)).expect("its own runs");
    // The same worker id joins again once its lease ran out (a restart): a new generation.
    super::postgres::block_on(old.age_lease()).expect("its lease runs out");
    let new = PgStore::open(&url, Some("w1")).unwrap_or_else(|e| panic!("{e}"));
    let generation = |s: &PgStore| s.worker().map(|w| w.generation).unwrap_or_default();
    assert_eq!(generation(&new), generation(&old) + 1);
    let refused = old.commit(&run(2)).expect_err("fenced");
    assert_eq!(refused.kind, StoreErrorKind::Conflict, "{refused}");
    assert!(refused.message.contains("fenced off"), "{refused}");
    assert_eq!(new.run("run002").expect("read"), None, "not one row of the fenced commit");
    new.commit(&run(3)).expect("the current generation writes");
}

#[test]
fn a_database_of_a_newer_schema_is_refused_and_a_password_never_shows() {
    let Some(url) = fresh_database() else { return };
    let store = PgStore::open(&url, Some("w1")).unwrap_or_else(|e| panic!("{e}"));
    super::postgres::block_on(store.set_schema_version(99)).expect("set");
    let e = PgStore::open(&url, Some("w2")).err().map(|e| e.message).unwrap_or_default();
    assert!(e.contains("version 99") && e.contains("use a newer one"), "{e}");
    let mut with_password = reqwest::Url::parse(&url).expect("url");
    let _ = with_password.set_password(Some("hunter2"));
    let e = PgStore::open(with_password.as_str(), Some("w3")).err().map(|e| e.message).unwrap_or_default();
    assert!(!e.contains("hunter2"), "{e}");
}

#[test]
fn unfinished_runs_and_counts_by_status_agree_with_the_index() {
    each_store(|store| {
        let waiting = RunMeta { status: RunStatus::Waiting, ..meta(5, "b") };
        let runs = vec![meta(1, "a"), meta(2, "a"), meta(3, "a"), waiting.clone()];
        store.commit(&Commit { runs, ..Commit::default() }).expect("commit");
        assert_eq!(store.unfinished().expect("unfinished"), vec![waiting]);
        let counts = store.status_counts().expect("counts");
        assert_eq!(
            counts,
            vec![
                ("a".into(), RunStatus::Failed, 2),
                ("a".into(), RunStatus::Succeeded, 1),
                ("b".into(), RunStatus::Waiting, 1)
            ]
        );
    });
}

/// Ownership in a shared store: a live worker's runs are its own; a worker
/// that left or went silent has its unfinished runs claimed, each by one
/// worker, and writes nothing more.
#[test]
fn a_dead_or_departed_workers_runs_are_claimed_once_and_it_writes_nothing_more() {
    let Some(url) = fresh_database() else { return };
    let open = |id: &str| PgStore::open(&url, Some(id)).unwrap_or_else(|e| panic!("{e}"));
    let a = open("a");
    let running = RunMeta { status: RunStatus::Running, ..meta(1, "w") };
    a.commit(&Commit { runs: vec![running.clone(), meta(2, "w")], ..Commit::default() }).expect("a's runs");
    let b = open("b");
    assert_eq!(b.claim(10).expect("claim"), vec![], "a is live: its runs are its own");
    assert!(!b.claim_run("run001").expect("claim one"), "nor one of them");
    assert!(b.claim_run("run002").expect("claim one"), "a finished run is no one's");
    a.leave().expect("leave");
    let taken = b.claim(10).expect("claim");
    assert_eq!(taken.iter().map(|m| m.run_id.as_str()).collect::<Vec<_>>(), ["run001"]);
    assert_eq!(b.claim(10).expect("claim again"), vec![], "a run is claimed once");
    let refused = a.commit(&Commit { runs: vec![running.clone()], ..Commit::default() }).expect_err("fenced");
    assert_eq!(refused.kind, StoreErrorKind::Conflict, "{refused}");

    // A worker that goes silent: once its lease ran out, it is declared dead by another.
    let c = open("c");
    c.commit(&Commit { runs: vec![RunMeta { status: RunStatus::Waiting, ..meta(3, "w") }], ..Commit::default() })
        .expect("c's run");
    super::postgres::block_on(c.age_lease()).expect("its lease runs out");
    assert_eq!(b.expire_workers().expect("expire"), vec!["c".to_owned()]);
    assert_eq!(b.claim(10).expect("claim").len(), 1, "c's run is b's now");
    let refused = c.commit(&Commit { runs: vec![meta(4, "w")], ..Commit::default() }).expect_err("fenced");
    assert_eq!(refused.kind, StoreErrorKind::Conflict, "{refused}");

    // A worker learns it was taken over at its next renewal.
    let d = open("d");
    super::postgres::block_on(
        d.execute("UPDATE sagaflow.workers SET generation = generation + 1 WHERE worker_id = 'd'"),
    )
    .expect("taken over");
    std::thread::sleep(super::postgres::LEASE / 2);
    assert!(d.is_fenced(), "its renewal found its generation taken over");
    assert!(!b.is_fenced());
}

/// Two processes under one worker id would fence each other: a live id is
/// waited for (a restart finds its crashed self's lease still running) and
/// then refused, naming it.
#[test]
fn a_worker_id_a_live_worker_holds_is_refused_after_a_lease() {
    let Some(url) = fresh_database() else { return };
    let lease = std::time::Duration::from_secs(1);
    let _live = PgStore::open_leased(&url, Some("w1"), lease).unwrap_or_else(|e| panic!("{e}"));
    let began = std::time::Instant::now();
    let refused = PgStore::open_leased(&url, Some("w1"), lease).err().map(|e| e.message).unwrap_or_default();
    assert!(refused.contains("worker `w1`") && refused.contains("a live worker has that id"), "{refused}");
    assert!(began.elapsed() >= lease, "waited a lease for it first: {:?}", began.elapsed());
}

/// A worker whose renewals stop (paused, partitioned) fences itself off
/// before its lease can run out, without hearing from the database; the same
/// id then joins again as soon as the lease ran out.
#[test]
fn a_worker_that_cannot_renew_fences_itself_off_before_its_lease_runs_out() {
    let Some(url) = fresh_database() else { return };
    let lease = std::time::Duration::from_secs(1);
    let silent = PgStore::open_leased(&url, Some("w1"), lease).unwrap_or_else(|e| panic!("{e}"));
    silent.commit(&Commit { runs: vec![meta(1, "w")], ..Commit::default() }).expect("its own runs");
    silent.stop_renewing();
    std::thread::sleep(lease);
    assert!(silent.is_fenced(), "no renewal acknowledged for a lease less the margin");
    silent.late_renewal();
    assert!(silent.is_fenced(), "for good: a late renewal does not give it its runs back");
    let refused = silent.commit(&Commit { runs: vec![meta(2, "w")], ..Commit::default() }).expect_err("self-fenced");
    assert_eq!(refused.kind, StoreErrorKind::Conflict, "{refused}");
    let next = PgStore::open_leased(&url, Some("w1"), lease).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next.worker().map(|w| w.generation), silent.worker().map(|w| w.generation + 1));
    assert_eq!(next.run("run002").expect("read"), None, "nothing of the refused commit");
}

/// Each CLI command that writes joins as a worker: those gone an hour that
/// own no run leave the table; one that still owns a run stays.
#[test]
fn workers_gone_an_hour_that_own_nothing_leave_the_table() {
    let Some(url) = fresh_database() else { return };
    let open = |id: &str| PgStore::open(&url, Some(id)).unwrap_or_else(|e| panic!("{e}"));
    let (live, idle, owner) = (open("live"), open("idle"), open("owner"));
    owner
        .commit(&Commit { runs: vec![RunMeta { status: RunStatus::Running, ..meta(1, "w") }], ..Commit::default() })
        .expect("owner's run");
    idle.leave().expect("leave");
    owner.leave().expect("leave");
    let age = "UPDATE sagaflow.workers SET fenced_at = now() - interval '2 hours' WHERE state <> 'live'";
    super::postgres::block_on(live.execute(age)).expect("aged");
    live.expire_workers().expect("expire");
    let left = |id: &'static str| {
        let sql = format!("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM sagaflow.workers WHERE worker_id = '{id}') THEN RAISE EXCEPTION 'gone'; END IF; END $$");
        super::postgres::block_on(live.execute(&sql)).is_ok()
    };
    assert!(!left("idle"), "a worker gone an hour that owns nothing leaves");
    assert!(left("owner"), "one whose run is still unfinished stays (its run is an orphan to claim)");
    assert!(left("live"));
}

/// A run id is created once across workers: a commit that would create a run
/// another worker created first is refused whole, naming it.
#[test]
fn a_run_another_worker_created_first_refuses_the_commit_that_creates_it_again() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (PgStore::open(&url, Some("a")).expect("a"), PgStore::open(&url, Some("b")).expect("b"));
    let starting = |i: u64| Commit {
        entries: vec![(meta(i, "w").run_id, 0, Entry::CancelRequested { at: i })],
        runs: vec![RunMeta { status: RunStatus::Running, ..meta(i, "w") }],
        created: vec![meta(i, "w").run_id],
        ..Commit::default()
    };
    a.commit(&starting(1)).expect("a creates run001");
    let mut both = starting(1);
    both.entries.extend(starting(2).entries);
    both.runs.extend(starting(2).runs);
    both.created.push(meta(2, "w").run_id);
    let refused = b.commit(&both).expect_err("run001 is a's");
    assert_eq!(
        (refused.kind, refused.existing.clone()),
        (StoreErrorKind::Exists, vec!["run001".to_owned()]),
        "{refused}"
    );
    assert_eq!(b.run("run002").expect("read"), None, "nothing of the refused commit");
    assert_eq!(b.entries("run001").expect("journal").len(), 1, "a's start alone");
    b.commit(&starting(2)).expect("without it, the commit goes through");
    assert_eq!(b.run("run002").expect("read").map(|m| m.workflow), Some("w".to_owned()));
}

/// A database restart ends every connection of a worker: it opens them
/// again as they are next needed (reads, commits, its lease, the sandbox),
/// keeps its runs, and a commit whose answer was lost with its connection,
/// sent again, is found in the database instead of written twice.
#[test]
fn a_worker_outlives_a_restart_of_its_database_and_writes_a_commit_whose_answer_was_lost_once() {
    let Some(url) = fresh_database() else { return };
    let lease = std::time::Duration::from_secs(1);
    let store = PgStore::open_leased(&url, Some("w1"), lease).unwrap_or_else(|e| panic!("{e}"));
    let sandbox = store.sandbox().unwrap_or_else(|e| panic!("{e}"));
    let entry = |seq: u32| ("run001".to_owned(), seq, Entry::RetryDue { step: seq as usize, item: None });
    let running = RunMeta { status: RunStatus::Running, ..meta(1, "w") };
    let first = Commit {
        entries: vec![entry(0), entry(1)],
        runs: vec![running.clone()],
        created: vec!["run001".into()],
        ..Commit::default()
    };
    store.commit(&first).expect("first");
    let restart = || super::postgres::block_on(store.end_sessions()).unwrap_or_else(|e| panic!("{e}"));
    restart();
    store.lose_last_answer();
    store.commit(&first).expect("the same commit again: it landed, so it is done");
    assert_eq!(store.entries("run001").expect("journal").len(), 2, "written once");
    restart();
    store.commit(&Commit { entries: vec![entry(2)], ..Commit::default() }).expect("the next commit");
    assert_eq!(store.entries("run001").expect("journal").len(), 3);
    let tx = sandbox.begin("pay").unwrap_or_else(|e| panic!("{e}"));
    tx.commit(&[("k".to_owned(), Some(b"1".to_vec()))].into()).expect("the sandbox writes");
    restart();
    let tx = sandbox.begin("pay").unwrap_or_else(|e| panic!("{e}"));
    tx.commit(&[("k".to_owned(), Some(b"2".to_vec()))].into()).expect("the sandbox writes again");
    assert_eq!(sandbox.scan("pay", "k").expect("read"), vec![b"2".to_vec()]);
    restart();
    std::thread::sleep(lease * 2);
    assert!(!store.is_fenced(), "its lease was renewed on a new connection");
    assert_eq!(store.run("run001").expect("read"), Some(running), "its run is still its own");
    assert!(!store.is_elsewhere("run001").expect("owner"));
    store.commit(&Commit { entries: vec![entry(3)], ..Commit::default() }).expect("a commit after it all");
}

/// Whether a commit sent again landed is told by its first journal entry as
/// written: another entry at that place means it did not (the database
/// refused it), and it is refused again, not taken for written.
#[test]
fn a_commit_sent_again_is_taken_for_written_only_if_its_own_entry_is_there() {
    let Some(url) = fresh_database() else { return };
    let store = PgStore::open(&url, Some("w1")).unwrap_or_else(|e| panic!("{e}"));
    let entry = |step: usize| ("run001".to_owned(), 0, Entry::RetryDue { step, item: None });
    store.commit(&Commit { entries: vec![entry(0)], ..Commit::default() }).expect("first");
    store.lose_last_answer();
    let other = Commit { entries: vec![entry(1)], runs: vec![meta(1, "w")], ..Commit::default() };
    let refused = store.commit(&other).expect_err("its place is taken by another entry");
    assert_eq!(refused.kind, StoreErrorKind::Other, "{refused}");
    assert_eq!(store.entries("run001").expect("journal"), vec![entry(0).2], "nothing of it landed");
    assert_eq!(store.run("run001").expect("read"), None);
}

/// A sandbox transaction the database refused leaves nothing behind on its
/// connection: the next one begins and commits.
#[test]
fn a_refused_sandbox_transaction_is_rolled_back_and_the_next_goes_through() {
    let Some(url) = fresh_database() else { return };
    let store = PgStore::open(&url, Some("w1")).unwrap_or_else(|e| panic!("{e}"));
    let sandbox = store.sandbox().unwrap_or_else(|e| panic!("{e}"));
    let tx = sandbox.begin("pay").unwrap_or_else(|e| panic!("{e}"));
    let refused = tx.commit(&[("k".to_owned(), Some(b"not json".to_vec()))].into());
    assert!(refused.is_err(), "the table keeps JSON");
    let tx = sandbox.begin("pay").unwrap_or_else(|e| panic!("the next begins: {e}"));
    tx.commit(&[("k".to_owned(), Some(b"1".to_vec()))].into()).expect("and commits");
    assert_eq!(sandbox.scan("pay", "").expect("read"), vec![b"1".to_vec()]);
}

/// A claim whose answer was lost with its connection may have landed: its
/// runs are the claimer's, though it never resumed them. Its next claim
/// answers its own unfinished runs too, once.
#[test]
fn after_a_claim_whose_answer_was_lost_the_next_answers_the_workers_own_runs() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (PgStore::open(&url, Some("a")).expect("a"), PgStore::open(&url, Some("b")).expect("b"));
    let running = RunMeta { status: RunStatus::Running, ..meta(1, "w") };
    a.commit(&Commit { runs: vec![running], ..Commit::default() }).expect("a's run");
    a.leave().expect("a leaves");
    let ids = |claimed: Vec<RunMeta>| claimed.into_iter().map(|m| m.run_id).collect::<Vec<_>>();
    assert_eq!(ids(b.claim(10).expect("claim")), ["run001"]);
    assert_eq!(ids(b.claim(10).expect("claim")), Vec::<String>::new(), "b's own now");
    b.lose_claim_answer();
    assert_eq!(ids(b.claim(10).expect("claim")), ["run001"], "b's own, answered again");
    assert_eq!(ids(b.claim(10).expect("claim")), Vec::<String>::new(), "once");
}

/// The waits a worker's commits begin are seen from every worker, by the
/// event they wait for; a commit that ends the wait, ends the run or forgets
/// it removes it.
#[test]
fn the_runs_waiting_for_an_event_are_known_to_every_worker() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (PgStore::open(&url, Some("a")).expect("a"), PgStore::open(&url, Some("b")).expect("b"));
    let wait = |run: u64, step: usize, item: Option<usize>, key: &str| Wait {
        kind: "paid".into(),
        key: key.into(),
        run_id: meta(run, "w").run_id,
        step,
        item,
    };
    let begun = vec![wait(1, 0, None, "k"), wait(1, 2, Some(0), "k"), wait(2, 0, None, "k"), wait(3, 0, None, "other")];
    let running: Vec<RunMeta> = (1..=3).map(|i| RunMeta { status: RunStatus::Running, ..meta(i, "w") }).collect();
    a.commit(&Commit { waits_begun: begun.clone(), runs: running, ..Commit::default() }).expect("begin");
    a.commit(&Commit { waits_begun: begun, ..Commit::default() }).expect("a wait begun again is the same");
    assert_eq!(b.waiting("paid", "k").expect("waiting"), ["run001", "run002"]);
    assert_eq!(b.waiting("paid", "other").expect("waiting"), ["run003"]);
    assert_eq!(b.waiting("paid", "none").expect("waiting"), Vec::<String>::new());
    let ended = vec![wait(1, 0, None, "k"), wait(2, 0, None, "k")];
    a.commit(&Commit { waits_ended: ended, ..Commit::default() }).expect("end two");
    assert_eq!(b.waiting("paid", "k").expect("waiting"), ["run001"], "its item still waits");
    let finished = RunMeta { status: RunStatus::Succeeded, ..meta(1, "w") };
    a.commit(&Commit { runs: vec![finished], ..Commit::default() }).expect("run001 ends");
    a.commit(&Commit { forget: vec![meta(3, "w")], ..Commit::default() }).expect("run003 forgotten");
    assert_eq!(b.waiting("paid", "k").expect("waiting"), Vec::<String>::new(), "an ended run waits for nothing");
    assert_eq!(b.waiting("paid", "other").expect("waiting"), Vec::<String>::new(), "nor a forgotten one");
}

/// The last holder of a PostgreSQL store's runtime may be dropped on a
/// runtime's worker thread (a server's sandbox, as it stops): no panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_store_and_its_sandbox_table_drop_inside_a_runtime() {
    let Some(url) = fresh_database() else { return };
    let store = PgStore::open(&url, Some("w1")).unwrap_or_else(|e| panic!("{e}"));
    let sandbox = store.sandbox().unwrap_or_else(|e| panic!("{e}"));
    drop(store);
    // Whatever the store hands elsewhere to drop has gone by now: the table holds the last of it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    drop(sandbox);
}
