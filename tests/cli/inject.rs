//! `sagaflow run --fail`: failures injected at the engine's dispatch, into any
//! action, recorded in the run record, and refused clearly when they name
//! nothing.

use serde_json::Value as Json;

use crate::harness::Test;

const FLOW: &str = "name: flow
steps:
  - id: reserve
    action: inventory.reserve
    with: { sku: MUG-001, quantity: 2 }
    retry: { max_attempts: 3, delay: 10ms }
    compensate:
      action: inventory.release
      with: { reservation_id: '{{steps.reserve.output.reservation_id}}' }
      retry: { max_attempts: 3, delay: 10ms }
  - id: wait
    action: sleep
    with: { for: 1ms }
  - id: announce
    action: event.emit
    with: { type: flow.done, key: k }
";

fn run(fails: &[&str], status: i32) -> Json {
    let mut args = vec!["run", "flow.yaml", "--data", "data", "--format", "json"];
    for f in fails {
        args.extend(["--fail", f]);
    }
    Test::new().file("flow.yaml", FLOW).args(&args).status(status).json()
}

#[test]
fn a_failure_injected_into_a_service_step_rolls_the_run_back_and_is_recorded() {
    let record = run(&["announce=conflict"], 1);
    assert_eq!(record["status"], "compensated");
    assert_eq!(record["error"]["code"], "conflict");
    assert_eq!(record["steps"][2]["error"]["message"], "a failure injected by `--fail announce=conflict`");
    assert_eq!(record["injected"], serde_json::json!([{ "step": "announce", "code": "conflict" }]));
    assert_eq!(record["compensations"][0]["step"], "reserve");
}

#[test]
fn only_the_first_attempts_fail_with_xn_and_the_retry_then_succeeds() {
    let record = run(&["reservex2"], 0);
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["steps"][0]["attempts"], 3);
    assert_eq!(record["injected"][0]["times"], 2);
}

#[test]
fn a_wait_step_and_a_compensation_can_fail_too() {
    let record = run(&["wait=timeout", "reserve.compensate=unavailable"], 1);
    assert_eq!(record["status"], "compensation_failed");
    assert_eq!(record["steps"][1]["error"]["code"], "timeout");
    assert_eq!(record["compensations"][0]["status"], "failed");
    assert_eq!(record["compensations"][0]["attempts"], 3, "the compensation's retries were spent");
}

#[test]
fn a_fail_naming_nothing_is_a_usage_error() {
    let fails = [
        ("reserv", "error: --fail `reserv`: `flow` has no step `reserv`; did you mean `reserve`?\n"),
        ("wait.compensate", "error: --fail `wait.compensate`: the step `wait` has no `compensate` to fail\n"),
        (
            "reserve=Oops",
            "error: --fail `reserve=Oops`: `Oops` is not an error code (lower-case letters, digits and `_`)\n",
        ),
    ];
    for (fail, stderr) in fails {
        Test::new().file("flow.yaml", FLOW).args(&["run", "flow.yaml", "--fail", fail]).stderr(stderr).status(2).run();
    }
}
