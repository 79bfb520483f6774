//! The served API against its own `/openapi.json`, with Schemathesis: every
//! status, content type and body must be what the contract says, and nothing
//! may answer 5xx. Bounded: 20 examples an operation, one worker, a fixed seed.

use std::path::PathBuf;
use std::process::Command;

use super::server::{copy_business_workflows, folder, Server};

/// Where `.ci/install-test-deps` puts Schemathesis's command (or `SAGAFLOW_SCHEMATHESIS`).
fn schemathesis() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let places = [
        std::env::var_os("SAGAFLOW_SCHEMATHESIS").map(PathBuf::from),
        Some(PathBuf::from("/opt/sagaflow-test/schemathesis/bin/st")),
        Some(home.join(".cache/sagaflow-test/schemathesis/bin/st")),
    ];
    places
        .into_iter()
        .flatten()
        .find(|path| Command::new(path).arg("--version").output().is_ok_and(|o| o.status.success()))
}

const CONFIG: &str = r#"seed = 42
request-timeout = 10.0
workers = 1
headers = { Authorization = "Bearer contract-token" }
[generation]
max-examples = 20
[checks]
enabled = false
not_a_server_error.enabled = true
status_code_conformance.enabled = true
content_type_conformance.enabled = true
response_schema_conformance.enabled = true
negative_data_rejection.enabled = true
# An event stream stays open until its run ends.
[[operations]]
include-path = "/v1/runs/{id}/events"
enabled = false
# A `?wait` holds the request up to its duration: ask for none.
[[operations]]
include-name = "POST /v1/workflows/{name}/runs"
parameters = { "query.wait" = "0s" }
# Any text is a YAML body to check, so no body is "schema-violating" here.
[[operations]]
include-path = "/v1/validate"
checks.negative_data_rejection.enabled = false
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_api_keeps_to_its_openapi_contract_under_schemathesis() {
    let Some(st) = schemathesis() else {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI installs Schemathesis (.ci/install-test-deps)");
        eprintln!("skipped: Schemathesis is not installed (bash .ci/install-test-deps installs it)");
        return;
    };
    let dir = folder(&[]);
    copy_business_workflows(dir.path());
    std::fs::write(dir.path().join("schemathesis.toml"), CONFIG).expect("config");
    let server = Server::start_with(dir.path(), &[], Some("contract-token"));
    let spec = format!("{}/openapi.json", server.url);
    let dir_path = dir.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .args(["600"])
            .arg(st)
            .args(["--config-file", "schemathesis.toml", "run", &spec, "--no-color"])
            .current_dir(dir_path)
            .output()
            .expect("run schemathesis")
    })
    .await
    .expect("joined");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "Schemathesis found the API off its contract:\n{report}\n{}", server.log());
    assert!(report.contains(" passed"), "{report}");
}
