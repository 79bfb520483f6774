//! The outbox through the binary: webhooks from `sagaflow.toml` get every event
//! at least once, across a SIGKILL between the commit and the delivery; a
//! workflow in `workflows/` with an `event` trigger starts when its event comes.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{sagaflow, Test};

const EMITTER: &str = "name: emitter
steps:
  - id: announce
    action: event.emit
    with: { type: order.placed, key: o-1, data: { order_id: o-1 } }
";

/// A webhook receiver on loopback: records each request's `Idempotency-Key`;
/// answers 200, or, while `hang` is set, holds the connection without answering.
pub(crate) struct Receiver {
    pub(crate) url: String,
    keys: Arc<Mutex<Vec<String>>>,
    pub(crate) hang: Arc<AtomicBool>,
}

impl Receiver {
    pub(crate) fn start(hang: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("address"));
        let keys = Arc::new(Mutex::new(Vec::new()));
        let hang = Arc::new(AtomicBool::new(hang));
        let (seen, hanging) = (keys.clone(), hang.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().flatten() {
                let key = idempotency_key(&stream);
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(key);
                match hanging.load(Ordering::SeqCst) {
                    true => held.push(stream),
                    false => {
                        let mut stream = stream;
                        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                    }
                }
            }
        });
        Receiver { url, keys, hang }
    }

    pub(crate) fn keys(&self) -> Vec<String> {
        self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn wait_for(&self, n: usize) {
        let start = Instant::now();
        while self.keys().len() < n {
            assert!(start.elapsed() < Duration::from_secs(30), "the webhook got {:?}", self.keys());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Reads a request's head (and body) and gives its `Idempotency-Key`.
fn idempotency_key(mut stream: &TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = header(&text[..end], "content-length").and_then(|v| v.parse::<usize>().ok()).unwrap_or(0);
            if data.len() >= end + 4 + length {
                break;
            }
        }
    }
    header(&String::from_utf8_lossy(&data), "idempotency-key").unwrap_or_default()
}

fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

fn config(url: &str) -> String {
    format!("[[webhooks]]\nname = \"orders\"\nurl = \"{url}\"\nevents = [\"order.*\"]\n")
}

#[test]
fn a_webhook_delivery_cut_by_sigkill_is_made_again_by_the_next_process() {
    let receiver = Receiver::start(true);
    let mut t = Test::new().file("w.yaml", EMITTER).file("sagaflow.toml", config(&receiver.url));
    let dir = t.path_buf();
    let mut child = sagaflow()
        .current_dir(&dir)
        .args(["run", "w.yaml", "--data", "data"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sagaflow run");
    // The step has committed (the relay only sends what is committed), and the
    // delivery is under way: the receiver holds it unanswered. Now SIGKILL.
    receiver.wait_for(1);
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let pending = Test::in_dir(&dir).args(&["outbox", "--data", "data", "--format", "json"]).json();
    assert_eq!(pending["pending"].as_array().map(Vec::len), Some(1), "{pending}");
    assert_eq!(pending["pending"][0]["pending"][0]["subscriber"], "webhook:orders");

    receiver.hang.store(false, Ordering::SeqCst);
    Test::in_dir(&dir).args(&["resume", "--data", "data"]).stdout("no unfinished runs\n").run();
    let keys = receiver.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1], "the same event, recognisable by its key");
    assert!(keys[0].ends_with(":announce"), "{keys:?}");
    Test::in_dir(&dir).args(&["outbox", "--data", "data"]).stdout("0 pending, 0 dead letters\n").run();
}

#[test]
fn a_delivery_left_pending_is_listed_and_said_on_exit() {
    let mut t = Test::new().file("w.yaml", EMITTER).file("sagaflow.toml", config("http://127.0.0.1:9/hook"));
    let dir = t.path_buf();
    let out = Test::in_dir(&dir).args(&["run", "w.yaml", "--data", "data"]).run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("note: 1 event deliveries are still pending"), "{stderr}");
    let listed = Test::in_dir(&dir).args(&["outbox", "--data", "data"]).run();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(text.starts_with("1 pending, 0 dead letters\npending  order.placed  "), "{text}");
    assert!(text.contains("-> webhook:orders (") && text.contains("cannot reach http://127.0.0.1:9/hook"), "{text}");
}

#[test]
fn an_event_starts_the_workflow_it_triggers_once() {
    let listener = "name: listener
triggers:
  - event: order.placed
input: { type: object, required: [order_id] }
steps:
  - id: note
    action: mock
    with: { output: '{{input.order_id}}' }
";
    let mut t = Test::new().file("w.yaml", EMITTER).file("workflows/listener.yaml", listener);
    let dir = t.path_buf();
    let out = Test::in_dir(&dir).args(&["run", "w.yaml", "--data", "data"]).run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("note: an event started run ") && stderr.contains("of `listener`"), "{stderr}");
    let runs =
        Test::in_dir(&dir).args(&["runs", "--data", "data", "--workflow", "listener", "--format", "json"]).json();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "{runs}");
    let run_id = runs[0]["run_id"].as_str().unwrap_or_default().to_owned();
    Test::in_dir(&dir).args(&["resume", "--data", "data"]).run();
    let record = Test::in_dir(&dir).args(&["show", &run_id, "--data", "data", "--format", "json"]).json();
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["steps"][0]["output"], "o-1");
}

#[test]
fn a_wrong_webhook_is_named_with_its_line() {
    Test::new()
        .file("w.yaml", EMITTER)
        .file("sagaflow.toml", "[[webhooks]]\nname = \"orders\"\nurl = \"ftp://example.com/x\"\n")
        .args(&["run", "w.yaml"])
        .stderr("error: sagaflow.toml:3:7: webhook `orders`: `ftp://example.com/x` is not an http:// or https:// URL\n")
        .status(2)
        .run();
}

/// DSL.md C1: a run that pauses tells its subscribers with `run.paused`
/// (keyed by the run), as any event reaches a webhook.
#[test]
fn a_paused_run_tells_its_webhook() {
    let receiver = Receiver::start(false);
    let flow = "name: flow\nsteps:\n  - id: charge\n    action: mock\n    with: { fail: true, error: card_declined }\n    on_error: pause\n";
    let hook = format!("[[webhooks]]\nname = \"ops\"\nurl = \"{}\"\nevents = [\"run.paused\"]\n", receiver.url);
    let mut t = Test::new().file("w.yaml", flow).file("sagaflow.toml", &hook);
    let dir = t.path_buf();
    let out = Test::in_dir(&dir).args(&["run", "w.yaml", "--format", "json"]).status(1).run();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a record");
    assert_eq!(record["status"], "paused");
    receiver.wait_for(1);
    let run_id = record["run_id"].as_str().unwrap_or_default();
    assert!(receiver.keys()[0].starts_with(&format!("{run_id}:paused:")), "{:?}", receiver.keys());
}
