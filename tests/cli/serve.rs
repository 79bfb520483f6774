//! `sagaflow serve` through real HTTP on loopback: every route and error status.

use serde_json::{json, Value};

use super::harness::sagaflow;
use super::server::{folder, Server};

pub const FIVE: &str = "name: five
input:
  type: object
  required: [n]
  properties: { n: { type: integer } }
steps:
  - { id: a, action: mock, with: { output: { n: \"{{input.n}}\" } } }
  - { id: b, action: mock, with: { output: 2 } }
  - { id: c, action: mock, with: { output: 3 } }
  - { id: d, action: mock, with: { output: 4 } }
  - { id: e, action: mock, with: { output: 5 } }
output: { n: \"{{steps.a.output.n}}\" }
";

pub const WAITER: &str = "name: waiter
steps:
  - id: reserve
    action: mock
    with: { output: { held: true } }
    compensate: { action: mock, with: { output: released } }
  - id: hold
    action: event.wait
    with: { type: go, key: \"{{input.key}}\" }
    timeout: 1h
";

const SLOW: &str = "name: slow
steps:
  - { id: crawl, action: mock, with: { delay: 1500ms, output: done } }
";

fn run_path(id: &str) -> String {
    format!("/v1/runs/{id}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_start_wait_read_and_list_in_pages() {
    let dir = folder(&[("five.yaml", FIVE)]);
    let server = Server::start(dir.path());
    let (status, body) = server.post("/v1/workflows/five/runs?wait=10s", json!({"input": {"n": 7}})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["output"], json!({"n": 7}));
    assert_eq!(body["steps"].as_array().map(Vec::len), Some(5));
    let first = body["run_id"].as_str().expect("id").to_owned();
    let (status, _) = server.get(&run_path(&first)).await;
    assert_eq!(status, 200);
    let mut ids = vec![first];
    for n in 0..4 {
        ids.push(server.start_run("five", json!({ "n": n })).await);
    }
    for id in &ids {
        server.until_status(id, &["succeeded"]).await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/runs?limit=2&workflow=five&status=succeeded".to_owned();
    loop {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        let runs = page["runs"].as_array().expect("runs");
        assert!(runs.len() <= 2);
        seen.extend(runs.iter().map(|r| r["run_id"].as_str().unwrap_or("").to_owned()));
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/runs?limit=2&workflow=five&status=succeeded&cursor={next}"),
            None => break,
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    let (_, none) = server.get("/v1/runs?workflow=other").await;
    assert_eq!(none["runs"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_gives_the_same_run() {
    let dir = folder(&[("five.yaml", FIVE)]);
    let server = Server::start(dir.path());
    let post = |n: i64, key: &str| {
        server
            .request(reqwest::Method::POST, "/v1/workflows/five/runs")
            .header("Idempotency-Key", key)
            .json(&json!({"input": {"n": n}}))
    };
    let (s1, a) = server.send(post(1, "order-17")).await;
    let (s2, b) = server.send(post(1, "order-17")).await;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a["run_id"], b["run_id"]);
    assert_eq!((a["created"].clone(), b["created"].clone()), (json!(true), json!(false)));
    assert_eq!(a["status"], "running", "as its first commit wrote it: {a}");
    let later = b["status"].as_str().unwrap_or_default();
    assert!(["running", "succeeded"].contains(&later), "as the store says now: {b}");
    let (s3, other) = server.send(post(1, "order-18")).await;
    assert_eq!(s3, 202);
    assert_ne!(other["run_id"], a["run_id"]);
    let (s4, conflict) = server.send(post(2, "order-17")).await;
    assert_eq!(s4, 409, "{conflict}");
    assert_eq!(conflict["error"]["code"], "conflict");
    let (s5, long) = server.send(post(1, &"k".repeat(300))).await;
    assert_eq!(s5, 400, "{long}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_an_error_that_says_what() {
    let broken = "name: broken\nsteps:\n  - { id: a, action: nope }\n";
    let dir = folder(&[("five.yaml", FIVE), ("broken.yaml", broken)]);
    let server = Server::start(dir.path());
    let raw = |body: &'static str, content_type: &'static str| {
        server.request(reqwest::Method::POST, "/v1/workflows/five/runs").header("content-type", content_type).body(body)
    };
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (raw("{\"input\": ", "application/json"), 400, "bad_json"),
        (raw("{\"input\": {}}", "text/plain"), 415, "unsupported_media_type"),
        (raw("{\"inputs\": {}}", "application/json"), 400, "bad_request"),
        (raw("{\"input\": {\"n\": \"seven\"}}", "application/json"), 400, "invalid_input"),
        (
            server
                .request(reqwest::Method::POST, "/v1/workflows/five/runs")
                .header("content-type", "application/json")
                .body(format!("{{\"input\": {{\"n\": 1, \"pad\": \"{}\"}}}}", "x".repeat(2 * 1024 * 1024))),
            413,
            "too_large",
        ),
        (
            server
                .request(reqwest::Method::POST, "/v1/validate")
                .body(format!("name: x\n#{}\n", "x".repeat(3 * 1024 * 1024))),
            413,
            "too_large",
        ),
        (server.request(reqwest::Method::POST, "/v1/workflows/fiv/runs").json(&json!({})), 404, "not_found"),
        (server.request(reqwest::Method::POST, "/v1/workflows/broken/runs").json(&json!({})), 422, "workflow_invalid"),
        (
            server.request(reqwest::Method::POST, "/v1/workflows/five/runs?wait=forever").json(&json!({})),
            400,
            "bad_request",
        ),
        (server.request(reqwest::Method::GET, "/v1/runs/nope"), 404, "not_found"),
        (server.request(reqwest::Method::GET, "/v1/runs?limit=0"), 400, "bad_request"),
        (server.request(reqwest::Method::GET, "/v1/runs?status=sucess"), 400, "bad_request"),
        (server.request(reqwest::Method::GET, "/v1/runs?cursor=%25%25"), 400, "bad_request"),
        (server.request(reqwest::Method::GET, "/v1/runs?colour=red"), 400, "bad_request"),
        (server.request(reqwest::Method::GET, "/v2/nothing"), 404, "not_found"),
        (server.request(reqwest::Method::DELETE, "/v1/runs"), 405, "method_not_allowed"),
        (server.request(reqwest::Method::POST, "/v1/events").json(&json!({"type": "Not A Type"})), 400, "bad_request"),
        (server.request(reqwest::Method::POST, "/v1/events").json(&json!({"key": "k"})), 400, "bad_request"),
        (server.request(reqwest::Method::POST, "/v1/runs/nope/cancel"), 404, "not_found"),
    ];
    for (request, want_status, want_code) in cases {
        let (status, body) = server.send(request).await;
        assert_eq!(status, want_status, "{body}");
        assert_eq!(body["error"]["code"], want_code, "{body}");
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    }
    let (_, body) = server.post("/v1/workflows/fiv/runs", json!({})).await;
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("did you mean `five`?"), "{body}");
    let (_, body) = server.get("/v1/runs?status=succeded").await;
    assert!(body["error"]["message"].as_str().unwrap_or("").contains("did you mean `succeeded`?"), "{body}");
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200, "the server is still up:\n{}", server.log());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_wake_waits_streams_follow_and_cancel_rolls_back() {
    let dir = folder(&[("waiter.yaml", WAITER)]);
    let server = Server::start(dir.path());
    let a = server.start_run("waiter", json!({"key": "a"})).await;
    let b = server.start_run("waiter", json!({"key": "b"})).await;
    server.until_status(&a, &["waiting"]).await;
    server.until_status(&b, &["waiting"]).await;
    let stream = server.request(reqwest::Method::GET, &format!("/v1/runs/{a}/events")).send().await.expect("stream");
    assert_eq!(stream.status().as_u16(), 200);
    assert!(stream.headers()["content-type"].to_str().unwrap_or("").starts_with("text/event-stream"));
    let followed = tokio::spawn(async move { stream.text().await.unwrap_or_default() });
    let (status, sent) = server.post("/v1/events", json!({"type": "go", "key": "a", "data": {"ok": 1}})).await;
    assert_eq!(status, 202, "{sent}");
    assert_eq!(sent["woke"], json!([a.clone()]));
    let record = server.until_status(&a, &["succeeded"]).await;
    assert_eq!(record["steps"][1]["output"], json!({"ok": 1}));
    let text = tokio::time::timeout(std::time::Duration::from_secs(20), followed)
        .await
        .expect("the stream ends")
        .expect("text");
    assert!(text.contains("event: transition"), "{text}");
    assert!(text.contains("\"step_id\":\"hold\""), "{text}");
    assert!(text.contains("\"type\":\"attempt_finished\""), "{text}");
    let end = text.split("event: end\ndata: ").nth(1).expect("an end event");
    let end: Value = serde_json::from_str(end.trim()).expect("the end carries the run record");
    assert_eq!(end["status"], "succeeded");

    let (status, body) = server.post(&format!("/v1/runs/{b}/cancel"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    let record = server.until_status(&b, &["compensated"]).await;
    assert_eq!(record["compensations"][0]["step"], "reserve");
    let (status, body) = server.post(&format!("/v1/runs/{b}/cancel"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = server.get(&format!("/v1/runs/{b}/events")).await;
    assert_eq!(status, 200, "an ended run's stream is its history, then the end");
    assert!(body.as_str().unwrap_or("").contains("event: end"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_requests_are_bounded_and_a_closed_stream_gives_its_place_back() {
    let dir = folder(&[("waiter.yaml", WAITER)]);
    let server = Server::start_with(dir.path(), &["--max-streams", "1"], None);
    let a = server.start_run("waiter", json!({"key": "a"})).await;
    server.until_status(&a, &["waiting"]).await;
    let events = format!("/v1/runs/{a}/events");
    let first = server.request(reqwest::Method::GET, &events).send().await.expect("stream");
    assert_eq!(first.status().as_u16(), 200);
    let (status, body) = server.get(&events).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("too_many_streams")), "{body}");
    let metrics = server.request(reqwest::Method::GET, "/metrics").send().await.expect("metrics");
    let metrics = metrics.text().await.unwrap_or_default();
    assert!(metrics.contains("\nsagaflow_long_requests_open 1\n"), "{metrics}");
    let (status, body) = server.post("/v1/workflows/waiter/runs?wait=1s", json!({"input": {"key": "w"}})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("too_many_streams")), "{body}");
    let (_, listed) = server.get("/v1/runs?workflow=waiter").await;
    assert_eq!(listed["runs"].as_array().map(Vec::len), Some(1), "a refused wait starts no run: {listed}");
    drop(first);
    let mut again = 0;
    for _ in 0..100 {
        let response = server.request(reqwest::Method::GET, &events).send().await.expect("stream");
        again = response.status().as_u16();
        if again == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(again, 200, "the closed stream's place is free again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_validate_health_metrics_and_openapi() {
    let last = "name: last\nsteps:\n  - id: a\n    action: mock\non_failure:\n  - id: b\n    action: mock\nfinally:\n  - id: c\n    action: mock\n";
    let dir = folder(&[("five.yaml", FIVE), ("waiter.yaml", WAITER), ("last.yaml", last)]);
    let server = Server::start(dir.path());
    server.post("/v1/workflows/five/runs?wait=10s", json!({"input": {"n": 1}})).await;
    let (status, list) = server.get("/v1/workflows").await;
    assert_eq!(status, 200);
    let names: Vec<&str> =
        list["workflows"].as_array().expect("list").iter().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(names, vec!["five", "last", "waiter"]);
    let (_, lists) = server.get("/v1/workflows/last").await;
    let sections: Vec<&str> =
        lists["steps"].as_array().expect("steps").iter().filter_map(|s| s["section"].as_str()).collect();
    assert_eq!(sections, ["steps", "on_failure", "finally"], "each step says its list (the console draws each apart)");
    assert_eq!(list["workflows"][0]["state"], "active");
    let (status, five) = server.get("/v1/workflows/five").await;
    assert_eq!(status, 200);
    assert_eq!(five["steps"][1]["needs"], json!(["a"]));
    assert_eq!(five["input"]["required"], json!(["n"]));
    let (_, waiter) = server.get("/v1/workflows/waiter").await;
    assert_eq!(waiter["steps"][0]["compensate"], "mock");

    let response = server
        .request(reqwest::Method::POST, "/v1/validate?file=mine.yaml")
        .header("content-type", "application/yaml")
        .body("name: mine\nsteps:\n  - id: a\n    action: mok\n")
        .send()
        .await
        .expect("validate");
    assert_eq!(response.status().as_u16(), 200);
    let report: Value = response.json().await.expect("json");
    assert_eq!(report["errors"], 1, "{report}");
    let d = &report["diagnostics"][0];
    assert_eq!(
        (d["file"].as_str(), d["line"].as_u64(), d["column"].as_u64()),
        (Some("mine.yaml"), Some(4), Some(13)),
        "{d}"
    );
    assert_eq!(d["help"], "did you mean `mock`?");

    let (status, health) = server.get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
    let metrics =
        server.request(reqwest::Method::GET, "/metrics").send().await.expect("metrics").text().await.expect("text");
    for line in [
        "sagaflow_runs{workflow=\"five\",status=\"succeeded\"} 1",
        "sagaflow_step_attempts_total 5",
        "# TYPE sagaflow_step_latency_seconds histogram",
        "sagaflow_step_latency_seconds_count 5",
        "sagaflow_retries_total 0",
        "sagaflow_compensations_total 0",
        "sagaflow_queue_depth 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let (status, spec) = server.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(spec["openapi"].as_str().unwrap_or("").starts_with("3."), "{spec}");
    for path in [
        "/v1/workflows/{name}/runs",
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/cancel",
        "/v1/runs/{id}/events",
        "/v1/events",
        "/v1/workflows",
        "/v1/workflows/{name}",
        "/v1/validate",
        "/healthz",
        "/metrics",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} in the OpenAPI file");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_route_but_healthz() {
    let dir = folder(&[("five.yaml", FIVE)]);
    let server = Server::start_with(dir.path(), &[], Some("s3cret"));
    let bare = reqwest::Client::new();
    let get = |path: &str| bare.get(format!("{}{path}", server.url));
    assert_eq!(get("/healthz").send().await.expect("health").status().as_u16(), 200);
    for path in ["/v1/workflows", "/v1/runs", "/metrics", "/openapi.json"] {
        let response = get(path).send().await.expect("response");
        assert_eq!(response.status().as_u16(), 401, "{path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized");
        let wrong = get(path).bearer_auth("guess").send().await.expect("response");
        assert_eq!(wrong.status().as_u16(), 403, "{path}");
    }
    let (status, _) = server.get("/v1/workflows").await;
    assert_eq!(status, 200, "with the token");
    let page = get("/").send().await.expect("console");
    assert_eq!(page.status().as_u16(), 401);
    assert!(page.text().await.unwrap_or_default().contains("token"), "the console asks for the token");
    let page = get("/").header("cookie", "sagaflow_token=s3cret").send().await.expect("console");
    assert_eq!(page.status().as_u16(), 200);
}

#[test]
fn listening_off_loopback_needs_a_token() {
    let dir = folder(&[("five.yaml", FIVE)]);
    let out = sagaflow()
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("SAGAFLOW_API_TOKEN")
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("needs a token: set SAGAFLOW_API_TOKEN"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_data_is_refused_by_name() {
    let dir = folder(&[("five.yaml", FIVE)]);
    let server = Server::start(dir.path());
    let out = sagaflow().args(["serve", "--listen", "127.0.0.1:0"]).current_dir(dir.path()).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is in use by another sagaflow process (pid "), "{stderr}");
    assert!(stderr.contains("serve --listen 127.0.0.1:0"), "names the holder's command: {stderr}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_then_the_next_start_finishes_the_run() {
    let dir = folder(&[("slow.yaml", SLOW), ("five.yaml", FIVE)]);
    let server = Server::start(dir.path());
    let run = server.start_run("slow", json!({})).await;
    server.until_status(&run, &["running"]).await;
    let url = server.url.clone();
    let stopping = std::thread::spawn(move || server.terminate());
    let client = reqwest::Client::new();
    let mut refused = None;
    for _ in 0..200 {
        let post = client.post(format!("{url}/v1/workflows/five/runs")).json(&json!({"input": {"n": 1}})).send().await;
        match post {
            Ok(r) if r.status().as_u16() == 503 => {
                refused = Some(r.json::<Value>().await.expect("json"));
                break;
            }
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            Err(_) => break,
        }
    }
    let refused = refused.expect("a request while draining gets 503");
    assert_eq!(refused["error"]["code"], "draining");
    assert_eq!(stopping.join().expect("stopped"), Some(0), "a drain ends with exit 0");
    let server = Server::start(dir.path());
    let record = server.until_status(&run, &["succeeded"]).await;
    assert_eq!(record["steps"][0]["status"], "succeeded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_shows_and_lists_through_the_server() {
    let dir = folder(&[("five.yaml", FIVE)]);
    let server = Server::start_with(dir.path(), &[], Some("cli-token"));
    let url = server.url.clone();
    let cli = |args: &[&str]| {
        sagaflow().args(args).env("SAGAFLOW_API_TOKEN", "cli-token").current_dir(dir.path()).output().expect("run")
    };
    let out = cli(&["run", "five", "--server", &url, "--input", "{\"n\": 3}", "--format", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let record: Value = serde_json::from_slice(&out.stdout).expect("a run record");
    assert_eq!((record["status"].as_str(), &record["output"]), (Some("succeeded"), &json!({"n": 3})));
    let id = record["run_id"].as_str().expect("id");
    let out = cli(&["run", "workflows/five.yaml", "--server", &url, "--input", "{\"n\": 4}"]);
    assert_eq!(out.status.code(), Some(0), "a file names its workflow: {}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["show", id, "--server", &url, "--format", "json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["run_id"], record["run_id"]);
    let out = cli(&["runs", "--server", &url, "--format", "json", "--workflow", "five"]);
    let listed: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert_eq!(listed[1]["run_id"], record["run_id"], "newest first, as without --server");
    let out = cli(&["run", "fiv", "--server", &url]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(404): there is no workflow `fiv`; did you mean `five`?"));
    let out = sagaflow().args(["runs", "--server", &url]).env_remove("SAGAFLOW_API_TOKEN").output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("(401)"), "{}", String::from_utf8_lossy(&out.stderr));
}
