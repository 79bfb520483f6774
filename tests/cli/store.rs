//! `sagaflow store check|export|import`, and a data directory that opens by
//! itself after what a kill leaves behind.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use super::harness::{repo, sagaflow};

fn run(dir: &Path, args: &[&str]) -> Output {
    let output = sagaflow().args(args).current_dir(dir).output().expect("run sagaflow");
    output
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let output = run(dir, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}\n{}", String::from_utf8_lossy(&output.stdout));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A data directory with one finished order (its run, journal, definition, events, sandbox state).
fn with_an_order() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let workflow = repo().join("workflows/order_placement.yaml");
    let input = format!("@{}", repo().join("workflows/examples/order_placement/happy.json").display());
    let record = ok(dir.path(), &["run", &workflow.to_string_lossy(), "--input", &input, "--format", "json"]);
    let record: Value = serde_json::from_str(&record).expect("a run record");
    assert_eq!(record["status"], "succeeded", "{record}");
    (dir, record["run_id"].as_str().expect("id").to_owned())
}

#[test]
fn an_export_imported_into_a_new_directory_is_the_same_store() {
    let (dir, run_id) = with_an_order();
    let d = dir.path();
    let check = ok(d, &["store", "check"]);
    assert!(check.contains("(every record reads)"), "{check}");
    ok(d, &["store", "export", "--output", "backup.jsonl"]);
    let lines = std::fs::read_to_string(d.join("backup.jsonl")).expect("export");
    let first: Value = serde_json::from_str(lines.lines().next().unwrap_or_default()).expect("JSON lines");
    assert_eq!(first, serde_json::json!({"kind": "header", "format": "sagaflow-export-1"}));
    ok(d, &["store", "import", "backup.jsonl", "--data", "copy"]);
    ok(d, &["store", "export", "--data", "copy", "--output", "again.jsonl"]);
    assert_eq!(std::fs::read_to_string(d.join("again.jsonl")).expect("second export"), lines);
    let shown = |data: &str| ok(d, &["show", &run_id, "--data", data, "--format", "json"]);
    assert_eq!(shown("copy"), shown(".sagaflow"));
    let sandbox = |data: &str| ok(d, &["sandbox", "show", "--data", data, "--format", "json"]);
    assert_eq!(sandbox("copy"), sandbox(".sagaflow"));
    let again = run(d, &["store", "import", "backup.jsonl", "--data", "copy"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds data"));
}

#[test]
fn a_line_that_is_not_a_record_is_named_by_file_line_and_column() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(
        dir.path().join("bad.jsonl"),
        "{\"kind\": \"header\", \"format\": \"sagaflow-export-1\"}\n{\"kind\": \"run\"}\n",
    )
    .expect("write");
    let output = run(dir.path(), &["store", "import", "bad.jsonl", "--data", "new"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("bad.jsonl:2:") && stderr.contains("missing field `run`"), "{stderr}");
}

#[test]
fn a_store_left_with_an_unfinished_snapshot_opens_and_says_so() {
    let (dir, run_id) = with_an_order();
    let data = dir.path().join(".sagaflow");
    std::fs::write(data.join("snap.FFFFFFFFFFFFFFF0.generating"), vec![1u8; 64]).expect("plant");
    let output = sagaflow()
        .args(["show", &run_id, "--format", "json"])
        .current_dir(dir.path())
        .env("SAGAFLOW_LOG", "warn")
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the store was recovered: an unfinished snapshot was removed"), "{stderr}");
}

#[test]
fn a_store_whose_snapshot_is_damaged_is_rebuilt_from_its_log() {
    let (dir, run_id) = with_an_order();
    let data = dir.path().join(".sagaflow");
    let before = ok(dir.path(), &["show", &run_id, "--format", "json"]);
    let snapshot = std::fs::read_dir(&data)
        .expect("data")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("snap.")))
        .expect("a snapshot");
    let mut bytes = std::fs::read(&snapshot).expect("read");
    bytes[3] ^= 0x01;
    std::fs::write(&snapshot, bytes).expect("flip one bit");
    assert_eq!(ok(dir.path(), &["show", &run_id, "--format", "json"]), before);
    assert!(ok(dir.path(), &["store", "check"]).contains("(every record reads)"));
}

#[test]
fn prune_removes_runs_finished_before_the_time_and_exports_them_first() {
    let (dir, run_id) = with_an_order();
    let d = dir.path();
    let kept = ok(d, &["store", "prune", "--before", "1970-01-02", "--format", "json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&kept).expect("json")["removed"],
        serde_json::json!({"runs": 0, "events": 0})
    );
    let removed = ok(d, &["store", "prune", "--before", "0s", "--export", "old.jsonl"]);
    assert!(removed.starts_with("removed 2 finished run(s) and "), "the order and its payment: {removed}");
    let runs = ok(d, &["runs", "--format", "json"]);
    assert_eq!(serde_json::from_str::<Value>(&runs).expect("json"), serde_json::json!([]), "{runs}");
    let gone = run(d, &["show", &run_id]);
    assert_eq!(gone.status.code(), Some(2), "{}", String::from_utf8_lossy(&gone.stderr));
    let check = ok(d, &["store", "check"]);
    assert!(check.contains("(every record reads)") && !check.contains(" run,"), "{check}");
    // What left is whole in the export: it imports and shows as it was.
    ok(d, &["store", "import", "old.jsonl", "--data", "restored"]);
    let shown: Value =
        serde_json::from_str(&ok(d, &["show", &run_id, "--data", "restored", "--format", "json"])).expect("json");
    assert_eq!(shown["status"], "succeeded");
    let again = run(d, &["store", "prune", "--before", "0s", "--export", "old.jsonl"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("name a new file"));
}
