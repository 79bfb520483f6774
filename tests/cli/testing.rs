//! `sagaflow test` through the binary: the business workflows' tests pass; a
//! miss is named with its file, line and column; a wrong test file is a usage
//! error with its position.

use crate::harness::{repo, Test};

const FLOW: &str = "name: flow
steps:
  - id: reserve
    action: inventory.reserve
    with: { sku: MUG-001, quantity: 2 }
    compensate:
      action: inventory.release
      with: { reservation_id: '{{steps.reserve.output.reservation_id}}' }
  - id: done
    action: mock
    with: { output: { ok: true } }
output: { ok: '{{steps.done.output.ok}}' }
";

#[test]
fn the_business_workflows_tests_pass() {
    let out = Test::new().args(&["test", repo().join("workflows").to_str().unwrap_or_default()]).run();
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    assert_eq!(last, "52 passed, 0 failed", "{text}");
    for name in [
        "order_placement",
        "user_registration",
        "course_enrollment",
        "vendor_sync",
        "ai_request",
        "payment_refund",
        "payment",
    ] {
        assert!(text.contains(&format!("{name}.test.yaml\n")), "{name}: {text}");
    }
}

#[test]
fn a_miss_is_named_with_its_file_and_line() {
    let tests = "workflow: flow.yaml
tests:
  - name: passes
    expect: { status: succeeded, output: { ok: true }, leaks: ['stock still reserved: 2 x MUG-001 (res-1)'] }
  - name: misses twice
    fail: [done=conflict]
    expect:
      status: succeeded
      compensations: [reserve]
      sandbox:
        inventory.product.MUG-001: { reserved: 2 }
";
    let out = Test::new()
        .file("flow.yaml", FLOW)
        .file("flow.test.yaml", tests)
        .args(&["test", "flow.test.yaml"])
        .status(1)
        .run();
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = "flow.test.yaml
  ok    passes
  FAIL  misses twice
        flow.test.yaml:8:15: expected the run to end `succeeded`, it ended `compensated` (conflict: a failure injected by `--fail done=conflict`)
        flow.test.yaml:11:9: expected the sandbox record inventory.product.MUG-001 to hold {\"reserved\":2}, it is {\"sku\":\"MUG-001\",\"name\":\"Saga mug\",\"price_cents\":1299,\"stock\":100,\"reserved\":0}
ran 2 cases in ";
    assert!(text.starts_with(expected), "{text}");
    assert!(text.ends_with(" s\n1 passed, 1 failed\n"), "{text}");
}

#[test]
fn wrong_test_files_are_usage_errors_with_positions() {
    let cases = [
        (
            "workflow: flow.yaml\ntests:\n  - name: x\n    expect: { stauts: ok }\n",
            "error: t.test.yaml:4:15: unknown key `stauts`; did you mean `status`?\n",
        ),
        (
            "workflow: flow.yaml\ntests:\n  - name: x\n    fail: [reserv]\n    expect: {}\n",
            "error: t.test.yaml:4:12: --fail `reserv`: `flow` has no step `reserv`; did you mean `reserve`?\n",
        ),
        (
            "workflow: flow.yaml\ntests:\n  - name: x\n    expect: { steps: { don: failed } }\n",
            "error: t.test.yaml:4:29: `flow` has no step `don`; did you mean `done`?\n",
        ),
        ("workflow: flow.yaml\ntests: []\n", "error: t.test.yaml:2:8: `tests` has no case\n"),
        ("tests:\n  - name: x\n", "error: t.test.yaml:1:1: `workflow` is missing\n"),
    ];
    for (text, stderr) in cases {
        Test::new()
            .file("flow.yaml", FLOW)
            .file("t.test.yaml", text)
            .args(&["test", "t.test.yaml"])
            .stderr(stderr)
            .status(2)
            .run();
    }
    let out = Test::new().file("t.test.yaml", "workflow: [unclosed\n").args(&["test", "t.test.yaml"]).status(2).run();
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: t.test.yaml:"), "{:?}", out);
}

/// Time skips ahead only when a run waits on timers alone, so a day's sleep,
/// a retry's backoff and a two-day wait take no time, and the run's deadline
/// still comes in the middle of a sleep longer than it, as it would for real.
#[test]
fn time_skips_to_the_next_timer_and_a_deadline_still_cuts_a_sleep_short() {
    let flow = "name: slow
timeout: '{{DEADLINE}}'
steps:
  - id: reserve
    action: inventory.reserve
    with: { sku: MUG-001, quantity: 1 }
    compensate:
      action: inventory.release
      with: { reservation_id: '{{steps.reserve.output.reservation_id}}' }
  - id: nap
    action: sleep
    with: { for: 1d }
  - id: flaky
    action: mock
    retry: { max_attempts: 4, delay: 10m }
  - id: click
    action: event.wait
    with: { type: user.clicked, key: u-1 }
    timeout: 48h
output: { clicked: '{{steps.click.output.by}}' }
";
    let tests = "workflow: slow.yaml
tests:
  - name: sleeps, retries and waits without taking the time
    fail: [flaky=unavailablex3]
    events: { user.clicked: { by: ann } }
    expect: { status: succeeded, output: { clicked: ann }, steps: { flaky: succeeded } }
";
    let cut = "workflow: short.yaml
tests:
  - name: the deadline comes during the sleep
    expect: { status: compensated, steps: { nap: failed, click: pending }, compensations: [reserve], leaks: [] }
";
    let out = Test::new()
        .file("slow.yaml", flow.replace("'{{DEADLINE}}'", "5d"))
        .file("slow.test.yaml", tests)
        .file("short.yaml", flow.replace("'{{DEADLINE}}'", "12h").replace("name: slow", "name: short"))
        .file("short.test.yaml", cut)
        .args(&["test", "."])
        .run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("2 passed, 0 failed\n"), "{text}");
}

/// Every command reads the same config: `test` and `explore` run on the
/// services and templates `sagaflow.toml` (or `--config`) names, as `run` does.
#[test]
fn test_and_explore_read_the_config_as_run_does() {
    let workflow = "name: w
steps:
  - id: note
    action: notify.send
    with: { to: usr-ada, template: custom_note, data: { text: hello } }
output: { subject: '{{steps.note.output.subject}}' }
";
    let tests = "workflow: w.yaml\ntests:\n  - name: the config's template is sent\n    expect: { status: succeeded, output: { subject: A note } }\n";
    let mail = "custom_note:\n  subject: A note\n  body: \"{{text}}\"\n";
    let mut t = Test::new()
        .file("w.yaml", workflow)
        .file("w.test.yaml", tests)
        .file("sagaflow.toml", "[notifications]\ntemplates = \"mail.yaml\"\n")
        .file("mail.yaml", mail);
    let dir = t.path_buf();
    let out = Test::in_dir(&dir).args(&["test", "w.test.yaml"]).run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.ends_with("1 passed, 0 failed\n"), "{text}");
    let out = Test::in_dir(&dir).args(&["explore", "w.yaml", "--format", "json"]).run();
    let points: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(points[0]["status"], "succeeded", "the happy path sends the config's template: {points}");
}
