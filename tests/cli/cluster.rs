//! Three `serve` workers on one PostgreSQL database (`../shared/design/scale-out.md` §7):
//! one SIGKILLed under load, one paused past its lease (split brain), cron
//! ticks and webhook deliveries shared among them. Each test checks, in the
//! database and through the API, that nothing was lost, doubled or written
//! by a worker that was fenced off.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::outbox::Receiver;
use super::postgres::pg_testing::fresh_database;
use super::server::Server;

const ORDER: &str = "name: cluster_order
input:
  type: object
  required: [items]
  properties: { items: { type: array } }
steps:
  - id: reserve
    action: inventory.reserve
    for_each: '{{input.items}}'
    with: { sku: '{{item}}', quantity: 1, reference: '{{run.id}}' }
  - id: charge
    action: payments.charge
    with: { amount_cents: 100, currency: EUR, payment_method: tok_visa, user_id: usr-ada, reference: '{{run.id}}' }
  - id: announce
    action: event.emit
    with: { type: order.placed, key: '{{run.id}}', data: { run: '{{run.id}}' } }
  - id: nap
    action: sleep
    with: { for: 1s }
  - id: slow
    action: mock
    with: { delay: 300ms, output: done }
";

const NOTED: &str = "name: order_noted
triggers:
  - event: order.placed
steps:
  - id: note
    action: mock
    with: { output: noted }
";

const SEED: &str = "products:
  - { sku: A-1, name: A, price_cents: 100, stock: 100000 }
  - { sku: B-1, name: B, price_cents: 100, stock: 100000 }
cards:
  - { token: tok_visa, outcome: approve }
";

/// A folder for one worker: the workflows, the seed and a config naming the database.
fn worker_dir(url: &str, webhook: Option<&str>, workflows: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = super::server::folder(workflows);
    std::fs::write(dir.path().join("seed.yaml"), SEED).expect("seed");
    let mut config = format!("[store]\nurl = \"{url}\"\n\n[sandbox]\nseed = \"seed.yaml\"\n");
    if let Some(hook) = webhook {
        config.push_str(&format!("\n[[webhooks]]\nname = \"orders\"\nurl = \"{hook}\"\nevents = [\"order.*\"]\n"));
    }
    std::fs::write(dir.path().join("sagaflow.toml"), config).expect("config");
    dir
}

/// A worker's lease in these tests: the default (a shorter one may run out
/// on a machine as loaded as a test run makes it, and the worker stops).
const LEASE_S: u64 = 3;

fn start(dir: &Path, id: &str, env: &[(&str, &str)]) -> Server {
    Server::start_env(dir, &["--worker-id", id, "--lease", &format!("{LEASE_S}s")], None, env)
}

/// A connection to the test database, for the checks.
async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// Posts runs with an `Idempotency-Key` each, round robin over the workers
/// alive, for `load`; a key whose worker does not answer goes to the next
/// one until one does. Answers each acknowledged key's run and the worker
/// that first answered it.
async fn post_load(urls: Vec<String>, dead: Arc<Mutex<BTreeSet<usize>>>, load: Duration) -> BTreeMap<String, String> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..8usize {
        let (client, urls, dead, acked) = (client.clone(), urls.clone(), dead.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0usize;
            while began.elapsed() < load {
                let key = format!("t{task}-{i}");
                let body = json!({ "input": { "items": ["A-1", "B-1"] } });
                let mut at = (task + i) % urls.len();
                let deadline = Instant::now() + Duration::from_secs(30);
                loop {
                    assert!(Instant::now() < deadline, "no worker acknowledged {key}");
                    if dead.lock().unwrap_or_else(|p| p.into_inner()).contains(&at) {
                        at = (at + 1) % urls.len();
                        continue;
                    }
                    let sent = client
                        .post(format!("{}/v1/workflows/cluster_order/runs", urls[at]))
                        .header("Idempotency-Key", &key)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().as_u16() == 202 => {
                            let answer: Value = r.json().await.expect("json");
                            let run = answer["run_id"].as_str().expect("run_id").to_owned();
                            acked.lock().unwrap_or_else(|p| p.into_inner()).insert(key, run);
                            break;
                        }
                        // Refused (draining, a lost answer): the same key, elsewhere.
                        _ => at = (at + 1) % urls.len(),
                    }
                }
                i += 1;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client task");
    }
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    acked
}

