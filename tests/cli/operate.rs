//! Operating on runs through the binary and over HTTP (DSL.md C1, C2): a step
//! with `on_error: pause` parks its run `paused` (the process that ran it
//! stops, the run stays); `retry`, `skip` and `abort` take it up again, each
//! journaled with who asked; the API does the same, `/metrics` counts paused
//! runs, and a skip's output is checked against the action's output schema.

use serde_json::{json, Value};

use crate::harness::{sagaflow, Test};

const FLOW: &str = "name: flow
input: { type: object, properties: { card: { type: string } } }
steps:
  - id: hold
    action: inventory.reserve
    with: { sku: MUG-001, quantity: 1 }
    compensate: { action: inventory.release, with: { key: '{{step.key}}' } }
  - id: charge
    action: payments.charge
    with: { amount_cents: 500, payment_method: '{{input.card}}' }
    on_error: { pause: [card_declined] }
  - id: after
    action: mock
    with: { output: '{{steps.charge.output.payment_id}}' }
output: { payment: '{{steps.charge.output.payment_id}}' }
";

fn record(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

/// A bulk answer's runs, each with what it does (or would do).
fn what_each_does(page: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    page["runs"].as_array().into_iter().flatten().map(|r| (text(&r["run_id"]), text(&r["does"]))).collect()
}

fn cli(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    sagaflow().current_dir(dir).args(args).args(["--format", "json"]).output().expect("sagaflow")
}

#[test]
fn a_paused_run_survives_its_process_and_is_retried_skipped_or_aborted_from_the_cli() {
    let mut t = Test::new().file("w.yaml", FLOW);
    let dir = t.path_buf();
    let declined = r#"{"card": "tok_declined"}"#;
    let paused = |dir: &std::path::Path| {
        let out = cli(dir, &["run", "w.yaml", "--input", declined]);
        assert_eq!(out.status.code(), Some(1), "a paused run is not a success");
        let r = record(&out);
        assert_eq!(r["status"], "paused", "{r}");
        r["run_id"].as_str().expect("id").to_owned()
    };
    // Retry with a new `with`: a card that works.
    let id = paused(&dir);
    let with = r#"{"amount_cents": 500, "payment_method": "tok_visa"}"#;
    let out = cli(&dir, &["retry", &id, "--with", with]);
    let r = record(&out);
    assert_eq!(r["status"], "succeeded", "{r}");
    assert_eq!(r["steps"][1]["attempts"], 2, "the count goes on");
    // Skip, with an output that fits `payments.charge`'s, and one that does not.
    let id = paused(&dir);
    let out = cli(&dir, &["skip", &id, "--output", r#"{"payment_id": 12}"#]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not fit what `payments.charge` gives"));
    let paid = json!({"payment_id": "pay-by-phone", "status": "captured", "amount_cents": 500, "currency": "EUR",
        "captured_cents": 500, "refunded_cents": 0, "refundable_cents": 500, "reference": null});
    let out = cli(&dir, &["skip", &id, "--output", &paid.to_string()]);
    let r = record(&out);
    assert_eq!((r["status"].as_str(), r["steps"][1]["status"].as_str()), (Some("succeeded"), Some("skipped")), "{r}");
    assert_eq!(r["output"]["payment"], "pay-by-phone");
    // Abort: the reservation is undone; a dry run first says so and does nothing.
    let id = paused(&dir);
    let dry = record(&cli(&dir, &["abort", &id, "--dry-run"]));
    assert_eq!(dry["does"], "abort: roll back, undoing hold in that order", "{dry}");
    assert_eq!(record(&cli(&dir, &["show", &id]))["status"], "paused");
    let r = record(&cli(&dir, &["abort", &id]));
    assert_eq!(r["status"], "compensated", "{r}");
    assert_eq!(r["error"]["code"], "card_declined");
    // Nothing to retry once it ended.
    let out = cli(&dir, &["retry", &id]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot retry"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_a_paused_run_is_counted_and_acted_on_with_who_asked() {
    let dir = crate::server::folder(&[("flow.yaml", FLOW)]);
    let server = crate::server::Server::start(dir.path());
    let id = server.start_run("flow", json!({ "card": "tok_declined" })).await;
    server.until_status(&id, &["paused"]).await;
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(metrics.contains("sagaflow_runs{workflow=\"flow\",status=\"paused\"} 1"), "{metrics}");
    let (status, body) = server.post(&format!("/v1/runs/{id}/skip"), json!({ "output": { "payment_id": 1 } })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_output")), "{body}");
    let (status, body) = server.post(&format!("/v1/runs/{id}/retry"), json!({ "step": "hold" })).await;
    assert_eq!(status, 409, "{body}");
    // A dry run says what each act would do, and does nothing.
    let (status, body) = server.post(&format!("/v1/runs/{id}/abort?dry_run=true"), json!({})).await;
    assert_eq!((status, body["does"].as_str()), (200, Some("abort: roll back, undoing hold in that order")), "{body}");
    let (status, body) = server.post(&format!("/v1/runs/{id}/cancel?dry_run=true"), json!({})).await;
    assert_eq!((status, body["does"].as_str()), (200, Some("cancel: roll back, undoing hold in that order")), "{body}");
    let (status, body) = server.post(&format!("/v1/runs/{id}/retry?dry_run=yes"), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    let with = json!({ "amount_cents": 500, "payment_method": "tok_visa" });
    let (status, body) = server.post(&format!("/v1/runs/{id}/retry?dry_run=true"), json!({ "with": with })).await;
    assert_eq!((status, body["does"].as_str()), (200, Some("retry step charge with the new input")), "{body}");
    assert_eq!(server.until_status(&id, &["paused"]).await["status"], "paused", "the dry runs did nothing");
    let (status, body) = server.post(&format!("/v1/runs/{id}/retry"), json!({ "with": with })).await;
    assert_eq!(
        (status, body["step"].as_str(), body["by"].as_str()),
        (202, Some("charge"), Some("anonymous")),
        "{body}"
    );
    let done = server.until_status(&id, &["succeeded"]).await;
    assert_eq!(done["steps"][1]["attempts"], 2);
    let (_, history) = server.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(history["status"], "succeeded");
    let (status, body) = server.post(&format!("/v1/runs/{id}/abort"), json!({})).await;
    assert_eq!((status, body["error"]["status"].as_str()), (409, Some("succeeded")), "{body}");
}

/// DSL.md C2: `rerun` starts a new run of the same workflow with the same or
/// an edited input, linked both ways, from the CLI and over HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_starts_it_again_linked_both_ways_from_the_cli_and_over_http() {
    let mut t = Test::new().file("w.yaml", FLOW);
    let dir = t.path_buf();
    let first = record(&cli(&dir, &["run", "w.yaml", "--input", r#"{"card": "tok_declined"}"#]));
    let old = first["run_id"].as_str().expect("id").to_owned();
    let again = record(&cli(&dir, &["rerun", &old, "--input", r#"{"card": "tok_visa"}"#]));
    assert_eq!(
        (again["status"].as_str(), again["rerun_of"].as_str()),
        (Some("succeeded"), Some(old.as_str())),
        "{again}"
    );
    let shown = record(&cli(&dir, &["show", &old]));
    assert_eq!(shown["reruns"], json!([again["run_id"]]), "{shown}");

    let served = crate::server::folder(&[("flow.yaml", FLOW)]);
    let server = crate::server::Server::start(served.path());
    let id = server.start_run("flow", json!({ "card": "tok_visa" })).await;
    server.until_status(&id, &["succeeded"]).await;
    let (status, body) = server.post(&format!("/v1/runs/{id}/rerun"), json!({ "input": { "card": 5 } })).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input")),
        "an edited input is checked: {body}"
    );
    let (status, body) = server.post(&format!("/v1/runs/{id}/rerun"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    let new = body["run_id"].as_str().expect("new id").to_owned();
    let rerun = server.until_status(&new, &["succeeded"]).await;
    assert_eq!(rerun["input"], json!({ "card": "tok_visa" }), "the same input");
    let (_, old) = server.get(&format!("/v1/runs/{id}")).await;
    assert_eq!(old["reruns"], json!([new]));
}

/// DSL.md C2: acts by filter. A dry run says what each run would do and
/// does nothing; the real call does the same to the same runs, each run's
/// outcome apart; an empty filter is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_by_filter_with_a_dry_run_equal_to_the_real_call() {
    let dir = crate::server::folder(&[("flow.yaml", FLOW)]);
    let server = crate::server::Server::start(dir.path());
    let paused = [
        server.start_run("flow", json!({ "card": "tok_declined" })).await,
        server.start_run("flow", json!({ "card": "tok_declined" })).await,
    ];
    for id in &paused {
        server.until_status(id, &["paused"]).await;
    }
    let fine = server.start_run("flow", json!({ "card": "tok_visa" })).await;
    server.until_status(&fine, &["succeeded"]).await;

    let (status, body) = server.post("/v1/bulk/retry", json!({ "dry_run": true })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("empty_filter")), "{body}");
    let (status, _) = server.post("/v1/bulk/retyr", json!({ "workflow": "flow" })).await;
    assert_eq!(status, 404);

    let with = json!({ "amount_cents": 500, "payment_method": "tok_visa" });
    let filter = json!({ "workflow": "flow", "error_code": "card_declined", "dry_run": true, "with": with });
    let (status, dry) = server.post("/v1/bulk/retry", filter).await;
    assert_eq!(status, 200, "{dry}");
    let said = what_each_does(&dry);
    assert_eq!(said.len(), 2, "the paused runs, not the one that succeeded: {dry}");
    assert!(said.iter().all(|(_, does)| does == "retry step charge with the new input"), "{dry}");
    for id in &paused {
        let (_, r) = server.get(&format!("/v1/runs/{id}")).await;
        assert_eq!(r["status"], "paused", "a dry run does nothing");
    }
    let real = json!({ "workflow": "flow", "error_code": "card_declined", "with": with });
    let (status, done) = server.post("/v1/bulk/retry", real).await;
    assert_eq!(status, 200, "{done}");
    let did = what_each_does(&done);
    assert_eq!(did, said, "the real call does what the dry run said");
    for id in &paused {
        server.until_status(id, &["succeeded"]).await;
    }
}

#[test]
fn bulk_from_the_cli_says_first_then_does() {
    let mut t = Test::new().file("w.yaml", FLOW);
    let dir = t.path_buf();
    for _ in 0..2 {
        cli(&dir, &["run", "w.yaml", "--input", r#"{"card": "tok_declined"}"#]);
    }
    let out = Test::in_dir(&dir).args(&["bulk", "retry"]).status(2).run();
    assert!(String::from_utf8_lossy(&out.stderr).contains("an empty filter"));
    let with = r#"{"amount_cents": 500, "payment_method": "tok_visa"}"#;
    let dry = record(&cli(&dir, &["bulk", "retry", "--status", "paused", "--with", with, "--dry-run"]));
    assert_eq!(dry["runs"].as_array().map(Vec::len), Some(2), "{dry}");
    let said = "retry step charge with the new input";
    assert!(dry["runs"].as_array().into_iter().flatten().all(|r| r["does"] == said), "{dry}");
    let done = record(&cli(&dir, &["bulk", "retry", "--status", "paused", "--with", with]));
    assert_eq!(done["runs"], dry["runs"], "what the dry run said");
    let left = record(&cli(&dir, &["bulk", "retry", "--status", "paused", "--dry-run"]));
    assert_eq!(left["runs"], json!([]), "none is paused any more: {left}");
}
