//! `workflow.run` through the binary (DSL.md B1): `validate` checks the names,
//! inputs and circles across files with exact positions; `run` starts the
//! child from the file's folder and undoes it in a roll-back; a parent killed
//! while it waits resumes with the same child.

use std::time::Duration;

use serde_json::Value as Json;

use crate::harness::{sagaflow, Test};

const PARENT: &str = "name: parent
steps:
  - id: hold
    action: mock
    with: { output: held }
    compensate: { action: mock }
  - id: pay
    action: workflow.run
    with: { workflow: payment, input: { amount: 7 } }
  - id: ship
    action: mock
    with: { fail: '{{input.fail}}', delay: '{{input.ship_delay}}' }
";

const PAYMENT: &str = "name: payment
input: { type: object, required: [amount], properties: { amount: { type: integer } } }
steps:
  - id: charge
    action: mock
    with: { output: { paid: '{{input.amount}}' }, delay: 1500ms }
    compensate: { action: mock }
output: { paid: '{{steps.charge.output.paid}}' }
";

fn diagnostics(report: &Json) -> Vec<String> {
    let list = report["diagnostics"].as_array().cloned().unwrap_or_default();
    list.iter()
        .map(|d| {
            let file = d["file"].as_str().unwrap_or_default();
            format!("{file} {} {}:{}", d["code"].as_str().unwrap_or_default(), d["line"], d["column"])
        })
        .collect()
}

#[test]
fn validate_checks_the_workflow_named_its_input_and_circles_across_files() {
    let a = "name: a
steps:
  - id: to_b
    action: workflow.run
    with: { workflow: b, input: { amount: ten } }
  - id: typo
    action: workflow.run
    with: { workflow: paymnet }
";
    let b = "name: b
input: { type: object, required: [amount], properties: { amount: { type: integer } } }
steps:
  - id: back
    action: workflow.run
    with: { workflow: a, input: {} }
";
    let report = Test::new()
        .file("a.yaml", a)
        .file("b.yaml", b)
        .file("payment.yaml", PAYMENT)
        .args(&["validate", "--format", "json", "."])
        .status(1)
        .json();
    let found = diagnostics(&report);
    let want = [
        "./a.yaml workflow-cycle 5:23",
        "./a.yaml invalid-with 5:43",
        "./a.yaml unknown-workflow 8:23",
        "./b.yaml workflow-cycle 6:23",
    ];
    assert_eq!(found, want, "{report}");
    let messages: Vec<&str> =
        report["diagnostics"].as_array().into_iter().flatten().filter_map(|d| d["message"].as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("`a` → `b` → `a`")), "{messages:?}");
    // Given alone, a file's calls are still checked against the workflows beside it.
    let alone = Test::new()
        .file("a.yaml", a)
        .file("payment.yaml", PAYMENT)
        .args(&["validate", "--format", "json", "a.yaml"])
        .status(1)
        .json();
    assert!(diagnostics(&alone).iter().any(|d| d == "a.yaml unknown-workflow 5:23"), "{alone}");
    let hint = alone.to_string();
    assert!(hint.contains("did you mean `payment`"), "{hint}");
}

