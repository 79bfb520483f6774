//! A real `sagaflow run` killed with SIGKILL mid-run, then `sagaflow resume`:
//! the run finishes, and no step that had finished runs again.

use std::time::Duration;

use crate::harness::{sagaflow, Test};

const WORKFLOW: &str = "name: crashy
steps:
  - id: a
    action: mock
    with: { output: a }
  - id: b
    action: mock
    with: { output: b }
  - id: slow
    action: mock
    with: { delay: 3s, output: slow }
  - id: d
    action: mock
    with: { output: '{{steps.slow.output}}-d' }
";

/// Starts `sagaflow run w.yaml` in `dir` with JSON logs on a pipe; kills it with
/// SIGKILL after `ms` milliseconds and gives back what it logged.
fn run_and_kill(dir: &std::path::Path, ms: u64) -> std::process::Output {
    let mut child = sagaflow()
        .current_dir(dir)
        .env("SAGAFLOW_LOG", "info")
        .args(["--log-format", "json", "run", "w.yaml", "--data", "data"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start sagaflow run");
    std::thread::sleep(Duration::from_millis(ms));
    child.kill().expect("SIGKILL");
    child.wait_with_output().expect("reap")
}

/// `sagaflow resume` in `dir`, with JSON logs.
fn resume(dir: &std::path::Path) -> std::process::Output {
    sagaflow()
        .current_dir(dir)
        .env("SAGAFLOW_LOG", "info")
        .args(["--log-format", "json", "resume", "--data", "data", "--format", "json"])
        .output()
        .expect("run sagaflow resume")
}

/// The steps whose attempts a process started, from its JSON log lines.
fn started_steps(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "attempt started")
        .filter_map(|l| l["span"]["step"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_killed_run_resumes_without_running_finished_steps_again() {
    let mut t = Test::new().file("w.yaml", WORKFLOW);
    let dir = t.path_buf();
    // a and b take microseconds; `slow` holds for 3 s. Kill well inside it.
    let killed = run_and_kill(&dir, 1500);
    let before = started_steps(&killed.stderr);
    assert_eq!(before, vec!["a", "b", "slow"], "the first process got as far as `slow`");

    let resumed = resume(&dir);
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(started_steps(&resumed.stderr), vec!["slow", "d"], "a and b are not run again; slow runs again");
    let records: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("json");
    let record = &records[0];
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["output"], serde_json::Value::Null);
    let attempts: Vec<u64> =
        record["steps"].as_array().expect("steps").iter().filter_map(|s| s["attempts"].as_u64()).collect();
    assert_eq!(attempts, vec![1, 1, 1, 1], "the in-flight attempt ran again as the same attempt");
    assert_eq!(record["steps"][3]["output"], "slow-d");

    let again = Test::in_dir(&dir).args(&["resume", "--data", "data", "--format", "json"]).json();
    assert_eq!(again, serde_json::json!([]), "nothing is left unfinished");
}

/// Attempts (step, attempt) a process started, from its JSON log lines.
fn started_attempts(stderr: &[u8]) -> Vec<(String, u64)> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["fields"]["message"] == "attempt started")
        .filter_map(|l| Some((l["span"]["step"].as_str()?.to_owned(), l["span"]["attempt"].as_u64()?)))
        .collect()
}

#[test]
fn a_run_killed_in_a_retry_backoff_resumes_the_wait_not_the_count() {
    let mut t = Test::new().file(
        "w.yaml",
        "name: backoff\nsteps:\n  - id: flaky\n    action: mock\n    with: { fail_attempts: 2, output: done }\n    retry: { max_attempts: 3, delay: 1500ms, backoff: fixed }\n",
    );
    let dir = t.path_buf();
    // Attempt 1 fails at once; attempt 2 starts 1.5 s later and fails; kill in the second wait.
    let killed = run_and_kill(&dir, 2300);
    assert_eq!(started_attempts(&killed.stderr), vec![("flaky".to_owned(), 1), ("flaky".to_owned(), 2)]);

    let resumed = resume(&dir);
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(started_attempts(&resumed.stderr), vec![("flaky".to_owned(), 3)], "the count goes on from 2");
    let records: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(records[0]["steps"][0]["attempts"], 3);
    assert_eq!(records[0]["status"], "succeeded");
}

#[test]
fn a_run_killed_while_compensating_finishes_its_compensations_after_resume() {
    let mut t = Test::new().file(
        "w.yaml",
        "name: undo\nsteps:\n  - id: first\n    action: mock\n    compensate: { action: mock }\n  - id: second\n    action: mock\n    compensate: { action: mock, with: { delay: 3s } }\n  - id: boom\n    action: mock\n    with: { fail: true, error: failed }\n",
    );
    let dir = t.path_buf();
    // boom fails at once; undoing `second` takes 3 s. Kill inside it.
    run_and_kill(&dir, 1500);
    let mid = Test::in_dir(&dir).args(&["runs", "--data", "data", "--format", "json"]).json();
    assert_eq!(mid[0]["status"], "compensating");
    let records = Test::in_dir(&dir).args(&["resume", "--data", "data", "--format", "json"]).status(1).json();
    let r = &records[0];
    assert_eq!(r["status"], "compensated");
    let order: Vec<(&str, u64)> = r["compensations"]
        .as_array()
        .expect("compensations")
        .iter()
        .filter_map(|c| Some((c["step"].as_str()?, c["attempts"].as_u64()?)))
        .collect();
    assert_eq!(order, vec![("second", 1), ("first", 1)], "each undone once, in reverse order");
}

#[test]
fn a_sleep_survives_a_crash_and_the_run_shows_as_waiting() {
    let mut t = Test::new().file("w.yaml", "name: nap\nsteps:\n  - id: nap\n    action: sleep\n    with: { for: 2500ms }\n  - id: after\n    action: mock\n");
    let dir = t.path_buf();
    run_and_kill(&dir, 1000);
    let mid = Test::in_dir(&dir).args(&["runs", "--data", "data", "--format", "json"]).json();
    assert_eq!(mid[0]["status"], "waiting");
    let resumed = resume(&dir);
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(started_steps(&resumed.stderr), vec!["after"], "the sleep is a timer, not a new attempt");
    let records: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(records[0]["steps"][0]["duration_ms"], 2500, "it woke when it was due, not 2.5 s after the restart");
}

#[test]
fn an_event_emitted_while_its_waiter_was_down_is_found_on_resume() {
    let mut t = Test::new()
        .file("w.yaml", "name: waiter\nsteps:\n  - id: wait\n    action: event.wait\n    with: { type: user.verified, key: u-1 }\n    timeout: 1m\n")
        .file("emit.yaml", "name: emitter\nsteps:\n  - id: emit\n    action: event.emit\n    with: { type: user.verified, key: u-1, data: { by: email } }\n");
    let dir = t.path_buf();
    run_and_kill(&dir, 800);
    let emitted = Test::in_dir(&dir).args(&["run", "emit.yaml", "--data", "data", "--format", "json"]).json();
    assert!(emitted["steps"][0]["output"]["event_id"].as_str().is_some_and(|id| id.ends_with(":emit")));
    let resumed = resume(&dir);
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    let records: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(records[0]["workflow"], "waiter");
    assert_eq!(records[0]["steps"][0]["output"], serde_json::json!({ "by": "email" }));
}

/// DSL.md A4, durably: `max_duration` counts from the first attempt as the
/// journal has it, so a run killed in a backoff and resumed makes no more
/// attempts than one left alone (1 s apart for at most 3.5 s: four).
#[test]
fn a_time_bounded_retry_killed_and_resumed_keeps_its_bound() {
    let mut t = Test::new().file(
        "w.yaml",
        "name: timed\nsteps:\n  - id: flaky\n    action: mock\n    with: { fail: true, error: unavailable }\n    retry: { max_duration: 3500ms, delay: 1s, backoff: fixed }\n",
    );
    let dir = t.path_buf();
    run_and_kill(&dir, 1500);
    let resumed = resume(&dir);
    assert_eq!(resumed.status.code(), Some(1), "{}", String::from_utf8_lossy(&resumed.stderr));
    let records: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(records[0]["status"], "failed");
    assert_eq!(records[0]["steps"][0]["attempts"], 4, "attempts at 0, 1, 2 and 3 s from the first; none after");
}

/// DSL.md A4, durably: each policy of a list counts the failures it handled
/// from the journal, so a run killed in a backoff and resumed stops where one
/// left alone does (the second policy handles `unavailable`: three attempts).
#[test]
fn a_list_of_retry_policies_killed_and_resumed_keeps_each_count() {
    let mut t = Test::new().file(
        "w.yaml",
        "name: listed\nsteps:\n  - id: flaky\n    action: mock\n    with: { fail: true, error: unavailable }\n    retry:\n      - { on: [timeout], max_attempts: 9, delay: 1s, backoff: fixed }\n      - { on: [unavailable], max_attempts: 3, delay: 1s, backoff: fixed }\n",
    );
    let dir = t.path_buf();
    run_and_kill(&dir, 1500);
    let resumed = resume(&dir);
    assert_eq!(resumed.status.code(), Some(1), "{}", String::from_utf8_lossy(&resumed.stderr));
    let records: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(
        records[0]["steps"][0]["attempts"], 3,
        "the count of the policy that handled them went on from the journal"
    );
}

/// DSL.md B2: rounds and the waits between them are durable. A run killed
/// between rounds resumes the wait, and runs only the rounds it had not.
#[test]
fn a_repeat_killed_between_rounds_resumes_with_the_next_round() {
    let mut t = Test::new().file(
        "w.yaml",
        "name: poll\nsteps:\n  - id: poll\n    action: mock\n    with: { output: { n: '{{iteration}}' } }\n    repeat: { until: '{{gte output.n 3}}', every: 1200ms, max: 5 }\n",
    );
    let dir = t.path_buf();
    // Round 1 at once, round 2 1.2 s later; killed in the wait before round 3.
    let killed = run_and_kill(&dir, 1900);
    assert_eq!(started_attempts(&killed.stderr), vec![("poll".to_owned(), 1), ("poll".to_owned(), 1)]);

    let resumed = resume(&dir);
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert_eq!(started_attempts(&resumed.stderr), vec![("poll".to_owned(), 1)], "round 3 alone");
    let records: serde_json::Value = serde_json::from_slice(&resumed.stdout).expect("json");
    assert_eq!(records[0]["steps"][0]["rounds"], 3);
    assert_eq!(records[0]["steps"][0]["output"], serde_json::json!({"n": 3}));
    assert_eq!(records[0]["status"], "succeeded");
}
