//! The config: errors with file, line and key; backends as chosen; secrets by
//! reference that never reach a log line, a run record or the store.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::{Backends, Config};
use crate::adapters::test_server::{Reply, TestServer};
use crate::engine::compiled::CompiledWorkflow;
use crate::engine::driver::{Engine, EngineOptions};
use crate::store::sled::SledStore;

fn error_of(text: &str) -> String {
    match Config::parse(Path::new("sagaflow.toml"), text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.0,
    }
}

#[test]
fn a_wrong_config_says_file_line_and_key() {
    assert_eq!(
        error_of("[http]\nallow = [\"a\"]\nalow = 1\n"),
        "sagaflow.toml:3:1: unknown field `alow`, expected one of `allow`, `timeout`, `max_response_bytes`"
    );
    assert_eq!(
        error_of("[services.inventroy]\nbackend = \"http\"\n"),
        "sagaflow.toml:1:11: there is no service `inventroy`; did you mean `inventory`?"
    );
    assert_eq!(
        error_of("[services.payments]\nbackend = \"http\"\n"),
        "sagaflow.toml:2:11: services.payments: the http backend needs `base_url`"
    );
    assert_eq!(
        error_of("[services.orders]\nbackend = \"grpc\"\n"),
        "sagaflow.toml:2:11: services.orders.backend is `grpc`; it must be `sandbox` or `http`"
    );
    assert_eq!(
        error_of("[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword = \"hunter2\"\n"),
        "sagaflow.toml:4:1: unknown field `password`, expected one of `host`, `port`, `tls`, `from`, `username`, `password_secret`, `timeout`"
    );
    assert!(error_of("[http\n").starts_with("sagaflow.toml:1:"));
}

#[test]
fn errors_found_when_building_say_where_too() {
    let config = Config::parse(
        Path::new("c.toml"),
        "[services.users]\nbackend = \"http\"\nbase_url = \"http://x\"\nbearer_secret = \"NOT_SET_ANYWHERE_42\"\n",
    );
    let config = config.unwrap_or_else(|e| panic!("{e}"));
    let e = Backends::build(&config, None).err().map(|e| e.0);
    assert_eq!(
        e.as_deref(),
        Some("c.toml:4:17: services.users.bearer_secret names the secret `NOT_SET_ANYWHERE_42`, but SAGAFLOW_SECRET_NOT_SET_ANYWHERE_42 is not set")
    );
    let config = Config::parse(Path::new("c.toml"), "[http]\ntimeout = \"soon\"\n").unwrap_or_else(|e| panic!("{e}"));
    let e = Backends::build(&config, None).err().map(|e| e.0).unwrap_or_default();
    assert!(e.starts_with("c.toml:2:11: http.timeout `soon`: a duration is"), "{e}");
}

/// Log lines, caught.
#[derive(Clone, Default)]
struct Caught(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Caught {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const PLANTED: &str = "planted-5ecret-d0-not-log";

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_secret_reaches_the_service_and_nothing_else_and_retry_after_is_honoured() {
    // SAFETY: this test alone sets this variable; nothing reads it concurrently.
    unsafe { std::env::set_var("SAGAFLOW_SECRET_PLANTED_TOKEN", PLANTED) };
    let calls = Arc::new(Mutex::new(0));
    let counter = calls.clone();
    let server = TestServer::start(move |_| {
        let mut n = counter.lock().unwrap_or_else(|e| e.into_inner());
        *n += 1;
        if *n == 1 {
            Reply::json(429, json!({"error": {"code": "rate_limited", "message": "slow down"}}))
                .header("retry-after", "1")
        } else {
            Reply::json(200, json!({"reservation_id": "r-1", "sku": "BOOK-001", "quantity": 1, "available": 3}))
        }
    })
    .await;
    let toml = format!(
        "[services.inventory]\nbackend = \"http\"\nbase_url = \"{}\"\nbearer_secret = \"PLANTED_TOKEN\"\n",
        server.url
    );
    let config = Config::parse(Path::new("sagaflow.toml"), &toml).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let store = SledStore::open(&dir.path().join("data")).unwrap_or_else(|e| panic!("{e}"));
    let backends = Backends::build(&config, Some(&store)).unwrap_or_else(|e| panic!("{e}"));
    let yaml = "name: secretive\nsteps:\n  - id: reserve\n    action: inventory.reserve\n    with: { sku: BOOK-001, quantity: 1, reference: \"{{secrets.PLANTED_TOKEN}}\" }\n    retry: { max_attempts: 3, backoff: fixed, delay: 10ms }\n";
    let wf =
        CompiledWorkflow::compile(Path::new("s.yaml"), yaml, &backends.registry).unwrap_or_else(|_| panic!("compiles"));

    let logs = Caught::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let engine = Engine::start(Arc::new(store), backends.registry.clone(), EngineOptions::default());
    let run_id = engine.start_run(wf, json!({})).await.unwrap_or_else(|e| panic!("{}", e.0));
    let record = engine.wait(&run_id).await.unwrap_or_else(|| panic!("the run ended"));
    drop(engine);

    assert_eq!(record.status, "succeeded");
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "one 429, then the retry");
    assert_eq!(seen[1].header("authorization"), Some(format!("Bearer {PLANTED}").as_str()));
    assert!(contains(&seen[1].body, PLANTED), "the template's secret reached the service");
    let gap = record.steps[0].duration_ms.unwrap_or(0);
    assert!(gap >= 900, "Retry-After: 1 made the retry wait a second (waited {gap} ms)");

    let logged = logs.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    // What each attempt's span says is checked through the binary (tests/cli/sandbox.rs):
    // tracing's interest cache is process-wide, and other tests here log nowhere.
    assert!(contains(&logged, "run started"), "the logs were caught");
    assert!(!contains(&logged, PLANTED), "a log line holds the secret");
    let record_json = serde_json::to_string(&record).unwrap_or_default();
    assert!(!record_json.contains(PLANTED), "the run record holds the secret");
    for file in walk(dir.path()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(!contains(&bytes, PLANTED), "{} holds the secret", file.display());
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