#[test]
fn a_failing_parent_undoes_its_child_and_the_records_link_both_ways() {
    let mut t = Test::new().file("parent.yaml", PARENT).file("payment.yaml", PAYMENT);
    let dir = t.path_buf();
    let out = sagaflow()
        .current_dir(&dir)
        .args(["run", "parent.yaml", "--format", "json", "--input", r#"{"fail": true, "ship_delay": "1ms"}"#])
        .output()
        .expect("run");
    let parent: Json = serde_json::from_slice(&out.stdout).expect("a record");
    assert_eq!(parent["status"], "compensated", "{parent}");
    let undone: Vec<&str> =
        parent["compensations"].as_array().into_iter().flatten().filter_map(|c| c["step"].as_str()).collect();
    assert_eq!(undone, ["pay", "hold"]);
    let child_id = parent["steps"][1]["child_run"].as_str().expect("the child's id").to_owned();
    let shown = sagaflow().current_dir(&dir).args(["show", &child_id, "--format", "json"]).output().expect("show");
    let child: Json = serde_json::from_slice(&shown.stdout).expect("the child's record");
    assert_eq!(child["status"], "compensated");
    assert_eq!(child["parent"]["run_id"], parent["run_id"]);
    assert_eq!(child["parent"]["step"], "pay");
}

#[test]
fn a_parent_killed_while_its_child_runs_resumes_with_the_same_child() {
    let mut t = Test::new().file("parent.yaml", PARENT).file("payment.yaml", PAYMENT);
    let dir = t.path_buf();
    let mut child = sagaflow()
        .current_dir(&dir)
        .args(["run", "parent.yaml", "--data", "data", "--input", r#"{"fail": false, "ship_delay": "1ms"}"#])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start");
    // The payment's charge takes 1.5 s: killed while the parent waits for it.
    std::thread::sleep(Duration::from_millis(700));
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let resumed =
        sagaflow().current_dir(&dir).args(["resume", "--data", "data", "--format", "json"]).output().expect("resume");
    assert_eq!(resumed.status.code(), Some(0), "{}", String::from_utf8_lossy(&resumed.stderr));
    let runs =
        sagaflow().current_dir(&dir).args(["runs", "--data", "data", "--format", "json"]).output().expect("runs");
    let listed: Json = serde_json::from_slice(&runs.stdout).expect("a list");
    let workflows: Vec<&str> = listed.as_array().into_iter().flatten().filter_map(|r| r["workflow"].as_str()).collect();
    assert_eq!(workflows.iter().filter(|w| **w == "payment").count(), 1, "one child, found again: {listed}");
    assert!(listed.as_array().into_iter().flatten().all(|r| r["status"] == "succeeded"), "{listed}");
}

/// `sagaflow test` runs children in its simulated world too: a child that
/// sleeps a day and waits for an event ends in an instant, and an event
/// whose data is `null` never comes (the wait times out).
#[test]
fn tests_follow_children_through_their_sleeps_and_waits() {
    let parent = "name: parent\nsteps:\n  - id: approve\n    action: workflow.run\n    with: { workflow: approval }\noutput: { by: '{{steps.approve.output.by}}' }\n";
    let approval = "name: approval
steps:
  - id: later
    action: sleep
    with: { for: 1d }
  - id: answer
    action: event.wait
    with: { type: refund.approved, key: r-1 }
    timeout: 2d
output: { by: '{{steps.answer.output.by}}' }
";
    let tests = "workflow: parent.yaml
tests:
  - name: approved after a day
    events: { refund.approved: { by: ada } }
    expect:
      status: succeeded
      output: { by: ada }
      steps: { approve: succeeded }
  - name: never approved
    events: { refund.approved: null }
    expect:
      status: failed
      steps: { approve: failed }
";
    let out = Test::new()
        .file("parent.yaml", parent)
        .file("approval.yaml", approval)
        .file("parent.test.yaml", tests)
        .args(&["test", "parent.test.yaml"])
        .run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("2 passed, 0 failed\n"), "{text}");
}

/// The saga lint looks through children: a step that can be undone, after a
/// call whose child (or its own child) surely makes a change that cannot be
/// taken back, is `compensable-after-irreversible`, naming the way there.
#[test]
fn the_saga_lint_looks_through_children() {
    let parent = "name: parent
steps:
  - id: pay
    action: workflow.run
    with: { workflow: capture_it }
  - id: hold
    action: inventory.reserve
    with: { sku: MUG-001, quantity: 1 }
    compensate: { action: inventory.release, with: { key: '{{step.key}}' } }
";
    let capture_it = "name: capture_it
steps:
  - id: inner
    action: workflow.run
    with: { workflow: verify_it }
";
    let verify_it =
        "name: verify_it\nsteps:\n  - id: verify\n    action: users.verify\n    with: { user_id: u, token: t }\n";
    let report = Test::new()
        .file("parent.yaml", parent)
        .file("capture_it.yaml", capture_it)
        .file("verify_it.yaml", verify_it)
        .args(&["validate", "--format", "json", "parent.yaml"])
        .json();
    assert_eq!(diagnostics(&report), ["parent.yaml compensable-after-irreversible 6:9"], "{report}");
    let message = report["diagnostics"][0]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`capture_it` → `verify_it` does `verify` (`users.verify`)"), "{message}");
}

/// A child whose workflow is gone when the step runs (its file deleted) fails
/// the step with `not_found`, saying which, and the parent rolls back.
#[test]
fn a_child_missing_at_run_time_fails_its_step_with_not_found() {
    let out = Test::new()
        .file("parent.yaml", PARENT)
        .args(&["run", "parent.yaml", "--format", "json", "--input", r#"{"fail": false, "ship_delay": "1ms"}"#])
        .status(1)
        .run();
    let record: Json = serde_json::from_slice(&out.stdout).expect("a record");
    assert_eq!(record["status"], "compensated", "{record}");
    assert_eq!(record["error"]["code"], "not_found");
    assert_eq!(record["error"]["step"], "pay");
    let message = record["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no workflow `payment`"), "{message}");
}

/// Over the API: cancelling a parent cancels the child its step waits for;
/// the child rolls back on its own, and the parent ends after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_parent_over_the_api_cancels_its_child() {
    let slow = "name: payment
steps:
  - id: charge
    action: mock
    with: { output: { paid: 1 } }
    compensate: { action: mock }
  - id: settle
    action: sleep
    with: { for: 1h }
";
    let dir = crate::server::folder(&[("parent.yaml", PARENT), ("payment.yaml", slow)]);
    let server = crate::server::Server::start(dir.path());
    let run = server.start_run("parent", serde_json::json!({ "fail": false, "ship_delay": "1ms" })).await;
    let waiting = server.until_status(&run, &["waiting"]).await;
    let child = waiting["steps"][1]["child_run"].as_str().expect("the child's id").to_owned();
    server.until_status(&child, &["waiting"]).await;
    let (status, _) = server.post(&format!("/v1/runs/{run}/cancel"), serde_json::json!({})).await;
    assert_eq!(status, 202);
    let parent = server.until_status(&run, &["compensated"]).await;
    assert_eq!(parent["steps"][1]["error"]["code"], "cancelled", "{parent}");
    let child = server.until_status(&child, &["compensated"]).await;
    assert_eq!(child["error"]["code"], "cancelled");
    assert_eq!(child["compensations"][0]["step"], "charge", "{child}");
}
