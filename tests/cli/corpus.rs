//! The corpus of wrong files under `tests/corpus/invalid`: each file's first
//! lines say exactly which diagnostics it must get (`# expect: error CODE L:C`),
//! and `sagaflow validate --format json` must report exactly those.

use crate::harness::{repo, sagaflow};

fn expectations(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.starts_with("# expect: "))
        .map(|l| l.trim_start_matches("# expect: ").trim().to_owned())
        .collect()
}

#[test]
fn every_wrong_file_gets_exactly_its_diagnostics() {
    let dir = repo().join("tests/corpus/invalid");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("corpus").filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    assert!(files.len() >= 40, "the corpus has {} files", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read corpus file");
        let expected = expectations(&text);
        assert!(!expected.is_empty(), "{} has no `# expect:` line", file.display());
        let output = sagaflow().args(["validate", "--format", "json"]).arg(file).output().expect("run");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json report");
        let got: Vec<String> = report["diagnostics"]
            .as_array()
            .expect("diagnostics")
            .iter()
            .map(|d| {
                format!(
                    "{} {} {}:{}",
                    d["severity"].as_str().unwrap_or(""),
                    d["code"].as_str().unwrap_or(""),
                    d["line"],
                    d["column"]
                )
            })
            .collect();
        let errors = expected.iter().filter(|e| e.starts_with("error")).count();
        let want_status = if errors > 0 { 1 } else { 0 };
        if got != expected || output.status.code() != Some(want_status) {
            failures.push(format!(
                "{}: expected {expected:?} (exit {want_status}), got {got:?} (exit {:?})",
                file.display(),
                output.status.code()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_workflow_in_the_repo_validates_clean() {
    let report = crate::harness::Test::new()
        .args(&["validate", "--format", "json", "--deny-warnings"])
        .args(&[
            repo().join("workflows").to_str().expect("utf-8 path"),
            repo().join("tests/corpus/valid").to_str().expect("utf-8 path"),
        ])
        .json();
    assert_eq!(report["errors"], 0, "{report:#}");
    assert_eq!(report["warnings"], 0, "{report:#}");
    assert!(report["files"].as_u64().unwrap_or(0) >= 9, "{report:#}");
}
