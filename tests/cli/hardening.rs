//! Faults and abuse found under test (issue #14), each reproduced through the
//! binary or over HTTP on loopback.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::harness::Test;
use super::server::{folder, Server};

/// A workflow of `n` steps whose `needs` form one circle.
fn cycle(n: usize) -> String {
    let mut yaml = String::from("name: circle\nsteps:\n");
    for i in 0..n {
        let _ = write!(yaml, "  - id: s{i}\n    action: mock\n    needs: [s{}]\n", (i + 1) % n);
    }
    yaml
}

/// A workflow whose `input:` schema is a chain of `n` `$ref`s.
fn ref_chain(n: usize) -> String {
    ref_chain_spelled(n, |i| format!("#/$defs/a{i}"), false)
}

/// How the `$ref` to the i-th schema is written.
type Spelling = fn(usize) -> String;

/// The same, each reference written by `spell` (a pointer, an `$anchor`, ...).
fn ref_chain_spelled(n: usize, spell: Spelling, anchors: bool) -> String {
    let mut yaml = format!("name: refs\ninput:\n  $ref: \"{}\"\n  $defs:\n", spell(0));
    for i in 0..n - 1 {
        let anchor = if anchors { format!("$anchor: a{i}, ") } else { String::new() };
        let _ = writeln!(yaml, "    a{i}: {{ {anchor}$ref: \"{}\" }}", spell(i + 1));
    }
    let _ = writeln!(yaml, "    a{}: {{ type: object }}", n - 1);
    yaml.push_str("steps:\n  - id: a\n    action: mock\n");
    yaml
}

const CHAIN_ERROR: &str =
    "`input` has a chain of 100 `$ref`s, each pointing at a schema that holds the next; at most 32 are taken";

#[test]
fn a_circle_of_4000_needs_is_one_diagnostic_not_a_crash() {
    let output = Test::new()
        .file("circle.yaml", cycle(4000))
        .args(&["validate", "circle.yaml", "--format", "json"])
        .status(1)
        .run();
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let diagnostics = report["diagnostics"].as_array().expect("diagnostics");
    assert_eq!(diagnostics.len(), 1, "{report}");
    assert_eq!(diagnostics[0]["code"], "cycle");
    let message = diagnostics[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("s0 → s1 → ") && message.contains("… 3989 more …") && message.ends_with("s3999 → s0"),
        "{message}"
    );
}

#[test]
fn a_chain_of_25000_refs_in_input_is_refused_by_validate_and_run() {
    let output = Test::new()
        .file("refs.yaml", ref_chain(25_000))
        .args(&["validate", "refs.yaml", "--format", "json"])
        .status(1)
        .run();
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["diagnostics"][0]["code"], "invalid-input-schema", "{report}");
    assert_eq!(report["diagnostics"][0]["message"], "`input` holds 25000 `$ref`s; at most 256 are taken");
    // Through anchors and percent-encoded pointers too, which the chain measure does not follow.
    let spellings: [(Spelling, bool); 2] = [(|i| format!("#a{i}"), true), (|i| format!("#/%24defs/a{i}"), false)];
    for (spell, anchors) in spellings {
        let output = Test::new()
            .file("refs.yaml", ref_chain_spelled(15_000, spell, anchors))
            .args(&["validate", "refs.yaml", "--format", "json"])
            .status(1)
            .run();
        let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
        assert_eq!(report["diagnostics"][0]["message"], "`input` holds 15000 `$ref`s; at most 256 are taken");
    }
    let output = Test::new()
        .file("refs.yaml", ref_chain(100))
        .args(&["validate", "refs.yaml", "--format", "json"])
        .status(1)
        .run();
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    assert_eq!(report["diagnostics"][0]["message"], CHAIN_ERROR);
    let output =
        Test::new().file("refs.yaml", ref_chain(25_000)).args(&["run", "refs.yaml", "--input", "{}"]).status(2).run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid-input-schema"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_survives_a_circle_and_a_ref_chain_in_its_folder_and_in_post_validate() {
    let dir = folder(&[("circle.yaml", &cycle(4000)), ("refs.yaml", &ref_chain(25_000)), ("ok.yaml", OK)]);
    let server = Server::start(dir.path());
    let (status, body) = server.get("/v1/workflows/circle").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("invalid")), "{body}");
    let (status, body) = server.get("/v1/workflows/refs").await;
    assert_eq!((status, body["state"].as_str()), (200, Some("invalid")), "{body}");
    for text in [cycle(4000), ref_chain(25_000)] {
        let request = server.request(reqwest::Method::POST, "/v1/validate").header("content-type", "application/yaml");
        let (status, body) = server.send(request.body(text)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["errors"], 1, "{body}");
    }
    let id = server.start_run("ok", json!({})).await;
    server.until_status(&id, &["succeeded"]).await;
}