/// A supervisor's job: a worker that stopped by itself (it fenced itself
/// off, its lease renewals starved on a loaded machine) is started again.
fn restart_stopped(workers: &mut [Option<Server>], dirs: &[tempfile::TempDir]) {
    for (i, slot) in workers.iter_mut().enumerate() {
        let Some(code) = slot.as_mut().and_then(|w| w.exited(Duration::ZERO)) else { continue };
        eprintln!("w{} stopped by itself (exit {code:?}); started again", i + 1);
        *slot = Some(start(dirs[i].path(), &format!("w{}", i + 1), &[]));
    }
}

/// Waits until every run of `workflow` has ended (90 s at most), calling
/// `meanwhile` at each look; answers how many there are.
async fn until_all_ended(
    db: &tokio_postgres::Client,
    workflow: &str,
    at_least: i64,
    mut meanwhile: impl FnMut(),
) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        meanwhile();
        let row = db
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE status IN ('running', 'waiting', 'paused', 'compensating'))
                 FROM sagaflow.runs WHERE workflow = $1",
                &[&workflow],
            )
            .await
            .expect("count");
        let (all, open): (i64, i64) = (row.get(0), row.get(1));
        if open == 0 && all >= at_least {
            return all;
        }
        assert!(Instant::now() < deadline, "{open} of {all} runs of {workflow} never ended");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The journal invariants every run must keep, whatever crashed: entries
/// numbered without a gap, one end, no attempt finished twice.
async fn check_journals(db: &tokio_postgres::Client) {
    let gaps = db
        .query(
            "SELECT run_id, count(*), max(seq) FROM sagaflow.journal GROUP BY run_id HAVING count(*) <> max(seq) + 1",
            &[],
        )
        .await
        .expect("gaps");
    assert!(gaps.is_empty(), "{} journals have gaps", gaps.len());
    let ends = db
        .query(
            "SELECT r.run_id, count(j.seq) FROM sagaflow.runs r
             LEFT JOIN sagaflow.journal j ON j.run_id = r.run_id AND j.entry->>'type' = 'run_finished'
             GROUP BY r.run_id HAVING count(j.seq) <> 1",
            &[],
        )
        .await
        .expect("ends");
    assert!(ends.is_empty(), "{} runs do not have exactly one end", ends.len());
    let twice = db
        .query(
            "SELECT run_id, entry->>'step', (entry->'item')::text, entry->>'attempt', count(*) FROM sagaflow.journal
             WHERE entry->>'type' = 'attempt_finished' GROUP BY 1, 2, 3, 4 HAVING count(*) > 1",
            &[],
        )
        .await
        .expect("twice");
    assert!(twice.is_empty(), "{} attempts finished twice", twice.len());
}

