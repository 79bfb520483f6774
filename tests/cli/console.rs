//! The web console, end to end in a real headless Chromium: workflows with
//! their state, diagnostics and graph; a run started from the input form and
//! followed live; an event sent from the console; screenshots of each.

use serde_json::json;

use super::serve::{FIVE, WAITER};
use super::server::{folder, Server};
use super::webdriver::Browser;

const BROKEN: &str = "name: broken\nsteps:\n  - id: a\n    action: mok\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_workflows_starts_a_run_follows_it_and_sends_an_event() {
    let dir = folder(&[("five.yaml", FIVE), ("waiter.yaml", WAITER), ("broken.yaml", BROKEN)]);
    let server = Server::start(dir.path());
    let browser = Browser::start().await;
    browser.goto(&server.url).await;

    // The workflows, with their state.
    browser.until("#workflows", |t| t.contains("five") && t.contains("waiter") && t.contains("broken")).await;
    assert_eq!(browser.count(".wf[data-state=invalid]").await, 1);
    assert_eq!(browser.count(".wf[data-state=active]").await, 2);

    // An invalid workflow shows its diagnostics with file:line:column.
    browser.click(".wf[data-name=broken]").await;
    let diagnostics = browser.text("#diagnostics").await;
    assert!(diagnostics.contains("workflows/broken.yaml:4:13"), "{diagnostics}");
    assert!(diagnostics.contains("unknown-action") && diagnostics.contains("did you mean `mock`?"), "{diagnostics}");
    browser.screenshot("01-invalid-workflow").await;

    // A workflow as a graph of its steps.
    browser.click(".wf[data-name=waiter]").await;
    browser.text("#graph svg").await;
    assert_eq!(browser.count("#graph .node").await, 2);
    assert_eq!(browser.count("#graph .node.comp").await, 1, "the compensated step is marked");
    assert_eq!(browser.count("#graph path.edge").await, 1);
    browser.screenshot("02-workflow-graph").await;

    // A run started from the form made of the input schema, followed live.
    browser.click(".wf[data-name=five]").await;
    browser.type_into("#in-n", "41").await;
    browser.screenshot("03-start-form").await;
    browser.click("#start-button").await;
    browser.until("#run-status", |s| s == "succeeded").await;
    browser.until("#timeline", |t| t.contains("run finished")).await;
    let output = browser.text("#run-output").await;
    assert!(output.contains("41"), "{output}");
    assert!(browser.count("#timeline li[data-type=attempt_started]").await >= 5);
    browser.screenshot("04-run-succeeded").await;

    // A waiting run, woken by an event sent from the console's form.
    let run = server.start_run("waiter", json!({"key": "from-console"})).await;
    browser.goto(&format!("{}/#/runs/{run}", server.url)).await;
    browser.until("#run-status", |s| s == "waiting").await;
    browser.screenshot("05-run-waiting").await;
    browser.goto(&format!("{}/#/events", server.url)).await;
    browser.type_into("#event-type", "go").await;
    browser.type_into("#event-key", "from-console").await;
    browser.type_into("#event-data", "{\"by\": \"console\"}").await;
    browser.click("#event-send").await;
    let result = browser.until("#event-result", |t| t.contains("woke")).await;
    assert!(result.contains(&run), "{result}");
    browser.screenshot("06-event-sent").await;
    let record = server.until_status(&run, &["succeeded"]).await;
    assert_eq!(record["steps"][1]["output"], json!({"by": "console"}));

    // A run rolled back from the console: the timeline shows the compensation.
    let run = server.start_run("waiter", json!({"key": "to-cancel"})).await;
    browser.goto(&format!("{}/#/runs/{run}", server.url)).await;
    browser.until("#run-status", |s| s == "waiting").await;
    browser.click("#cancel-button").await;
    let said = browser.until("#confirm-text", |t| t.starts_with("Dry run")).await;
    assert!(said.contains("cancel: roll back"), "{said}");
    browser.click("#confirm-yes").await;
    browser.until("#run-status", |s| s == "compensated").await;
    browser.until("#timeline", |t| t.contains("compensation finished")).await;
    browser.screenshot("07-run-compensated").await;

    // The run list: filtered, and paged back to the oldest run.
    for n in 0..60 {
        server.start_run("five", json!({ "n": n })).await;
    }
    browser.goto(&format!("{}/#/runs", server.url)).await;
    browser.until("#runs-shown", |t| t == "50 shown").await;
    browser.screenshot("08-runs").await;
    browser.click("#runs-more").await;
    browser.until("#runs-shown", |t| t == "63 shown, all of them").await;
    assert_eq!(browser.count("#runs-more[hidden]").await, 1, "no older runs: the button goes");
    browser.choose("#runs-status", "compensated").await;
    browser.until("#runs-shown", |t| t == "1 shown, all of them").await;
    assert!(browser.text("#runs").await.contains(&run), "the rolled-back run is the one compensated");
    browser.choose("#runs-status", "").await;
    browser.choose("#runs-workflow", "waiter").await;
    browser.until("#runs-shown", |t| t == "2 shown, all of them").await;
    browser.screenshot("09-runs-filtered").await;
}

