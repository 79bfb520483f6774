//! `sagaflow run`, `show`, `runs`, `resume` through the binary, on sled in a
//! temporary data directory: one scenario per rule of "How a run goes".

use serde_json::Value as Json;

use crate::harness::Test;

/// Runs a workflow (written into the test folder) and returns its run record.
fn run(yaml: &str, input: &str, status: i32) -> Json {
    Test::new()
        .file("w.yaml", yaml)
        .args(&["run", "w.yaml", "--data", "data", "--format", "json", "--input", input])
        .status(status)
        .json()
}

fn step<'a>(record: &'a Json, id: &str) -> &'a Json {
    record["steps"].as_array().and_then(|s| s.iter().find(|s| s["id"] == id)).unwrap_or(&Json::Null)
}

fn compensation_order(record: &Json) -> Vec<String> {
    record["compensations"]
        .as_array()
        .map(|c| c.iter().map(|c| c["step"].as_str().unwrap_or_default().to_owned()).collect())
        .unwrap_or_default()
}

#[test]
fn a_plain_list_runs_in_order_and_gives_its_output() {
    let r = run(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    with: { output: { n: 2 } }\n  - id: b\n    action: mock\n    with: { output: '{{steps.a.output.n}}' }\noutput:\n  doubled: '{{steps.b.output}}'\n",
        "{}",
        0,
    );
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["output"], serde_json::json!({ "doubled": 2 }));
    assert_eq!(step(&r, "b")["output"], 2, "a lone template keeps the number a number");
    assert!(r["run_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[test]
fn retries_count_attempts_and_stop_at_max_attempts() {
    let r = run(
        "name: w\nsteps:\n  - id: flaky\n    action: mock\n    with: { fail_attempts: 2, output: ok }\n    retry: { max_attempts: 3, delay: 10ms }\n",
        "{}",
        0,
    );
    assert_eq!(
        (step(&r, "flaky")["attempts"].as_u64(), step(&r, "flaky")["status"].as_str()),
        (Some(3), Some("succeeded"))
    );
    let r = run(
        "name: w\nsteps:\n  - id: flaky\n    action: mock\n    with: { fail_attempts: 5 }\n    retry: { max_attempts: 3, delay: 10ms, backoff: fixed }\n",
        "{}",
        1,
    );
    assert_eq!(step(&r, "flaky")["attempts"], 3);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["code"], "unavailable");
}

#[test]
fn non_retryable_codes_and_on_filters_are_never_retried() {
    let r = run(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    with: { fail: true, error: card_declined }\n    retry: { max_attempts: 5, delay: 10ms }\n",
        "{}",
        1,
    );
    assert_eq!(step(&r, "a")["attempts"], 1, "card_declined is not retryable");
    let r = run(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    with: { fail: true, error: timeout }\n    retry: { max_attempts: 5, delay: 10ms, on: [unavailable] }\n",
        "{}",
        1,
    );
    assert_eq!(step(&r, "a")["attempts"], 1, "timeout is not in `on`");
}

#[test]
fn a_slow_attempt_times_out_and_is_retried() {
    let r = run(
        "name: w\nsteps:\n  - id: slow\n    action: mock\n    with: { delay: 5s }\n    timeout: 50ms\n    retry: { max_attempts: 2, delay: 10ms }\n",
        "{}",
        1,
    );
    let s = step(&r, "slow");
    assert_eq!((s["attempts"].as_u64(), s["error"]["code"].as_str()), (Some(2), Some("timeout")));
}

#[test]
fn the_run_timeout_rolls_back() {
    let r = run(
        "name: w\ntimeout: 200ms\nsteps:\n  - id: a\n    action: mock\n    compensate: { action: mock }\n  - id: b\n    action: mock\n    with: { delay: 10s }\n",
        "{}",
        1,
    );
    assert_eq!(r["status"], "compensated");
    assert_eq!(r["error"]["code"], "timeout");
    assert_eq!(step(&r, "b")["error"]["code"], "cancelled", "the attempt in flight was cancelled");
    assert_eq!(compensation_order(&r), vec!["a"]);
}

#[test]
fn compensations_run_in_reverse_completion_order_then_on_failure() {
    let yaml = "name: w
steps:
  - id: first
    action: mock
    with: { output: { id: f-1 } }
    compensate: { action: mock, with: { output: 'undo {{steps.first.output.id}}' } }
  - id: slow
    action: mock
    needs: []
    with: { delay: 100ms }
    compensate: { action: mock }
  - id: no_undo
    action: mock
    needs: [first]
  - id: boom
    action: mock
    needs: [slow, no_undo]
    with: { fail: true, error: conflict }
on_failure:
  - id: tell
    action: mock
    with: { output: 'failed at {{error.step}}: {{error.code}}' }
";
    let r = run(yaml, "{}", 1);
    assert_eq!(r["status"], "compensated");
    assert_eq!(compensation_order(&r), vec!["slow", "first"], "slow finished last, so it is undone first");
    assert_eq!(step(&r, "first")["status"], "compensated");
    assert_eq!(step(&r, "no_undo")["status"], "succeeded");
    assert_eq!(step(&r, "tell")["output"], "failed at boom: conflict");
    assert_eq!(
        r["error"],
        serde_json::json!({ "step": "boom", "code": "conflict", "message": "mock failure on attempt 1" })
    );
}

#[test]
fn a_failing_compensation_is_retried_then_reported() {
    let r = run(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    compensate: { action: mock, with: { fail: true }, retry: { max_attempts: 2, delay: 10ms } }\n  - id: b\n    action: mock\n    with: { fail: true, error: failed }\n",
        "{}",
        1,
    );
    assert_eq!(r["status"], "compensation_failed");
    assert_eq!(step(&r, "a")["status"], "compensation_failed");
    assert_eq!(r["compensations"][0]["attempts"], 2);
}

#[test]
fn nothing_to_undo_is_failed() {
    let r = run("name: w\nsteps:\n  - id: a\n    action: mock\n    with: { fail: true, error: failed }\n", "{}", 1);
    assert_eq!(r["status"], "failed");
}

#[test]
fn on_error_continue_keeps_the_run_going() {
    let r = run(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    on_error: continue\n    with: { fail: true, error: failed }\n  - id: b\n    action: mock\n    with: { output: '{{steps.a.status}}' }\n",
        "{}",
        0,
    );
    assert_eq!(r["status"], "succeeded");
    assert_eq!(step(&r, "a")["status"], "failed");
    assert_eq!(step(&r, "b")["output"], "failed");
}

#[test]
fn when_skips_and_steps_after_still_run() {
    let r = run(
        "name: w\ninput: { type: object, properties: { paid: { type: boolean } } }\nsteps:\n  - id: charge\n    action: mock\n    when: '{{input.paid}}'\n    with: { output: { id: p } }\n  - id: receipt\n    action: mock\n    with: { output: \"{{default steps.charge.output.id 'free'}}\" }\n",
        r#"{"paid": false}"#,
        0,
    );
    assert_eq!(step(&r, "charge")["status"], "skipped");
    assert_eq!(step(&r, "receipt")["output"], "free");
}

#[test]
fn for_each_keeps_item_order_and_compensates_each_item() {
    let yaml = "name: w
steps:
  - id: each
    action: mock
    for_each: '{{input.items}}'
    concurrency: 3
    with: { output: 'r-{{item}}-{{index}}', delay: '{{item}}' }
    compensate: { action: mock, with: { output: 'undo {{lookup steps.each.output index}}' } }
  - id: boom
    action: mock
    with: { fail: true, error: failed }
";
    let r = run(yaml, r#"{"items": ["30ms", "1ms", "10ms"]}"#, 1);
    assert_eq!(
        step(&r, "each")["output"],
        serde_json::json!(["r-30ms-0", "r-1ms-1", "r-10ms-2"]),
        "item order, not finish order"
    );
    assert_eq!(r["compensations"].as_array().map(Vec::len), Some(3));
    let items: Vec<u64> = r["compensations"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["item"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(items, vec![0, 2, 1], "reverse completion order: 1ms, 10ms, 30ms finished in that order");
}

#[test]
fn input_is_checked_against_the_input_schema_before_any_step() {
    let r = run(
        "name: w\ninput: { type: object, required: [order_id], properties: { order_id: { type: string } } }\nsteps:\n  - id: a\n    action: mock\n",
        r#"{"order_id": 12}"#,
        1,
    );
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["code"], "schema");
    assert!(r["error"]["message"].as_str().is_some_and(|m| m.contains("/order_id")), "{r}");
    assert_eq!(step(&r, "a")["attempts"], 0);
}

#[test]
fn a_template_failing_at_run_time_fails_its_step_with_code_template() {
    // A path through a number (a missing field is null, DSL.md A5).
    let r =
        run("name: w\nsteps:\n  - id: a\n    action: mock\n    with: { output: '{{input.n.x}}' }\n", r#"{"n": 5}"#, 1);
    let e = &step(&r, "a")["error"];
    assert_eq!(e["code"], "template");
    assert!(e["message"].as_str().is_some_and(|m| m.contains("step `a`") && m.contains("with.output")), "{e}");
}

#[test]
fn bad_input_and_bad_workflows_are_usage_errors() {
    Test::new()
        .file("w.yaml", "name: w\nsteps:\n  - id: a\n    action: mock\n")
        .args(&["run", "w.yaml", "--data", "data", "--input", "{not json"])
        .status(2)
        .run();
    Test::new()
        .file("w.yaml", "name: w\nsteps:\n  - id: a\n    action: mokc\n")
        .args(&["run", "w.yaml", "--data", "data"])
        .status(2)
        .run();
    Test::new().args(&["run", "nothing_here", "--data", "data"]).status(2).run();
}

#[test]
fn a_foreign_data_directory_is_refused_clearly() {
    let out = Test::new()
        .file("data/notes.txt", "not a store")
        .file("w.yaml", "name: w\nsteps:\n  - id: a\n    action: mock\n")
        .args(&["run", "w.yaml", "--data", "data"])
        .status(2)
        .run();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a sagaflow data directory"));
}

#[test]
fn show_and_runs_read_the_store() {
    let mut t =
        Test::new().file("w.yaml", "name: shown\nsteps:\n  - id: a\n    action: mock\n    with: { output: 1 }\n");
    let dir = t.path_buf();
    let r = t.args(&["run", "w.yaml", "--data", "data", "--format", "json"]).json();
    let id = r["run_id"].as_str().unwrap_or_default().to_owned();
    let shown = Test::in_dir(&dir).args(&["show", &id, "--data", "data", "--format", "json"]).json();
    assert_eq!(shown, r);
    let listed =
        Test::in_dir(&dir).args(&["runs", "--data", "data", "--status", "succeeded", "--format", "json"]).json();
    assert_eq!(listed[0]["run_id"], id.as_str());
    assert_eq!(listed[0]["workflow"], "shown");
    let none = Test::in_dir(&dir).args(&["runs", "--data", "data", "--status", "failed", "--format", "json"]).json();
    assert_eq!(none, serde_json::json!([]));
    Test::in_dir(&dir).args(&["show", "nope", "--data", "data"]).status(2).run();
}

#[test]
fn a_run_waiting_long_leaves_memory_and_comes_back_when_its_timer_fires() {
    // The backoff (3 s) is longer than the eviction threshold (2 s): the run is
    // taken out of memory, then read back from its journal to finish.
    let r = run(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    with: { output: 1 }\n  - id: b\n    action: mock\n    with: { fail_attempts: 1, output: '{{steps.a.output}}' }\n    retry: { max_attempts: 2, delay: 3s, backoff: fixed }\n",
        "{}",
        0,
    );
    assert_eq!(step(&r, "b")["attempts"], 2);
    assert_eq!(step(&r, "b")["output"], 1);
}

#[test]
fn a_corrupt_data_directory_is_refused_clearly() {
    let mut t = Test::new().file("w.yaml", "name: w\nsteps:\n  - id: a\n    action: mock\n");
    let dir = t.path_buf();
    Test::in_dir(&dir).args(&["run", "w.yaml", "--data", "data"]).run();
    let garbage: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.join("data/db"), garbage).expect("corrupt the database file");
    let out = Test::in_dir(&dir).args(&["runs", "--data", "data"]).status(2).run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("corrupt"), "{stderr}");
}

#[test]
fn defaults_apply_to_steps_that_set_nothing_and_a_workflow_runs_by_name() {
    let yaml = "name: with_defaults\ndefaults:\n  retry: { max_attempts: 3, delay: 1ms }\n  timeout: 50ms\nsteps:\n  - id: inherits\n    action: mock\n    with: { fail_attempts: 2, output: ok }\n  - id: own\n    action: mock\n    with: { delay: 1s }\n    retry: { max_attempts: 1 }\n    on_error: continue\n";
    let r = Test::new()
        .file("workflows/some_file.yaml", yaml)
        .args(&["run", "with_defaults", "--data", "data", "--format", "json"])
        .json();
    assert_eq!(step(&r, "inherits")["attempts"], 3, "defaults.retry");
    assert_eq!(step(&r, "own")["attempts"], 1, "its own retry wins");
    assert_eq!(step(&r, "own")["error"]["code"], "timeout", "defaults.timeout");
}

#[test]
fn sleep_waits_and_gives_when_it_woke() {
    let r = run("name: w\nsteps:\n  - id: nap\n    action: sleep\n    with: { for: 300ms }\n  - id: after\n    action: mock\n    with: { output: '{{steps.nap.output.woke_at}}' }\n", "{}", 0);
    let nap = step(&r, "nap");
    assert_eq!(nap["duration_ms"], 300, "the wake time comes from the journaled start");
    assert!(nap["output"]["woke_at"].as_str().is_some_and(|t| t.ends_with('Z')), "{nap}");
    assert_eq!(step(&r, "after")["output"], nap["output"]["woke_at"]);
}

#[test]
fn a_sleep_is_cut_short_by_a_roll_back_and_bounded_by_its_timeout() {
    let started = std::time::Instant::now();
    let r = run(
        "name: w\ntimeout: 300ms\nsteps:\n  - id: a\n    action: mock\n    compensate: { action: mock }\n  - id: nap\n    action: sleep\n    with: { for: 20s }\n",
        "{}",
        1,
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the sleep did not hold the roll-back");
    assert_eq!(r["status"], "compensated");
    assert_eq!(step(&r, "nap")["error"]["code"], "cancelled");
    let r =
        run("name: w\nsteps:\n  - id: nap\n    action: sleep\n    with: { for: 20s }\n    timeout: 100ms\n", "{}", 1);
    assert_eq!(step(&r, "nap")["error"]["code"], "timeout");
    let r =
        run("name: w\nsteps:\n  - id: nap\n    action: sleep\n    with: { until: '1999-01-01T00:00:00Z' }\n", "{}", 0);
    assert_eq!(step(&r, "nap")["status"], "succeeded", "a time in the past wakes at once");
}

#[test]
fn run_input_is_bounded_in_size_and_depth() {
    let big = format!("{{\"x\": \"{}\"}}", "a".repeat(1_100_000));
    let deep = format!("{}1{}", "[".repeat(500), "]".repeat(500));
    for (name, input) in [("big.json", big), ("deep.json", deep)] {
        let out = Test::new()
            .file("w.yaml", "name: w\nsteps:\n  - id: a\n    action: mock\n")
            .file(name, input)
            .args(&["run", "w.yaml", "--data", "data", "--input", &format!("@{name}")])
            .status(2)
            .run();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(name), "{stderr}");
    }
}

/// DSL.md A5: the input schema's defaults are filled in (the record shows
/// them), a `when` on a missing field skips its step, and a path through a
/// number fails the step naming it.
#[test]
fn defaults_are_filled_missing_fields_are_null_and_a_path_through_a_number_fails() {
    let flow = "name: shop
input:
  type: object
  properties:
    currency: { type: string, default: EUR }
    items: { type: array, items: { type: object, properties: { quantity: { type: integer, default: 1 } } } }
    gift: { type: object }
steps:
  - id: wrap
    action: mock
    when: '{{input.gift.paper}}'
  - id: show
    action: mock
    with: { output: { currency: '{{input.currency}}', note: 'gift: {{input.gift.note}}' } }
  - id: bad
    action: mock
    needs: [show]
    with: { output: '{{input.items.0.quantity.value}}' }
";
    let out = Test::new()
        .file("shop.yaml", flow)
        .args(&["run", "shop.yaml", "--input", r#"{"items": [{"sku": "A"}]}"#, "--format", "json"])
        .status(1)
        .run();
    let record: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(record["input"], serde_json::json!({ "currency": "EUR", "items": [{ "sku": "A", "quantity": 1 }] }));
    assert_eq!(record["steps"][0]["status"], "skipped", "a when on a missing field skips");
    assert_eq!(record["steps"][1]["output"], serde_json::json!({ "currency": "EUR", "note": "gift: " }));
    assert_eq!(record["steps"][2]["error"]["code"], "template");
    let message = record["steps"][2]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("`input.items.0.quantity` is a number, which has no field `value`"), "{message}");
}

/// Frictions a new user hit: `actions NAME` shows one action whole; a
/// misspelt action or workflow name says "did you mean"; `runs` lists the
/// newest first, with when each started.
#[test]
fn actions_name_did_you_mean_and_runs_newest_first() {
    let out = Test::new().args(&["actions", "payments.refund"]).run();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("effect:  irreversible") && text.contains("refund_exceeds_charge"), "{text}");
    assert!(text.contains("\"payment_id\""), "the input schema: {text}");
    let out = Test::new().args(&["actions", "payments.refnd"]).status(2).run();
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `payments.refund`?"));

    let mut t = Test::new()
        .file("workflows/first.yaml", "name: first\nsteps:\n  - id: a\n    action: mock\n")
        .file("workflows/second.yaml", "name: second\nsteps:\n  - id: a\n    action: mock\n");
    let dir = t.path_buf();
    let out = Test::in_dir(&dir).args(&["run", "frist"]).status(2).run();
    assert!(String::from_utf8_lossy(&out.stderr).contains("did you mean `first`?"), "{:?}", out);
    Test::in_dir(&dir).args(&["run", "first"]).run();
    std::thread::sleep(std::time::Duration::from_millis(5));
    Test::in_dir(&dir).args(&["run", "second"]).run();
    let out = Test::in_dir(&dir).args(&["runs"]).run();
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].ends_with("started"), "{text}");
    assert!(lines[1].contains("second") && lines[2].contains("first"), "newest first: {text}");
    assert!(lines[1].contains("T") && lines[1].trim_end().ends_with('Z'), "a start time: {text}");
}
