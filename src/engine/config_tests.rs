//! The engine on backends built from a config: a secret reaches its service
//! and nothing else.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::json;

use super::compiled::CompiledWorkflow;
use super::driver::{Engine, EngineOptions};
use crate::adapters::test_server::{Reply, TestServer};
use crate::config::{Backends, Config};
use crate::store::sled::SledStore;

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
    let run_id = engine.start_run(wf, json!({})).await.unwrap_or_else(|e| panic!("{}", e.message));
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

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let entries = walkdir::WalkDir::new(dir).into_iter().filter_map(Result::ok);
    entries.filter(|e| e.file_type().is_file()).map(walkdir::DirEntry::into_path).collect()
}