/// DSL.md B1: a parent's run page links the child run its step started, and
/// the child's page links back to the parent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_links_a_parent_run_and_its_child_both_ways() {
    let parent = "name: parent\nsteps:\n  - id: pay\n    action: workflow.run\n    with: { workflow: payment, input: { amount: 3 } }\n";
    let payment = "name: payment\nsteps:\n  - id: charge\n    action: mock\n    with: { output: { paid: '{{input.amount}}' } }\noutput: { paid: '{{steps.charge.output.paid}}' }\n";
    let dir = folder(&[("parent.yaml", parent), ("payment.yaml", payment)]);
    let server = Server::start(dir.path());
    let browser = Browser::start().await;
    let run = server.start_run("parent", json!({})).await;
    let record = server.until_status(&run, &["succeeded"]).await;
    let child = record["steps"][0]["child_run"].as_str().expect("the child's id").to_owned();
    browser.goto(&format!("{}/#/runs/{run}", server.url)).await;
    browser.until("#run-status", |s| s == "succeeded").await;
    let links = browser.until("#steps .child-runs", |t| t.contains(&child)).await;
    assert!(links.contains(&child), "{links}");
    browser.click("#steps .child-runs a").await;
    let back = browser.until("#run-parent", |t| t.contains(&run)).await;
    assert!(back.contains("pay"), "{back}");
    browser.screenshot("10-child-run").await;
    browser.click("#run-parent a").await;
    browser.until("#steps .child-runs", |t| t.contains(&child)).await;
}

/// An operator sees first what to do: a paused run names the step it waits
/// at and why; a `compensation_failed` run names the compensation that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_headlines_a_paused_run_and_a_failed_compensation() {
    let paused = "name: paused\nsteps:\n  - id: charge\n    action: mock\n    with: { fail: true, error: card_declined }\n    on_error: pause\n";
    let stuck = "name: stuck
steps:
  - id: hold
    action: mock
    compensate: { action: mock, with: { fail: true, error: unavailable } }
  - id: boom
    action: mock
    with: { fail: true, error: conflict }
";
    let dir = folder(&[("paused.yaml", paused), ("stuck.yaml", stuck)]);
    let server = Server::start(dir.path());
    let browser = Browser::start().await;
    let a = server.start_run("paused", json!({})).await;
    server.until_status(&a, &["paused"]).await;
    browser.goto(&format!("{}/#/runs/{a}", server.url)).await;
    let said = browser.until("#run-headline", |t| t.contains("Paused at step charge")).await;
    assert!(said.contains("card_declined") && said.contains("retry, skip or abort"), "{said}");
    let b = server.start_run("stuck", json!({})).await;
    server.until_status(&b, &["compensation_failed"]).await;
    browser.goto(&format!("{}/#/runs/{b}", server.url)).await;
    let said = browser.until("#run-headline", |t| t.contains("The compensation of hold")).await;
    assert!(said.contains("unavailable"), "{said}");
    browser.screenshot("11-compensation-failed").await;
}