/// The sandbox, read through the CLI as any worker's peer would.
fn sandbox(dir: &Path, service: &str) -> Value {
    let out = super::harness::sagaflow()
        .args(["sandbox", "show", service, "--format", "json"])
        .current_dir(dir)
        .output()
        .expect("sandbox show");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Three workers under load, one SIGKILLed: every acknowledged key is one
/// run and it succeeded; journals whole; one effect per idempotency key in
/// the sandbox; every event delivered and its triggered run started once;
/// the dead worker declared so within its lease and a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_under_load_lose_and_double_nothing_when_one_is_killed() {
    let Some(url) = fresh_database() else { return };
    let hook = Receiver::start(false);
    let workflows = [("cluster_order.yaml", ORDER), ("order_noted.yaml", NOTED)];
    let dirs: Vec<_> = (0..3).map(|_| worker_dir(&url, Some(&hook.url), &workflows)).collect();
    let mut workers: Vec<Option<Server>> =
        dirs.iter().enumerate().map(|(i, d)| Some(start(d.path(), &format!("w{}", i + 1), &[]))).collect();
    let urls: Vec<String> = workers.iter().flatten().map(|w| w.url.clone()).collect();
    let dead = Arc::new(Mutex::new(BTreeSet::new()));
    let load = tokio::spawn(post_load(urls, dead.clone(), Duration::from_secs(6)));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let db = sql(&url).await;
    dead.lock().unwrap_or_else(|p| p.into_inner()).insert(1);
    if let Some(w2) = workers[1].take() {
        w2.kill();
    }
    let killed_at: std::time::SystemTime = db.query_one("SELECT now()", &[]).await.expect("now").get(0);
    let acked = load.await.expect("load");
    assert!(acked.len() >= 20, "only {} runs were acknowledged", acked.len());
    eprintln!("{} runs acknowledged", acked.len());

    let runs = until_all_ended(&db, "cluster_order", acked.len() as i64, || restart_stopped(&mut workers, &dirs)).await;
    let ids: BTreeSet<&String> = acked.values().collect();
    assert_eq!(ids.len(), acked.len(), "two keys share a run");
    assert_eq!(runs as usize, acked.len(), "one run per acknowledged key, and no other");
    let rows =
        db.query("SELECT run_id, status FROM sagaflow.runs WHERE workflow = 'cluster_order'", &[]).await.expect("runs");
    let statuses: BTreeMap<String, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    for run in &ids {
        assert_eq!(statuses.get(*run).map(String::as_str), Some("succeeded"), "run {run}");
    }
    check_journals(&db).await;

    // One effect per idempotency key: two reservations and one charge per run.
    let inventory = sandbox(dirs[0].path(), "inventory").to_string();
    let reserved = inventory.matches("\"reservation_id\"").count();
    assert_eq!(reserved, 2 * acked.len(), "reservations: {inventory}");
    let payments = sandbox(dirs[0].path(), "payments").to_string();
    let charged = ids.iter().filter(|id| payments.contains(&format!("\"reference\":\"{id}\""))).count();
    assert_eq!(charged, acked.len(), "a charge per run");

    // Every event reached the webhook, and started its triggered run once.
    let events: Vec<String> = db
        .query("SELECT id FROM sagaflow.events WHERE type = 'order.placed'", &[])
        .await
        .expect("events")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(events.len(), acked.len(), "one event per run");
    let noted = until_all_ended(&db, "order_noted", events.len() as i64, || restart_stopped(&mut workers, &dirs)).await;
    assert_eq!(noted as usize, events.len(), "one triggered run per event");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: BTreeSet<String> = hook.keys().into_iter().collect();
        let missing = events.iter().filter(|e| !got.contains(*e)).count();
        if missing == 0 {
            let repeats = hook.keys().len() - got.len();
            eprintln!("webhook: {} events, {repeats} delivered more than once", events.len());
            break;
        }
        assert!(Instant::now() < deadline, "{missing} events never reached the webhook");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The killed worker was declared dead within its lease and a second.
    let fenced: Option<std::time::SystemTime> =
        db.query_one("SELECT fenced_at FROM sagaflow.workers WHERE worker_id = 'w2'", &[]).await.expect("w2").get(0);
    let after = fenced.expect("w2 was declared dead").duration_since(killed_at).unwrap_or_default();
    assert!(after < Duration::from_secs(LEASE_S + 1), "declared dead {after:?} after the kill");
    let logs: Vec<String> = workers.iter().flatten().map(Server::log).collect();
    assert!(logs.iter().any(|l| l.contains("took over runs")), "w2's runs were taken over: {logs:?}");
    assert!(logs.iter().all(|l| !l.contains("panicked")), "{logs:?}");
}

const HELD: &str = "name: held
steps:
  - id: charge
    action: payments.charge
    with: { amount_cents: 100, currency: EUR, payment_method: tok_visa, user_id: usr-ada, reference: '{{run.id}}' }
  - id: slow
    action: mock
    with: { delay: 3s, output: done }
  - id: after
    action: mock
    with: { output: after }
";

