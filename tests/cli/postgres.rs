//! The PostgreSQL store through the binary: `run`, `show`, `runs`, `sandbox
//! show` and `serve` with `--store postgres://...` (the sandbox services in the
//! same database), and the commands that work on sled alone saying so.

use std::path::Path;

use serde_json::Value;

#[path = "../../src/store/postgres/testing.rs"]
pub(crate) mod pg_testing;

use super::harness::{repo, sagaflow};
use super::server::{copy_business_workflows, folder, Server};

fn cli(dir: &Path, args: &[&str]) -> std::process::Output {
    sagaflow().current_dir(dir).args(args).output().expect("sagaflow")
}

fn json_of(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_and_their_sandbox_live_in_postgresql_from_the_cli_and_the_server() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let dir = folder(&[]);
    copy_business_workflows(dir.path());
    let d = dir.path();
    let happy = format!("@{}", repo().join("workflows/examples/order_placement/happy.json").display());

    // `run` on PostgreSQL: the order and its payment child, the sandbox in the same database.
    let ran = cli(d, &["run", "order_placement", "--input", &happy, "--store", &url, "--format", "json"]);
    let record = json_of(&ran);
    assert_eq!(record["status"], "succeeded", "{record}");
    let run_id = record["run_id"].as_str().expect("id").to_owned();
    assert!(!d.join(".sagaflow").exists(), "no sled directory was made");
    let shown = json_of(&cli(d, &["show", &run_id, "--store", &url, "--format", "json"]));
    assert_eq!(shown, record, "show reads back what run printed");
    let runs = json_of(&cli(d, &["runs", "--store", &url, "--format", "json"]));
    let workflows: Vec<&str> = runs.as_array().into_iter().flatten().filter_map(|r| r["workflow"].as_str()).collect();
    assert_eq!(workflows, ["payment", "order_placement"], "newest first: {runs}");
    let sandbox = json_of(&cli(d, &["sandbox", "show", "orders", "--store", &url, "--format", "json"]));
    assert_eq!(sandbox["orders"]["order"].as_array().map(Vec::len), Some(2), "the seed's and this one's: {sandbox}");

    // `serve` on the same database: it takes runs, and lists every run of the database.
    std::fs::write(d.join("sagaflow.toml"), format!("[store]\nurl = \"{url}\"\n")).expect("config");
    let server = Server::start(d);
    let input: Value = serde_json::from_str(&std::fs::read_to_string(&happy[1..]).expect("happy.json")).expect("json");
    let id = server.start_run("order_placement", input).await;
    let done = server.until_status(&id, &["succeeded", "failed", "compensated"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let (_, page) = server.get("/v1/runs?workflow=order_placement").await;
    assert_eq!(page["runs"].as_array().map(Vec::len), Some(2), "{page}");
    assert_eq!(server.terminate(), Some(0));
    let orders = json_of(&cli(d, &["sandbox", "show", "orders", "--format", "json"]));
    assert_eq!(orders["orders"]["order"].as_array().map(Vec::len), Some(3), "the config's store: {orders}");

    // A command that only reads joins as nothing: it has no worker flags.
    let reads = cli(d, &["runs", "--store", &url, "--worker-id", "w"]);
    assert!(!reads.status.success() && String::from_utf8_lossy(&reads.stderr).contains("--worker-id"), "{reads:?}");

    // A store of another kind is named.
    let other = cli(d, &["runs", "--store", "mysql://u@h/db"]);
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("is not a store: say sled:DIR or postgres://"),
        "{other:?}"
    );
}

const PAUSES: &str = "name: pauses
steps:
  - id: charge
    action: mock
    with: { fail_attempts: 1, error: unavailable, output: paid }
    on_error: pause
";

/// `store export` and `import` move a store between sled and PostgreSQL both
/// ways: the export lines are the same from either, and a paused run carried
/// over is taken up and finished on the other side.
#[test]
fn a_store_moves_from_sled_to_postgresql_and_back_line_for_line() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let dir = folder(&[("pauses.yaml", PAUSES)]);
    copy_business_workflows(dir.path());
    let d = dir.path();
    let happy = format!("@{}", repo().join("workflows/examples/order_placement/happy.json").display());
    let ok = |args: &[&str]| {
        let out = cli(d, args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["run", "order_placement", "--input", &happy]);
    let declined =
        cli(d, &["run", "order_placement", "--input", &happy, "--fail", "charge_payment/charge=card_declined"]);
    assert_eq!(declined.status.code(), Some(1));
    let paused = json_of(&cli(d, &["run", "pauses", "--format", "json"]));
    assert_eq!(paused["status"], "paused", "{paused}");
    let paused = paused["run_id"].as_str().expect("id").to_owned();

    ok(&["store", "export", "--output", "sled.jsonl"]);
    ok(&["store", "import", "sled.jsonl", "--store", &url]);
    ok(&["store", "export", "--store", &url, "--output", "pg.jsonl"]);
    let read = |name: &str| std::fs::read_to_string(d.join(name)).expect("an export");
    assert_eq!(read("pg.jsonl"), read("sled.jsonl"), "PostgreSQL exports what sled did, line for line");
    ok(&["store", "import", "pg.jsonl", "--data", "back"]);
    ok(&["store", "export", "--data", "back", "--output", "back.jsonl"]);
    assert_eq!(read("back.jsonl"), read("sled.jsonl"), "and back to sled, the same");
    let again = cli(d, &["store", "import", "sled.jsonl", "--store", &url]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"), "{again:?}");
    let check = ok(&["store", "check", "--store", &url]);
    assert!(check.contains("every record reads"), "{check}");

    // The paused run came over without an owner; a worker takes it up and finishes it.
    let done = json_of(&cli(d, &["retry", &paused, "--store", &url, "--format", "json"]));
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        json_of(&cli(d, &["show", &paused, "--format", "json"]))["status"],
        "paused",
        "sled's copy is as it was"
    );
}

const SLOWLY: &str = "name: slowly
steps:
  - { id: first, action: mock, with: { output: 1 } }
  - { id: nap, action: sleep, needs: [first], with: { for: 4s } }
  - { id: last, action: mock, needs: [nap], with: { output: done } }
";

/// Two `serve` workers on one database: one is killed while its run sleeps;
/// once its lease runs out the other declares it dead, claims the run and
/// finishes it from its journal (the sleep keeps its wake time, no step runs twice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_run_is_taken_over_and_finished_by_another() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let dir = folder(&[("slowly.yaml", SLOWLY)]);
    std::fs::write(dir.path().join("sagaflow.toml"), format!("[store]\nurl = \"{url}\"\n")).expect("config");
    let one = Server::start(dir.path());
    let two = Server::start(dir.path());
    let id = one.start_run("slowly", serde_json::json!({})).await;
    one.until_status(&id, &["waiting"]).await;
    let killed = std::time::Instant::now();
    one.kill();
    let done = two.until_status(&id, &["succeeded", "failed", "compensated"]).await;
    let took = killed.elapsed();
    assert_eq!(done["status"], "succeeded", "{done}");
    let attempts: Vec<u64> =
        done["steps"].as_array().into_iter().flatten().filter_map(|s| s["attempts"].as_u64()).collect();
    assert_eq!(attempts, [1, 1, 1], "no step ran twice: {done}");
    assert!(took < std::time::Duration::from_secs(15), "taken over in {took:?}");
    assert!(two.log().contains("took over runs"), "{}", two.log());

    // A worker that drains (SIGTERM) hands its runs over at once: no lease to wait out.
    let id = two.start_run("slowly", serde_json::json!({})).await;
    two.until_status(&id, &["waiting"]).await;
    let log_before = two.log().len();
    let log = two.log();
    let code = two.terminate();
    assert_eq!(code, Some(0), "{log}\n{}", std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default());
    let three = Server::start(dir.path());
    let done = three.until_status(&id, &["succeeded", "failed", "compensated"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let since = three.log().get(log_before..).unwrap_or_default().to_owned();
    assert!(!since.contains("lease ran out"), "handed over, not taken from a silent worker: {since}");
}

/// A restart of the database (every session ended) under a server costs it
/// nothing: it opens its connections again, its sleeping run wakes and
/// finishes, new runs start and finish, and it stays live (its lease was
/// renewed on a new connection: no fence, no takeover).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_outlives_a_restart_of_its_database() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let dir = folder(&[("slowly.yaml", SLOWLY)]);
    std::fs::write(dir.path().join("sagaflow.toml"), format!("[store]\nurl = \"{url}\"\n")).expect("config");
    let server = Server::start(dir.path());
    let sleeping = server.start_run("slowly", serde_json::json!({})).await;
    server.until_status(&sleeping, &["waiting"]).await;
    let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    let ended = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .expect("end the sessions");
    assert!(ended.len() >= 3, "the server's sessions (commits, lease, listening, reads): {}", ended.len());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = server.start_run("slowly", serde_json::json!({})).await;
    for id in [&sleeping, &started] {
        let done = server.until_status(id, &["succeeded", "failed", "compensated"]).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    let (status, health) = server.get("/healthz").await;
    assert_eq!(status, 200, "still live, not fenced: {health}\n{}", server.log());
    assert!(!server.log().contains("took over runs"), "{}", server.log());
}

const AWAITS: &str = "name: awaits
steps:
  - id: approval
    action: event.wait
    with: { type: approval.given, key: '{{input.request}}' }
    timeout: 1m
";

/// An event posted to one worker wakes a run another worker owns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_posted_to_one_worker_wakes_the_run_another_owns() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let dir = folder(&[("awaits.yaml", AWAITS)]);
    std::fs::write(dir.path().join("sagaflow.toml"), format!("[store]\nurl = \"{url}\"\n")).expect("config");
    let one = Server::start(dir.path());
    let two = Server::start(dir.path());
    let id = one.start_run("awaits", serde_json::json!({ "request": "r-7" })).await;
    one.until_status(&id, &["waiting"]).await;
    let event = serde_json::json!({ "type": "approval.given", "key": "r-7", "data": { "by": "ops" } });
    let (status, body) = two.post("/v1/events", event).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["woke"], serde_json::json!([id]), "listed by the worker asked, though another owns it");
    let done = one.until_status(&id, &["succeeded", "failed", "compensated"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"][0]["output"], serde_json::json!({ "by": "ops" }));
}

/// Cancels and operators' acts reach a run whichever worker is asked: the
/// one asked judges it on the journal and answers; the owner acts, once.
/// Waits and event streams follow a run another worker moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_cancelled_skipped_and_followed_through_a_worker_that_does_not_own_it() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let dir = folder(&[("awaits.yaml", AWAITS), ("pauses.yaml", PAUSES)]);
    std::fs::write(dir.path().join("sagaflow.toml"), format!("[store]\nurl = \"{url}\"\n")).expect("config");
    let one = Server::start(dir.path());
    let two = Server::start(dir.path());

    async fn keyed(server: &Server, wait: &str) -> (u16, Value) {
        let body = serde_json::json!({ "input": { "request": "r-1" } });
        let path = format!("/v1/workflows/awaits/runs{wait}");
        server.send(server.request(reqwest::Method::POST, &path).header("Idempotency-Key", "k-1").json(&body)).await
    }
    let (status, body) = keyed(&one, "").await;
    assert_eq!(status, 202, "{body}");
    let waiting = body["run_id"].as_str().unwrap_or_default().to_owned();
    one.until_status(&waiting, &["waiting"]).await;
    let (status, body) = two.post(&format!("/v1/runs/{waiting}/cancel?dry_run=true"), serde_json::json!({})).await;
    assert_eq!((status, body["dry_run"].clone()), (200, serde_json::json!(true)), "{body}");
    let (status, body) = two.post(&format!("/v1/runs/{waiting}/cancel"), serde_json::json!({})).await;
    assert_eq!(status, 202, "{body}");
    // The same key through the worker that does not own the run waits for its end.
    let (status, done) = keyed(&two, "?wait=20s").await;
    assert_eq!((status, done["error"]["code"].clone()), (200, serde_json::json!("cancelled")), "{done}");
    let (status, body) = two.post(&format!("/v1/runs/{waiting}/cancel"), serde_json::json!({})).await;
    assert_eq!(status, 409, "an ended run is not cancelled: {body}");

    let paused = one.start_run("pauses", serde_json::json!({})).await;
    one.until_status(&paused, &["paused"]).await;
    let (status, body) = two.post(&format!("/v1/runs/{paused}/retry"), serde_json::json!({ "step": "nope" })).await;
    assert_eq!(status, 409, "judged where asked: {body}");
    let stream = two.request(reqwest::Method::GET, &format!("/v1/runs/{paused}/events")).send();
    let skip = serde_json::json!({ "output": { "ok": true } });
    let (status, body) = two.post(&format!("/v1/runs/{paused}/skip"), skip).await;
    assert_eq!((status, body["step"].clone()), (202, serde_json::json!("charge")), "{body}");
    let done = two.until_status(&paused, &["succeeded", "failed", "compensated"]).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["steps"][0]["output"], serde_json::json!({ "ok": true }), "{done}");
    let text = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        stream.await.expect("stream").text().await.expect("body")
    })
    .await
    .expect("the stream of a run another worker owns ends when the run does");
    assert!(text.contains("event: end"), "{text}");
}

