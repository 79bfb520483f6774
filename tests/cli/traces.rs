//! Traces through `sagaflow serve`: a run started with a `traceparent`
//! exports its span tree over OTLP/HTTP to a loopback collector, and every
//! call it makes (an HTTP request, a child run, a webhook) carries the span
//! of the attempt that made it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prost::Message;
use serde_json::json;

#[path = "../../src/adapters/otlp_proto.rs"]
#[allow(dead_code)]
mod otlp_proto;

use super::server::{folder, Server};

/// One request a loopback receiver took: its path, headers and body.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

/// Answers 200 to anything, and keeps what came.
async fn receiver() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let kept = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let kept = kept.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.map(|b| b.to_vec()).unwrap_or_default();
            let headers = parts
                .headers
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
                .collect();
            kept.lock().expect("lock").push(Seen { path: parts.uri.path().to_owned(), headers, body });
            axum::Json(json!({ "ok": true }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

const PARENT: &str = r#"name: traced
steps:
  - id: call
    action: http.request
    with: { method: POST, url: "{{input.echo}}", body: { n: 1 } }
  - id: flaky
    action: mock
    needs: [call]
    with: { fail_attempts: 1, output: 2 }
    retry: { max_attempts: 2, backoff: fixed, delay: 10ms }
  - id: child
    action: workflow.run
    needs: [flaky]
    with: { workflow: traced_child, input: {} }
  - id: tell
    action: event.emit
    needs: [child]
    with: { type: order.traced, key: k, data: {} }
"#;
const CHILD: &str = "name: traced_child\nsteps:\n  - { id: inner, action: mock, with: { output: 3 } }\n";
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Every span the collector took so far, by name.
fn spans(collector: &Mutex<Vec<Seen>>) -> HashMap<String, otlp_proto::Span> {
    let seen = collector.lock().expect("lock").clone();
    let mut by_name = HashMap::new();
    for request in seen.iter().filter(|s| s.path == "/v1/traces") {
        let decoded = otlp_proto::ExportTraceServiceRequest::decode(request.body.as_slice()).expect("OTLP protobuf");
        for span in decoded.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans) {
            by_name.insert(span.name.clone(), span);
        }
    }
    by_name
}

fn traceparent_of(seen: &Mutex<Vec<Seen>>, path: &str) -> String {
    let seen = seen.lock().expect("lock");
    let request = seen.iter().find(|s| s.path == path).unwrap_or_else(|| panic!("nothing came to {path}"));
    request.headers.get("traceparent").cloned().unwrap_or_else(|| panic!("{path} came without a traceparent"))
}

#[tokio::test]
async fn a_runs_span_tree_reaches_the_collector_and_its_calls_carry_their_attempts_span() {
    let (collector, exported) = receiver().await;
    let (outside, called) = receiver().await;
    let dir = folder(&[("traced.yaml", PARENT), ("traced_child.yaml", CHILD)]);
    let config = format!(
        "[telemetry]\notlp_endpoint = \"{collector}\"\nservice_name = \"shop\"\n\n[http]\nallow = [\"127.0.0.1\"]\n\n[[webhooks]]\nname = \"hook\"\nurl = \"{outside}/hook\"\nevents = [\"order.traced\"]\n"
    );
    std::fs::write(dir.path().join("sagaflow.toml"), config).expect("config");
    let server = Server::start(dir.path());
    let start = server
        .request(reqwest::Method::POST, "/v1/workflows/traced/runs")
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({ "input": { "echo": format!("{outside}/echo") } }));
    let (status, body) = server.send(start).await;
    assert_eq!(status, 202, "{body}");
    let run_id = body["run_id"].as_str().expect("run id").to_owned();
    let record = server.until_status(&run_id, &["succeeded", "failed", "compensated"]).await;
    assert_eq!(record["status"], "succeeded", "{record}");

    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = [
        "run traced",
        "run traced_child",
        "step call",
        "call #1",
        "flaky #1",
        "flaky #2",
        "step child",
        "child #1",
        "inner #1",
    ];
    let spans = loop {
        let spans = spans(&exported);
        if wanted.iter().all(|name| spans.contains_key(*name))
            && !called.lock().expect("lock").iter().all(|s| s.path != "/hook")
        {
            break spans;
        }
        assert!(Instant::now() < deadline, "spans so far: {:?}\n{}", spans.keys().collect::<Vec<_>>(), server.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let id = |name: &str| hex(&spans[name].span_id);
    let parent = |name: &str| hex(&spans[name].parent_span_id);
    // One trace, the caller's, and the run hangs under the caller's span.
    assert!(spans.values().all(|s| hex(&s.trace_id) == CALLER_TRACE), "every span is in the caller's trace");
    assert_eq!(parent("run traced"), CALLER_SPAN);
    for step in ["call", "flaky", "child", "tell"] {
        assert_eq!(parent(&format!("step {step}")), id("run traced"), "step {step} hangs under the run");
    }
    assert_eq!(parent("call #1"), id("step call"));
    assert_eq!((parent("flaky #1"), parent("flaky #2")), (id("step flaky"), id("step flaky")));
    let failed = spans["flaky #1"].status.clone().expect("the failed attempt has an error status");
    assert_eq!(failed.code, otlp_proto::STATUS_CODE_ERROR);
    assert!(spans["flaky #2"].status.is_none());
    // The child run hangs under the attempt that started it, in the same trace.
    assert_eq!(parent("run traced_child"), id("child #1"));
    assert_eq!(parent("inner #1"), hex(&spans["step inner"].span_id));
    // What the run called carried its attempt's span.
    assert_eq!(traceparent_of(&called, "/echo"), format!("00-{CALLER_TRACE}-{}-01", id("call #1")));
    let hook = traceparent_of(&called, "/hook");
    let tell = spans.get("tell #1").map(|s| hex(&s.span_id)).unwrap_or_default();
    assert_eq!(hook, format!("00-{CALLER_TRACE}-{tell}-01"), "the webhook carries the emitting attempt's span");
    let kept =
        called.lock().expect("lock").iter().find(|s| s.path == "/hook").map(|s| s.body.clone()).unwrap_or_default();
    assert!(!String::from_utf8_lossy(&kept).contains("traceparent"), "the trace is in the header, not the event");
    let times = &spans["run traced"];
    assert!(times.end_time_unix_nano >= times.start_time_unix_nano && times.start_time_unix_nano > 0);
}
