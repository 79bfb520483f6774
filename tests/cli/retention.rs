//! `[retention] finished` in `sagaflow serve`: finished runs leave the store
//! once they are older than the period, and none younger does; unfinished
//! runs stay whatever their age.

use std::collections::BTreeMap;
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

#[tokio::test]
async fn finished_runs_older_than_the_period_leave_and_no_younger_or_unfinished_run_does() {
    let dir = folder(&[("quick.yaml", QUICK), ("held.yaml", HELD)]);
    std::fs::write(dir.path().join("sagaflow.toml"), "[retention]\nfinished = \"3s\"\n").expect("config");
    let server = Server::start(dir.path());
    let held = server.start_run("held", json!({})).await;
    server.until_status(&held, &["waiting"]).await;
    // Two batches, a second and a half apart: the first leaves while the second is still young.
    let mut finished: BTreeMap<String, u64> = BTreeMap::new();
    for batch in 0..2 {
        for _ in 0..5 {
            let id = server.start_run("quick", json!({})).await;
            let record = server.until_status(&id, &["succeeded"]).await;
            finished.insert(id, record["finished_at"].as_u64().expect("finished_at"));
        }
        if batch == 0 {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, page) = server.get("/v1/runs?limit=100").await;
        let now = now_ms();
        let listed: Vec<&str> =
            page["runs"].as_array().expect("runs").iter().filter_map(|r| r["run_id"].as_str()).collect();
        assert!(listed.contains(&held.as_str()), "an unfinished run stays: {page}");
        for (id, at) in &finished {
            let age = now.saturating_sub(*at);
            if listed.contains(&id.as_str()) {
                // The pass runs every second; a run may outlive the period by that and some slack.
                assert!(age < PERIOD_MS + 6_000, "run {id} finished {age} ms ago and is still kept\n{}", server.log());
            } else {
                assert!(age >= PERIOD_MS, "run {id} left only {age} ms after it finished");
                let (code, _) = server.get(&format!("/v1/runs/{id}")).await;
                assert_eq!(code, 404, "run {id} is gone from the API too");
            }
        }
        if finished.keys().all(|id| !listed.contains(&id.as_str())) {
            break;
        }
        assert!(Instant::now() < deadline, "the finished runs never left: {page}\n{}", server.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("sagaflow_runs_pruned_total 10"), "{metrics}");
    assert!(!metrics.contains("sagaflow_runs{workflow=\"quick\""), "no run of quick is counted any more: {metrics}");
    assert!(server.log().contains("retention removed finished runs"), "{}", server.log());
    let _: Value = server.until_status(&held, &["waiting"]).await;
}