const OK: &str = "name: ok\nsteps:\n  - id: a\n    action: mock\n";

#[cfg(unix)]
#[test]
fn a_fifo_named_like_a_workflow_is_a_diagnostic_not_a_hang() {
    let mut test = Test::new().file("workflows/ok.yaml", OK);
    let dir = test.path_buf();
    let fifo = dir.join("workflows/pipe.yaml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let output = test.args(&["validate", "workflows", "--format", "json"]).status(1).run();
    let report: Value = serde_json::from_slice(&output.stdout).expect("a JSON report");
    let d = &report["diagnostics"][0];
    assert_eq!(d["code"], "io", "{report}");
    assert_eq!(d["message"], "cannot read the file: it is a FIFO (named pipe), not a regular file");
    assert!(d["file"].as_str().unwrap_or_default().ends_with("pipe.yaml"), "{report}");
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_and_reloads_with_a_fifo_in_its_folder() {
    let dir = folder(&[("ok.yaml", OK)]);
    let made = std::process::Command::new("mkfifo").arg(dir.path().join("workflows/pipe.yaml")).status();
    assert!(made.expect("mkfifo").success());
    let server = Server::start(dir.path());
    let id = server.start_run("ok", json!({})).await;
    server.until_status(&id, &["succeeded"]).await;
    std::fs::write(dir.path().join("workflows/later.yaml"), OK.replace("name: ok", "name: later")).expect("write");
    server.until("/v1/workflows/later", |b| b["state"] == "active").await;
}

/// A run that sends its confirmation last: a cancel after that must not roll it back.
const CONFIRM: &str = "name: confirm
steps:
  - id: charge
    action: mock
    with: { delay: 20ms, output: { charged: true } }
    compensate: { action: mock, with: { output: refunded } }
  - id: confirm
    action: mock
    with: { output: sent }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_after_every_step_ended_answers_409_and_never_undoes_the_run() {
    let dir = folder(&[("confirm.yaml", CONFIRM)]);
    let server = Server::start(dir.path());
    let (mut accepted, mut refused) = (0, 0);
    for i in 0..100 {
        let id = server.start_run("confirm", json!({})).await;
        if i % 2 == 1 {
            // Long enough for the run to have ended: the cancel comes late.
            tokio::time::sleep(std::time::Duration::from_millis(80)).await;
        }
        let (status, body) = server.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
        let record = server.until_status(&id, &["succeeded", "compensated", "failed"]).await;
        match status {
            202 => {
                accepted += 1;
                assert_ne!(record["status"], "succeeded", "a cancel taken rolls back: {record}");
                let confirm = &record["steps"][1];
                assert_ne!(confirm["status"], "succeeded", "rolled back after the confirmation went out: {record}");
            }
            409 => {
                refused += 1;
                assert_eq!(record["status"], "succeeded", "a refused cancel leaves the run as it was: {record}");
                let message = body["error"]["message"].as_str().unwrap_or_default();
                assert!(message.contains("has ended (succeeded)") || message.contains("every step"), "{message}");
                assert_eq!(body["error"]["code"], "conflict", "{body}");
                let said = body["error"]["status"].as_str().unwrap_or_default();
                assert!(["running", "succeeded"].contains(&said), "{body}");
            }
            other => panic!("cancel answered {other}: {body}"),
        }
    }
    // Both answers come, by timing; what never happens is a roll-back after the last step.
    assert!(accepted > 0 && refused > 0, "accepted {accepted}, refused {refused}");
}

const LEAK: &str = "pl4nted-leak-t0ken-9f2c";

/// The company's inventory service, careless: its answer and its error body
/// echo the `Authorization` header it got.
async fn echoing_service() -> String {
    use axum::http::HeaderMap;
    use axum::routing::post;
    let echo =
        |headers: &HeaderMap| headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let app = axum::Router::new()
        .route(
            "/reserve",
            post(move |headers: HeaderMap| async move {
                axum::Json(json!({"reservation_id": echo(&headers), "sku": "BOOK-001", "quantity": 1, "available": 2}))
            }),
        )
        .route(
            "/release",
            post(move |headers: HeaderMap| async move {
                let body =
                    json!({"error": {"code": "invalid_input", "message": format!("token {} refused", echo(&headers))}});
                (axum::http::StatusCode::BAD_REQUEST, axum::Json(body))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

const LEAKY: &str = "name: leaky
steps:
  - id: reserve
    action: inventory.reserve
    with: { sku: BOOK-001, quantity: 1 }
  - id: copy
    action: mock
    with: { output: { token: \"{{secrets.LEAK_TOKEN}}\", said: \"key {{secrets.LEAK_TOKEN}} here\" } }
  - id: release
    action: inventory.release
    with: { reservation_id: r-1 }
    needs: [copy]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_echoed_by_a_service_or_copied_by_a_template_is_masked_everywhere() {
    let service = echoing_service().await;
    let dir = folder(&[("leaky.yaml", LEAKY)]);
    let config =
        format!("[services.inventory]\nbackend = \"http\"\nbase_url = \"{service}\"\nbearer_secret = \"LEAK_TOKEN\"\n");
    std::fs::write(dir.path().join("sagaflow.toml"), config).expect("config");
    let server = Server::start_env(dir.path(), &[], None, &[("SAGAFLOW_SECRET_LEAK_TOKEN", LEAK)]);
    let (status, record) = server.post("/v1/workflows/leaky/runs?wait=30s", json!({"input": {}})).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "failed", "{record}");
    let id = record["run_id"].as_str().expect("id").to_owned();
    assert_eq!(record["steps"][0]["output"]["reservation_id"], "Bearer ***", "{record}");
    assert_eq!(record["steps"][1]["output"], json!({"token": "***", "said": "key *** here"}));
    assert_eq!(
        record["steps"][2]["error"]["message"].as_str().map(|m| m.contains("token Bearer *** refused")),
        Some(true),
        "{record}"
    );
    let (_, again) = server.get(&format!("/v1/runs/{id}")).await;
    let stream = server.request(reqwest::Method::GET, &format!("/v1/runs/{id}/events")).send().await.expect("stream");
    let events = stream.text().await.expect("events");
    assert!(events.contains("event: end"), "{events}");
    let (_, listed) = server.get("/v1/runs?workflow=leaky").await;
    for (what, text) in
        [("the answer", record.to_string()), ("GET", again.to_string()), ("SSE", events), ("list", listed.to_string())]
    {
        assert!(!text.contains(LEAK), "{what} holds the secret: {text}");
    }
    assert!(server.terminate().is_some_and(|code| code == 0));
    for file in walk(dir.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!bytes.windows(LEAK.len()).any(|w| w == LEAK.as_bytes()), "{} holds the secret", file.display());
    }
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
    assert!(log.contains("***") && log.contains("INFO"), "the log was written at INFO and masked: {log}");
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let entries = walkdir::WalkDir::new(dir).into_iter().filter_map(Result::ok);
    entries.filter(|e| e.file_type().is_file()).map(walkdir::DirEntry::into_path).collect()
}

/// Reads a connection until the server closes it (or `within` passes); answers what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, within: std::time::Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(within, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    });
    read.await.ok().map(|()| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_dropped_and_everyone_else_is_served() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let dir = folder(&[("ok.yaml", OK)]);
    let server = Server::start(dir.path());
    let addr = server.url.trim_start_matches("http://").to_owned();
    // 300 clients trickling a request's headers, one that went idle after a request, one trickling a body.
    let mut trickling = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.expect("write");
        trickling.push(s);
    }
    let mut idle = TcpStream::connect(&addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("write");
    let mut body = TcpStream::connect(&addr).await.expect("connect");
    let head = "POST /v1/workflows/ok/runs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"in";
    body.write_all(head.as_bytes()).await.expect("write");
    // Everyone else is served meanwhile.
    let id = server.start_run("ok", json!({})).await;
    server.until_status(&id, &["succeeded"]).await;
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    let open = metrics.as_str().unwrap_or_default().lines().find(|l| l.starts_with("sagaflow_connections_open "));
    let open: u64 = open.and_then(|l| l.split(' ').nth(1)).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(open >= 302, "the slow connections are open: {open}");
    // Then the server drops them: headers and idle connections after 10 s, the body after 30 s.
    let within = std::time::Duration::from_secs(25);
    for s in trickling.iter_mut().take(5).chain([&mut idle]) {
        let said = read_until_closed(s, within).await;
        assert!(said.is_some(), "a slow or idle connection was not closed in 25 s");
    }
    let said = read_until_closed(&mut body, std::time::Duration::from_secs(45)).await.expect("closed");
    assert!(said.starts_with("HTTP/1.1 408") && said.contains("request_timeout"), "{said}");
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_the_limit_is_answered_503_at_once() {
    let dir = folder(&[("ok.yaml", OK)]);
    let server = Server::start_with(dir.path(), &["--max-connections", "4"], None);
    let addr = server.url.trim_start_matches("http://").to_owned();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tokio::net::TcpStream::connect(&addr).await.expect("connect"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut extra = tokio::net::TcpStream::connect(&addr).await.expect("connect");
    let said = read_until_closed(&mut extra, std::time::Duration::from_secs(5)).await.expect("answered at once");
    assert!(said.starts_with("HTTP/1.1 503") && said.contains("too_many_connections"), "{said}");
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let response = reqwest::get(format!("{}/healthz", server.url)).await;
        if response.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the server did not take connections again");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// A small file system of its own (tmpfs), unmounted when dropped. Mounting
/// needs root, which CI has; elsewhere the test says so and does nothing.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(at: &std::path::Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(at).expect("mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            assert!(std::env::var("CI").as_deref() != Ok("true"), "CI runs as root and must be able to mount a tmpfs");
            eprintln!("skipped: cannot mount a tmpfs here (not root)");
            return None;
        }
        Some(SmallDisk(at.to_owned()))
    }

    /// Fills the disk to its last byte with one file; answers its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        while file.write_all(&chunk).is_ok() {}
        let byte = [0u8; 1];
        while file.write_all(&byte).is_ok() {}
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

const SLOWISH: &str = "name: slowish
steps:
  - id: a
    action: mock
    with: { delay: 1500ms, output: 1 }
  - id: b
    action: mock
    with: { output: 2 }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_the_engine_goes_on_by_itself_when_space_comes_back() {
    let dir = folder(&[("slowish.yaml", SLOWISH)]);
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), "48m") else { return };
    let data = disk.0.join("data");
    let data_arg = data.to_string_lossy().into_owned();
    let server = Server::start_with(dir.path(), &["--data", &data_arg], None);
    let before = server.start_run("slowish", json!({})).await;
    let filler = disk.fill();
    // New work is refused plainly; the run in flight waits for the disk.
    let (status, body) = server.post("/v1/workflows/slowish/runs", json!({"input": {}})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("storage_unavailable")), "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("no space left on the device"), "{message}");
    let response =
        server.request(reqwest::Method::POST, "/v1/events").json(&json!({"type": "x.y"})).send().await.expect("answer");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let (status, health) = server.get("/healthz").await;
    assert_eq!((status, health["status"].as_str()), (503, Some("storage_unavailable")), "{health}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("sagaflow_storage_available 0"), "{metrics}");
    let (_, record) = server.get(&format!("/v1/runs/{before}")).await;
    assert_ne!(record["status"], "succeeded", "the step's end could not be written yet: {record}");
    // Space comes back: everything goes on, nothing lost or doubled.
    std::fs::remove_file(filler).expect("free the disk");
    let record = server.until_status(&before, &["succeeded"]).await;
    assert_eq!(record["steps"][0]["attempts"], 1, "{record}");
    server.until("/healthz", |h| h["status"] == "ok").await;
    let after = server.start_run("slowish", json!({})).await;
    server.until_status(&after, &["succeeded"]).await;
    assert_eq!(server.terminate(), Some(0));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sagaflow"))
        .args(["store", "check", "--data", &data_arg])
        .output()
        .expect("check");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stdout));
    drop(disk);
}

#[test]
fn the_cli_calls_a_full_disk_by_its_name() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(disk) = SmallDisk::mount(&dir.path().join("disk"), "24m") else { return };
    let data = disk.0.join("data");
    let _filler = disk.fill();
    let output = Test::in_dir(dir.path())
        .file("ok.yaml", OK)
        .args(&["run", "ok.yaml", "--data", &data.to_string_lossy()])
        .status(2)
        .run();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no space left on the device"), "{stderr}");
    assert!(!stderr.contains("not a sagaflow data directory"), "{stderr}");
    drop(disk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json_and_an_empty_validate_body_is_refused() {
    let dir = folder(&[("ok.yaml", OK)]);
    let server = Server::start(dir.path());
    for path in ["/v1/runs/%FF%FE", "/v1/runs?status=%FF", "/v1/runs?limit=many", "/v1/workflows/%C3%28"] {
        let response = server.request(reqwest::Method::GET, path).send().await.expect("answer");
        let status = response.status().as_u16();
        let kind = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!((400..500).contains(&status), "{path}: {status}");
        assert!(kind.starts_with("application/json"), "{path}: {kind}");
        assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{path}: {body}");
    }
    // A misspelt parameter is refused by name, not ignored (the run would start without waiting).
    for (path, word) in [("/v1/workflows/ok/runs?wiat=5s", "wiat"), ("/v1/validate?flie=a.yaml", "flie")] {
        let request = server.request(reqwest::Method::POST, path).header("content-type", "application/json").body("{}");
        let (status, body) = server.send(request).await;
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{path}: {body}");
        assert!(message.contains(&format!("unknown field `{word}`")), "{path}: {message}");
    }
    for empty in ["", "  \n"] {
        let request = server.request(reqwest::Method::POST, "/v1/validate").body(empty);
        let (status, body) = server.send(request).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("empty_body")), "{body}");
    }
}