/// A run that `sagaflow run` moves on a shared store hears what any worker is
/// told: an event posted to a server wakes its wait (and is listed as woken),
/// a cancel asked of a server reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_the_cli_moves_is_woken_and_cancelled_through_a_server() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let dir = folder(&[("awaits.yaml", AWAITS)]);
    std::fs::write(dir.path().join("sagaflow.toml"), format!("[store]\nurl = \"{url}\"\n")).expect("config");
    let server = Server::start(dir.path());
    let run = |request: &str| {
        let input = serde_json::json!({ "request": request }).to_string();
        let args = ["run", "awaits", "--input", &input, "--format", "json"];
        let child = sagaflow().current_dir(dir.path()).args(args).stdout(std::process::Stdio::piped()).spawn();
        child.expect("sagaflow run")
    };
    async fn waiting(server: &Server, request: &str) -> String {
        for _ in 0..200 {
            let (_, page) = server.get("/v1/runs?workflow=awaits&status=waiting").await;
            let runs = page["runs"].as_array().cloned().unwrap_or_default();
            if let Some(r) = runs.iter().find(|r| r["input"]["request"] == request || runs.len() == 1) {
                return r["run_id"].as_str().unwrap_or_default().to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no run of the CLI waits");
    }
    let ended = |child: std::process::Child| {
        let out = child.wait_with_output().expect("sagaflow run ends");
        json_of(&out)
    };

    let woken = run("r-1");
    let id = waiting(&server, "r-1").await;
    let event = serde_json::json!({ "type": "approval.given", "key": "r-1", "data": { "by": "ops" } });
    let (status, body) = server.post("/v1/events", event).await;
    assert_eq!((status, body["woke"].clone()), (202, serde_json::json!([id])), "{body}");
    let record = tokio::task::spawn_blocking(move || ended(woken)).await.expect("joined");
    assert_eq!(
        (record["run_id"].as_str(), record["status"].as_str()),
        (Some(id.as_str()), Some("succeeded")),
        "{record}"
    );

    let cancelled = run("r-2");
    let id = waiting(&server, "r-2").await;
    let (status, body) = server.post(&format!("/v1/runs/{id}/cancel"), serde_json::json!({})).await;
    assert_eq!(status, 202, "{body}");
    let record = tokio::task::spawn_blocking(move || ended(cancelled)).await.expect("joined");
    assert_eq!(record["error"]["code"], "cancelled", "{record}");
}

/// `test` and `explore --crash` on PostgreSQL: every case and failure point in
/// a database of its own (a crash's run taken over by a new worker), dropped
/// after; the same verdicts as on sled.
#[test]
fn workflow_tests_and_failure_points_run_on_postgresql_as_on_sled() {
    let Some(url) = pg_testing::fresh_database() else { return };
    let test = cli(&repo(), &["test", "workflows/order_placement.test.yaml", "--store", &url]);
    let said = String::from_utf8_lossy(&test.stdout);
    assert!(
        test.status.success() && said.contains(" passed, 0 failed"),
        "{said}\n{}",
        String::from_utf8_lossy(&test.stderr)
    );
    let table = |store: &[&str]| {
        let mut args = vec!["explore", "order_placement", "--crash"];
        args.extend(store);
        let out = cli(&repo(), &args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        // Without the last line's time.
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().filter(|l| !l.contains(" points: ")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(table(&["--store", &url]), table(&[]));
    let sled = cli(&repo(), &["test", "workflows/order_placement.test.yaml", "--store", "sled:/tmp/x"]);
    assert!(String::from_utf8_lossy(&sled.stderr).contains("name a postgres:// server"), "{sled:?}");
    let left = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
            tokio::spawn(connection);
            let sql = "SELECT count(*) FROM pg_database WHERE datname LIKE 'sagaflow_scratch_%'";
            client.query_one(sql, &[]).await.expect("count").get::<_, i64>(0)
        })
    });
    assert_eq!(left.join().expect("count"), 0, "every scratch database was dropped");
}