/// Split brain: a worker paused past its lease (told to ignore its own
/// lease, so the database's fence is what stops it) wakes to find its runs
/// taken over and finished: it writes not one row more, says it was fenced
/// off and stops; the attempts it had in flight ran again elsewhere with
/// the same key, and each charge was made once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_paused_past_its_lease_writes_nothing_after_its_runs_were_taken_over() {
    let Some(url) = fresh_database() else { return };
    let (one, two) = (worker_dir(&url, None, &[("held.yaml", HELD)]), worker_dir(&url, None, &[("held.yaml", HELD)]));
    let mut w1 = start(one.path(), "w1", &[("SAGAFLOW_TEST_IGNORE_LEASE", "1")]);
    let w2 = start(two.path(), "w2", &[]);
    let mut runs = Vec::new();
    for _ in 0..5 {
        runs.push(w1.start_run("held", json!({})).await);
    }
    for run in &runs {
        w1.until(&format!("/v1/runs/{run}"), |r| r["steps"][1]["attempts"].as_u64() == Some(1)).await;
    }
    w1.signal("STOP");
    let db = sql(&url).await;
    for run in &runs {
        let done = w2.until_status(run, &["succeeded", "failed", "compensated"]).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let count = "SELECT count(*) FROM sagaflow.journal";
    let before: i64 = db.query_one(count, &[]).await.expect("count").get(0);
    w1.signal("CONT");
    let code = w1.exited(Duration::from_secs(20));
    assert_eq!(code, Some(2), "the fenced worker stops: {}", w1.log());
    assert!(w1.log().contains("fenced off"), "{}", w1.log());
    let after: i64 = db.query_one(count, &[]).await.expect("count").get(0);
    assert_eq!(after, before, "not one journal row from the fenced worker");
    check_journals(&db).await;
    let payments = sandbox(two.path(), "payments").to_string();
    for run in &runs {
        assert_eq!(payments.matches(&format!("\"reference\":\"{run}\"")).count(), 1, "one charge for {run}");
    }
}

const TICKER: &str = "name: ticker
triggers:
  - schedule: '*/2 * * * * *'
steps:
  - id: tick
    action: mock
    with: { output: tick }
";

/// Cron on three workers: one run per tick, none missed, also when one of
/// the workers is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_on_three_workers_starts_one_run_per_tick_even_when_one_dies() {
    let Some(url) = fresh_database() else { return };
    let dirs: Vec<_> = (0..3).map(|_| worker_dir(&url, None, &[("ticker.yaml", TICKER)])).collect();
    let mut workers: Vec<Option<Server>> =
        dirs.iter().enumerate().map(|(i, d)| Some(start(d.path(), &format!("w{}", i + 1), &[]))).collect();
    tokio::time::sleep(Duration::from_secs(5)).await;
    if let Some(w) = workers[0].take() {
        w.kill();
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    let db = sql(&url).await;
    let rows = db
        .query("SELECT started_at FROM sagaflow.runs WHERE workflow = 'ticker' ORDER BY started_at", &[])
        .await
        .expect("runs");
    let starts: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    assert!(starts.len() >= 4, "{starts:?}");
    for pair in starts.windows(2) {
        let gap = pair[1] - pair[0];
        assert!((1_000..=3_000).contains(&gap), "ticks 2 s apart, each started once: {starts:?}");
    }
    drop(workers);
}

/// The relay shared by lease: the worker whose relay holds a delivery (its
/// webhook hangs) is killed; another relay delivers it once the dead
/// worker's lease ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_held_by_a_killed_workers_relay_is_made_by_another() {
    let Some(url) = fresh_database() else { return };
    let hook = Receiver::start(true);
    let workflows = [("cluster_order.yaml", ORDER)];
    let dirs: Vec<_> = (0..2).map(|_| worker_dir(&url, Some(&hook.url), &workflows)).collect();
    let mut workers: Vec<Option<Server>> =
        dirs.iter().enumerate().map(|(i, d)| Some(start(d.path(), &format!("w{}", i + 1), &[]))).collect();
    let first = workers[0].as_ref().expect("w1");
    first.start_run("cluster_order", json!({ "items": ["A-1"] })).await;
    let db = sql(&url).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let holder: String = loop {
        let row = db.query_opt("SELECT leased_by FROM sagaflow.outbox WHERE leased_by IS NOT NULL", &[]).await;
        if let Some(row) = row.expect("outbox") {
            break row.get(0);
        }
        assert!(Instant::now() < deadline, "no relay took the delivery");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    while hook.keys().is_empty() {
        assert!(Instant::now() < deadline, "the webhook was never called");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let at = if holder == "w1" { 0 } else { 1 };
    if let Some(w) = workers[at].take() {
        w.kill();
    }
    hook.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left: i64 = db.query_one("SELECT count(*) FROM sagaflow.outbox", &[]).await.expect("count").get(0);
        if left == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the delivery was never made by the other relay");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keys = hook.keys();
    assert!(keys.len() >= 2 && keys.iter().all(|k| k == &keys[0]), "one event, tried again: {keys:?}");
    eprintln!("the event was delivered {} times", keys.len());
    drop(workers);
}
