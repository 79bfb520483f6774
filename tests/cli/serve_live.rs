//! `sagaflow serve` while things change: hot reload under runs in flight,
//! bursts of file events, cron and event triggers, the registration flow, and
//! SIGKILL under load.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::serve::{FIVE, WAITER};
use super::server::{copy_business_workflows, folder, Server};

/// A workflow started every second by a 6-field cron.
const TICKER: &str = "name: ticker
triggers:
  - schedule: \"* * * * * *\"
    input: { from: cron }
steps:
  - { id: tick, action: mock, with: { output: \"{{input.from}}\" } }
";

/// The ticks of the ticker's runs (a tick's run id begins with its 12 hex digits
/// of milliseconds), newest first; asserts none has two runs.
async fn ticks_once_each(server: &Server) -> Vec<u64> {
    let (_, page) = server.get("/v1/runs?workflow=ticker&limit=1000").await;
    let ids: Vec<String> =
        page["runs"].as_array().into_iter().flatten().filter_map(|r| r["run_id"].as_str().map(str::to_owned)).collect();
    let ticks: Vec<u64> = ids.iter().filter_map(|id| u64::from_str_radix(id.get(..12)?, 16).ok()).collect();
    let unique: BTreeSet<&u64> = ticks.iter().collect();
    assert_eq!(unique.len(), ticks.len(), "no tick fired twice: {ids:?}");
    ticks
}

/// The version the API says is active for new runs of `name`.
async fn active_version(server: &Server, name: &str) -> Option<String> {
    let (_, w) = server.get(&format!("/v1/workflows/{name}")).await;
    w["version"].as_str().map(str::to_owned)
}

/// Writes a file the way editors do not: in place, so the watcher sees every write.
fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join("workflows").join(name), text).expect("write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_reload_under_100_runs_in_flight_each_finishes_on_its_own_version() {
    let dir = folder(&[("waiter.yaml", WAITER)]);
    let server = Server::start(dir.path());
    let v1 = active_version(&server, "waiter").await.expect("v1");
    let mut old_runs = Vec::new();
    for i in 0..100 {
        old_runs.push(server.start_run("waiter", json!({ "key": format!("k{i}") })).await);
    }
    for id in &old_runs {
        server.until_status(id, &["waiting"]).await;
    }

    // A valid change: the wait step is renamed. New runs get it within a second.
    let v2_text = WAITER.replace("id: hold", "id: hold_on");
    let changed_at = Instant::now();
    write(dir.path(), "waiter.yaml", &v2_text);
    let v2 = loop {
        match active_version(&server, "waiter").await {
            Some(v) if v != v1 => break v,
            _ => {
                assert!(changed_at.elapsed() < Duration::from_secs(5), "the change never became active");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let visible_after = changed_at.elapsed();
    assert!(visible_after < Duration::from_secs(3), "visible after {visible_after:?} (goal: 1 s)");
    let new_run = server.start_run("waiter", json!({ "key": "new" })).await;
    let w = server
        .until("/v1/workflows/waiter", |w| {
            w["reload"]["change"]["change"] == "updated" && w["reload"]["in_flight"].is_object()
        })
        .await;
    let report = &w["reload"];
    assert_eq!(report["in_flight"][&v1], 100, "{report}");
    let stranded = report["stranded"].as_array().expect("stranded");
    assert_eq!(stranded.len(), 100, "every old run waits at the renamed step: {report}");
    assert_eq!(stranded[0]["steps"], json!(["hold"]));
    assert!(server.log().contains("removed or renamed"), "the report is in the log");

    // An invalid change: v2 stays active, the diagnostics show.
    write(dir.path(), "waiter.yaml", "name: waiter\nsteps:\n  - { id: x, action: nope }\n");
    let w = server.until("/v1/workflows/waiter", |w| w["state"] == "invalid").await;
    assert_eq!(w["version"].as_str(), Some(v2.as_str()), "the version before stays active");
    assert_eq!(w["diagnostics"][0]["code"], "unknown-action", "{w}");
    assert_eq!(w["diagnostics"][0]["line"], 3);
    let still = server.start_run("waiter", json!({ "key": "still" })).await;

    // Every run finishes on the version it started with.
    for (i, id) in old_runs.iter().enumerate() {
        let (status, _) = server.post("/v1/events", json!({"type": "go", "key": format!("k{i}")})).await;
        assert_eq!(status, 202);
        let record = server.until_status(id, &["succeeded"]).await;
        assert_eq!(record["version"].as_str(), Some(v1.as_str()));
        assert_eq!(record["steps"][1]["id"], "hold");
    }
    for (key, id) in [("new", &new_run), ("still", &still)] {
        server.post("/v1/events", json!({"type": "go", "key": key})).await;
        let record = server.until_status(id, &["succeeded"]).await;
        assert_eq!(record["version"].as_str(), Some(v2.as_str()));
        assert_eq!(record["steps"][1]["id"], "hold_on");
    }

    // Its last good content restored: valid and active again, no stale diagnostics.
    write(dir.path(), "waiter.yaml", &v2_text);
    let w = server.until("/v1/workflows/waiter", |w| w["state"] == "active").await;
    assert_eq!(w["version"].as_str(), Some(v2.as_str()), "{w}");
    assert!(w["diagnostics"].is_null() || w["diagnostics"] == json!([]), "{w}");

    // A deleted file takes no new runs.
    std::fs::remove_file(dir.path().join("workflows/waiter.yaml")).expect("delete");
    server.until("/v1/workflows", |l| l["workflows"] == json!([])).await;
    let (status, body) = server.post("/v1/workflows/waiter/runs", json!({"input": {"key": "gone"}})).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_writes_and_half_written_files_reload_cleanly() {
    let dir = folder(&[("five.yaml", FIVE)]);
    let server = Server::start(dir.path());
    let v1 = active_version(&server, "five").await.expect("v1");
    let last = FIVE.replace("output: 5", "output: 55");
    for i in 0..1000 {
        let text = match i % 3 {
            0 => &FIVE[..FIVE.len() / 2],
            1 => FIVE,
            _ => "",
        };
        write(dir.path(), "five.yaml", text);
        write(
            dir.path(),
            &format!("other{}.yaml", i % 10),
            &FIVE.replace("name: five", &format!("name: other{}", i % 10)),
        );
    }
    write(dir.path(), "five.yaml", &last);
    let w = server
        .until("/v1/workflows/five", |w| w["state"] == "active" && w["version"].as_str().is_some_and(|v| v != v1))
        .await;
    let (status, record) = server.post("/v1/workflows/five/runs?wait=10s", json!({"input": {"n": 1}})).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["version"], w["version"]);
    assert_eq!(record["steps"][4]["output"], 55);
    let (_, list) = server.get("/v1/workflows").await;
    assert_eq!(list["workflows"].as_array().map(Vec::len), Some(11));
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_fires_each_tick_once_across_restarts() {
    let dir = folder(&[("ticker.yaml", TICKER)]);
    let server = Server::start(dir.path());
    let first = server.until("/v1/runs?workflow=ticker", |p| p["runs"].as_array().is_some_and(|r| r.len() >= 2)).await;
    let id = first["runs"][0]["run_id"].as_str().expect("id").to_owned();
    let record = server.until_status(&id, &["succeeded"]).await;
    assert_eq!(record["output"], Value::Null);
    assert_eq!(record["steps"][0]["output"], "cron");
    assert_eq!(server.terminate(), Some(0));
    std::thread::sleep(Duration::from_millis(2500));
    let server = Server::start(dir.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    let runs = loop {
        let (_, page) = server.get("/v1/runs?workflow=ticker&limit=1000").await;
        let runs = page["runs"].as_array().cloned().unwrap_or_default();
        let after_restart =
            runs.iter().filter(|r| r["started_at"].as_u64() > first["runs"][0]["started_at"].as_u64()).count();
        if after_restart >= 4 || Instant::now() > deadline {
            break runs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(runs.len() >= 4);
    let ticks = ticks_once_each(&server).await;
    assert!(ticks.iter().all(|ms| ms % 1000 == 0), "{ticks:?}");
    let gaps = ticks.windows(2).filter(|w| w[0] - w[1] > 1000).count();
    assert!(gaps <= 1, "while down, ticks are skipped but for the latest, which fires once: {ticks:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_trigger_starts_a_run_with_the_event_data_as_input() {
    let triggered = "name: on_paid
input: { type: object, required: [amount], properties: { amount: { type: integer } } }
triggers:
  - event: payment.settled
steps:
  - { id: book, action: mock, with: { output: \"{{input.amount}}\" } }
";
    let dir = folder(&[("on_paid.yaml", triggered)]);
    let server = Server::start(dir.path());
    let (status, sent) =
        server.post("/v1/events", json!({"type": "payment.settled", "key": "p1", "data": {"amount": 42}})).await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["triggered"][0]["workflow"], "on_paid");
    let run_id = sent["triggered"][0]["run_id"].as_str().expect("run id").to_owned();
    let record = server.until_status(&run_id, &["succeeded"]).await;
    assert_eq!(record["input"], json!({"amount": 42}));
    assert_eq!(record["steps"][0]["output"], 42);
    let (_, bad) =
        server.post("/v1/events", json!({"type": "payment.settled", "key": "p2", "data": {"amount": "x"}})).await;
    assert!(bad["triggered"][0]["input_error"].as_str().is_some_and(|e| e.contains("amount")), "{bad}");
    let bad_id = bad["triggered"][0]["run_id"].as_str().expect("id").to_owned();
    let record = server.until_status(&bad_id, &["failed"]).await;
    assert_eq!(record["error"]["code"], "schema", "the input was checked against `input:`: {record}");
    let (_, page) = server.get("/v1/runs?workflow=on_paid").await;
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(2), "one run per event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registration_flow_end_to_end_with_the_click_as_an_event() {
    let dir = folder(&[]);
    copy_business_workflows(dir.path());
    let server = Server::start(dir.path());
    let run =
        server.start_run("user_registration", json!({"email": "hopper@example.com", "name": "Grace Hopper"})).await;
    let waiting = server.until_status(&run, &["waiting"]).await;
    assert_eq!(waiting["steps"][1]["status"], "succeeded", "the verification mail went out: {waiting}");
    let user_id = waiting["steps"][0]["output"]["user_id"].as_str().expect("user id").to_owned();
    assert_eq!(waiting["steps"][2]["status"], "running", "{waiting}");
    let click = json!({"type": "user.email_verified", "key": user_id, "data": {"token": waiting["steps"][0]["output"]["verification_token"]}});
    let (status, sent) = server.post("/v1/events", click).await;
    assert_eq!(status, 202);
    assert_eq!(sent["woke"], json!([run.clone()]));
    let record = server.until_status(&run, &["succeeded"]).await;
    let statuses: BTreeMap<String, String> = record["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| (s["id"].as_str().unwrap_or("").to_owned(), s["status"].as_str().unwrap_or("").to_owned()))
        .collect();
    for step in ["create_user", "send_verification", "wait_for_click", "start_onboarding", "verify"] {
        assert_eq!(statuses.get(step).map(String::as_str), Some("succeeded"), "{record}");
    }
}

/// The count of sandbox records of each kind, as `sagaflow sandbox show --format json` prints them.
fn sandbox(dir: &std::path::Path) -> Value {
    let out = super::harness::sagaflow()
        .args(["sandbox", "show", "--format", "json"])
        .current_dir(dir)
        .output()
        .expect("sandbox");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("json")
}

/// Kills `serve` while it opens the store (when sled writes its snapshot), at
/// several points of its start, and leaves what a kill in the middle of that
/// write leaves (an unfinished `snap.*.generating`): the next start must need
/// no hand repair.
fn kill_while_starting(dir: &std::path::Path) {
    for delay_ms in [0u64, 3, 8, 15, 25, 40, 70, 120] {
        let mut child = super::harness::sagaflow()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start serve");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    let unfinished = dir.join(".sagaflow").join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(unfinished, vec![0x5a; 4096]).expect("an unfinished snapshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_then_restart_every_run_finishes_and_no_effect_ran_twice() {
    let dir = folder(&[("ticker.yaml", TICKER)]);
    copy_business_workflows(dir.path());
    let happy = super::harness::repo().join("workflows/examples/order_placement/happy.json");
    let input: Value = serde_json::from_str(&std::fs::read_to_string(happy).expect("input")).expect("json");
    let server = Server::start(dir.path());
    let url = server.url.clone();
    // Four clients post orders without pause; the server is killed under them.
    let client = reqwest::Client::new();
    let posting: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), json!({ "input": input }));
            tokio::spawn(async move {
                let mut accepted = 0;
                while let Ok(r) =
                    client.post(format!("{url}/v1/workflows/order_placement/runs")).json(&body).send().await
                {
                    accepted += usize::from(r.status().as_u16() == 202);
                }
                accepted
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.kill();
    let mut accepted = 0;
    for p in posting {
        accepted += p.await.expect("client");
    }
    assert!(accepted >= 10, "runs were accepted before the kill: {accepted}");
    kill_while_starting(dir.path());

    let server = Server::start(dir.path());
    let (_, page) = server.get("/v1/runs?workflow=order_placement&limit=1000").await;
    let ids: Vec<String> =
        page["runs"].as_array().expect("runs").iter().filter_map(|r| r["run_id"].as_str().map(str::to_owned)).collect();
    assert!(ids.len() >= accepted, "every accepted run is in the store: {} of {accepted}", ids.len());
    let mut succeeded = 0;
    let mut statuses = BTreeMap::new();
    for id in &ids {
        let record = server.until_status(id, &["succeeded", "failed", "compensated", "compensation_failed"]).await;
        assert_ne!(record["status"], "compensation_failed", "{record}");
        succeeded += usize::from(record["status"] == "succeeded");
        statuses.insert(id.clone(), record);
    }
    assert!(succeeded > 0);
    let before = ticks_once_each(&server).await.len();
    server
        .until("/v1/runs?workflow=ticker&limit=1000", |p| p["runs"].as_array().is_some_and(|r| r.len() > before))
        .await;
    ticks_once_each(&server).await;
    assert_eq!(server.terminate(), Some(0));

    // The sandbox shows each effect once: one capture, one order, one mail and
    // two of each item reserved per run that succeeded; nothing of the others.
    let state = sandbox(dir.path());
    let rows = |service: &str, table: &str| state[service][table].as_array().cloned().unwrap_or_default();
    // Payments name their run (`reference`): each run that succeeded has one
    // capture, the others none (refunded or never charged).
    let mut captures: BTreeMap<String, usize> = BTreeMap::new();
    let mut captured = BTreeSet::new();
    for p in rows("payments", "payment").iter().filter(|p| p["status"] == "captured") {
        let run = p["reference"].as_str().unwrap_or("").to_owned();
        if statuses.contains_key(&run) {
            *captures.entry(run).or_default() += 1;
            captured.insert(p["payment_id"].as_str().unwrap_or("").to_owned());
        }
    }
    for (id, record) in &statuses {
        let want = usize::from(record["status"] == "succeeded");
        assert_eq!(captures.get(id).copied().unwrap_or(0), want, "captures of run {id}: {record}");
    }
    let orders = rows("orders", "order")
        .iter()
        .filter(|o| o["payment_id"].as_str().is_some_and(|p| captured.contains(p)))
        .count();
    assert_eq!(orders, succeeded);
    for product in rows("inventory", "product")
        .iter()
        .filter(|p| ["BOOK-001", "MUG-001"].contains(&p["sku"].as_str().unwrap_or("")))
    {
        assert_eq!(product["reserved"].as_u64(), Some(2 * succeeded as u64), "{product}");
    }
    let confirmations = rows("mail", "mail").iter().filter(|m| m["template"] == "order_confirmation").count();
    assert_eq!(confirmations, succeeded);
}
