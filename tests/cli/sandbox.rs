//! The sandbox through the binary: state that outlives the process, `show`,
//! `reset`, and a config that is wrong.

use serde_json::Value as Json;

use crate::harness::Test;

const ORDER: &str = r#"name: sandbox_order
steps:
  - id: reserve
    action: inventory.reserve
    with: { sku: BOOK-001, quantity: 2, reference: "{{run.id}}" }
    compensate:
      action: inventory.release
      with: { reservation_id: "{{steps.reserve.output.reservation_id}}" }
  - id: charge
    needs: [reserve]
    action: payments.charge
    with: { amount_cents: 9998, payment_method: "{{input.card}}" }
    compensate:
      action: payments.refund
      with: { payment_id: "{{steps.charge.output.payment_id}}" }
  - id: confirm
    needs: [charge]
    action: notify.send
    with: { to: usr-ada, template: order_confirmation, data: { order_id: "{{run.id}}", total: "99.98 EUR" } }
"#;

fn book(state: &Json) -> Json {
    let products = state["inventory"]["product"].as_array().cloned().unwrap_or_default();
    products.into_iter().find(|p| p["sku"] == "BOOK-001").unwrap_or_default()
}

#[test]
fn effects_outlive_the_process_and_a_failed_run_gives_them_back() {
    let mut t = Test::new().file("o.yaml", ORDER);
    let dir = t.path_buf();
    let show = || Test::in_dir(&dir).args(&["sandbox", "show", "--data", "data", "--format", "json"]).json();
    assert_eq!(book(&show())["reserved"], 0);

    let ok = ["run", "o.yaml", "--data", "data", "--format", "json", "--input", r#"{"card": "tok_visa"}"#];
    let record = Test::in_dir(&dir).args(&ok).json();
    assert_eq!(record["status"], "succeeded");
    let state = show();
    assert_eq!(book(&state)["reserved"], 2, "the reservation reached the disk with the run");
    assert_eq!(state["payments"]["payment"].as_array().map(Vec::len), Some(2), "the seeded one and this charge");
    let mail = &state["mail"]["mail"][0];
    assert_eq!((mail["to"].clone(), mail["template"].clone()), ("ada@example.com".into(), "order_confirmation".into()));

    let declined = ["run", "o.yaml", "--data", "data", "--format", "json", "--input", r#"{"card": "tok_declined"}"#];
    let record = Test::in_dir(&dir).args(&declined).status(1).json();
    assert_eq!(record["status"], "compensated");
    assert_eq!(record["error"]["code"], "card_declined");
    assert_eq!(book(&show())["reserved"], 2, "the failed run's reservation was released");

    Test::in_dir(&dir)
        .args(&["sandbox", "reset", "--data", "data"])
        .stdout("the sandbox in data is back to its seed\n")
        .run();
    let state = show();
    assert_eq!(book(&state)["reserved"], 0);
    assert_eq!(state["mail"]["mail"].as_array().map(Vec::len), Some(0));
    let runs = Test::in_dir(&dir).args(&["runs", "--data", "data", "--format", "json"]).json();
    assert_eq!(runs.as_array().map(Vec::len), Some(2), "a reset keeps the runs");
}

#[test]
fn show_prints_one_service() {
    Test::new()
        .args(&["sandbox", "show", "orders", "--data", "d"])
        .stdout(concat!(
            "orders\n",
            "  order (1)\n",
            "    {\"order_id\":\"ord-1001\",\"user_id\":\"usr-ada\",\"items\":[{\"sku\":\"BOOK-001\",\"quantity\":1,\"price_cents\":4999},{\"sku\":\"MUG-001\",\"quantity\":1,\"price_cents\":1299}],\"total_cents\":6298,\"payment_id\":\"pay-1001\",\"status\":\"paid\"}\n",
        ))
        .run();
}

#[test]
fn show_and_reset_need_no_secret_the_config_names() {
    let config = "[services.payments]\nbackend = \"http\"\nbase_url = \"http://127.0.0.1:9/v1\"\nbearer_secret = \"NOT_SET_ANYWHERE\"\n";
    let hello = "name: hello\nsteps:\n  - { id: a, action: mock, with: { output: 1 } }\n";
    let mut t = Test::new().file("sagaflow.toml", config).file("hello.yaml", hello);
    let dir = t.path_buf();
    let reset = Test::in_dir(&dir).args(&["sandbox", "reset", "--data", "d"]);
    reset.stdout("the sandbox in d is back to its seed\n").run();
    Test::in_dir(&dir).args(&["sandbox", "show", "mail", "--data", "d"]).stdout("mail\n  mail (0)\n").run();
    Test::in_dir(&dir)
        .args(&["run", "hello.yaml", "--data", "d"])
        .stderr("error: sagaflow.toml:4:17: services.payments.bearer_secret names the secret `NOT_SET_ANYWHERE`, but SAGAFLOW_SECRET_NOT_SET_ANYWHERE is not set\n")
        .status(2)
        .run();
}

#[test]
fn an_unknown_service_is_bad_usage() {
    Test::new()
        .args(&["sandbox", "show", "invetory", "--data", "d"])
        .stderr("error: there is no sandbox service `invetory`; did you mean `inventory`?\n")
        .status(2)
        .run();
}

#[test]
fn a_wrong_config_stops_the_run_with_file_line_and_key() {
    Test::new()
        .file("w.yaml", "name: w\nsteps:\n  - id: a\n    action: mock\n")
        .file("sagaflow.toml", "[services.payments]\nbackend = \"http\"\ntimeout = \"5s\"\n")
        .args(&["run", "w.yaml", "--data", "d"])
        .stderr("error: sagaflow.toml:2:11: services.payments: the http backend needs `base_url`\n")
        .status(2)
        .run();
    Test::new()
        .file("w.yaml", "name: w\nsteps:\n  - id: a\n    action: mock\n")
        .file("other.toml", "[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\npasword_secret = \"X\"\n")
        .args(&["run", "w.yaml", "--data", "d", "--config", "other.toml"])
        .stderr("error: other.toml:4:1: unknown field `pasword_secret`, expected one of `host`, `port`, `tls`, `from`, `username`, `password_secret`, `timeout`\n")
        .status(2)
        .run();
}

#[test]
fn a_service_error_code_can_be_retried_or_not_as_the_dsl_says() {
    // out_of_stock is not retryable: one attempt, then nothing to undo.
    let record = Test::new()
        .file("w.yaml", "name: w\nsteps:\n  - id: r\n    action: inventory.reserve\n    with: { sku: RARE-001, quantity: 1 }\n    retry: { max_attempts: 5, delay: 10ms }\n")
        .args(&["run", "w.yaml", "--data", "d", "--format", "json"])
        .status(1)
        .json();
    assert_eq!((record["status"].clone(), record["steps"][0]["attempts"].clone()), ("failed".into(), 1.into()));
    assert_eq!(record["error"]["code"], "out_of_stock");
}

#[test]
fn every_attempt_logs_its_action_outcome_and_duration() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    std::fs::write(dir.path().join("o.yaml"), ORDER).expect("write");
    let output = crate::harness::sagaflow()
        .args(["run", "o.yaml", "--data", "data", "--input", r#"{"card": "tok_declined"}"#])
        .env("SAGAFLOW_LOG", "info")
        .current_dir(dir.path())
        .output()
        .expect("run sagaflow");
    let logs = String::from_utf8_lossy(&output.stderr);
    let line = |part: &str| logs.lines().find(|l| l.contains(part)).unwrap_or_default().to_owned();
    let finished = line("attempt finished");
    for part in ["step=reserve", "attempt=1", "action=inventory.reserve", "outcome=\"ok\"", "duration_ms="] {
        assert!(finished.contains(part), "{part} in: {finished}\n{logs}");
    }
    let failed = line("attempt failed");
    for part in ["step=charge", "action=payments.charge", "outcome=card_declined", "duration_ms="] {
        assert!(failed.contains(part), "{part} in: {failed}\n{logs}");
    }
}
