//! `[retention] finished` in `sagaflow serve`: finished runs leave the store
//! once they are older than the period, and none younger does; unfinished
//! runs stay whatever their age.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::server::{folder, Server};

const QUICK: &str = "name: quick\nsteps:\n  - { id: a, action: mock, with: { output: 1 } }\n";
const HELD: &str =
    "name: held\nsteps:\n  - id: w\n    action: event.wait\n    with: { type: never.comes, key: k }\n    timeout: 1h\n";
const PERIOD_MS: u64 = 3_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Starts runs of `quick` one after another for `seconds`, each answered with
/// its record once it ended (`?wait`); keeps each run's id and finish time.
async fn steady_load(server: &Server, seconds: u64, finished: &Mutex<BTreeMap<String, u64>>) {
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let (status, record) = server.post("/v1/workflows/quick/runs?wait=5s", json!({ "input": {} })).await;
        assert_eq!(status, 200, "{record}");
        let id = record["run_id"].as_str().expect("run_id").to_owned();
        finished.lock().expect("lock").insert(id, record["finished_at"].as_u64().expect("finished_at"));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the listing against every finish time known: a run that left had
/// finished at least the period ago, one still kept not much longer ago than
/// that (the pass runs every second). Answers how many known runs are kept.
async fn check(server: &Server, held: &str, finished: &Mutex<BTreeMap<String, u64>>) -> usize {
    // Only runs that ended before the listing was asked for are held to it.
    let known = finished.lock().expect("lock").clone();
    let (_, page) = server.get("/v1/runs?limit=1000").await;
    let now = now_ms();
    let listed: Vec<&str> =
        page["runs"].as_array().expect("runs").iter().filter_map(|r| r["run_id"].as_str()).collect();
    assert!(listed.contains(&held), "an unfinished run stays: {page}");
    for (id, at) in &known {
        let age = now.saturating_sub(*at);
        if listed.contains(&id.as_str()) {
            assert!(age < PERIOD_MS + 6_000, "run {id} finished {age} ms ago and is still kept\n{}", server.log());
        } else {
            assert!(age >= PERIOD_MS, "run {id} left only {age} ms after it finished");
        }
    }
    known.keys().filter(|id| listed.contains(&id.as_str())).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_finished_runs_older_than_the_period_leave_and_no_younger_or_unfinished_run_does() {
    let dir = folder(&[("quick.yaml", QUICK), ("held.yaml", HELD)]);
    std::fs::write(dir.path().join("sagaflow.toml"), "[retention]\nfinished = \"3s\"\n").expect("config");
    let server = Arc::new(Server::start(dir.path()));
    let held = server.start_run("held", json!({})).await;
    server.until_status(&held, &["waiting"]).await;
    let finished: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let load = tokio::spawn({
        let (server, finished) = (server.clone(), finished.clone());
        async move { steady_load(&server, 9, &finished).await }
    });
    // While runs keep coming, and after: every listing holds to the period.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut pruned_while_loaded = false;
    loop {
        let known = finished.lock().expect("lock").len();
        let kept = check(&server, &held, &finished).await;
        pruned_while_loaded |= !load.is_finished() && kept < known;
        if load.is_finished() && kept == 0 && known == finished.lock().expect("lock").len() {
            break;
        }
        assert!(Instant::now() < deadline, "the finished runs never left\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    load.await.expect("the load ran");
    assert!(pruned_while_loaded, "runs left while others were still coming");
    let known = finished.lock().expect("lock").len();
    assert!(known > 50, "a steady load: {known} runs");
    let some = finished.lock().expect("lock").keys().next().cloned().unwrap_or_default();
    let (code, _) = server.get(&format!("/v1/runs/{some}")).await;
    assert_eq!(code, 404, "a run that left is gone from the API too");
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains(&format!("sagaflow_runs_pruned_total {known}")), "{metrics}");
    assert!(!metrics.contains("sagaflow_runs{workflow=\"quick\""), "no run of quick is counted any more: {metrics}");
    assert!(server.log().contains("retention removed finished runs"), "{}", server.log());
    let _: Value = server.until_status(&held, &["waiting"]).await;
}
