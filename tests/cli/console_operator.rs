//! The console as an operator uses it, in headless Chromium: each act
//! (retry, skip, abort, rerun, cancel) confirmed from the server's dry run,
//! then clicked through to its result; what a run waits for; the run list's
//! failed step, error code and "ended badly" filter; the header's counts; and
//! a 12-step graph that never makes the page scroll sideways at 1280 px.

use serde_json::json;

use super::serve::WAITER;
use super::server::{folder, Server};
use super::webdriver::Browser;

const FLAKY: &str = "name: flaky
steps:
  - id: hold
    action: mock
    with: { output: held }
    compensate: { action: mock, with: { output: released } }
  - id: charge
    action: mock
    needs: [hold]
    with: { fail_attempts: 1, error: card_declined, output: { paid: true } }
    on_error: pause
";
const DECLINED: &str = "name: declined
steps:
  - id: charge
    action: mock
    with: { fail: true, error: card_declined }
    on_error: pause
";
const BOOM: &str = "name: boom\nsteps:\n  - { id: explode, action: mock, with: { fail: true, error: conflict } }\n";

/// Twelve steps in twelve layers, with names too long for their boxes.
fn twelve() -> String {
    let mut y = String::from("name: twelve\nsteps:\n");
    for i in 0..12 {
        let needs = if i == 0 {
            String::new()
        } else {
            format!(", needs: [reserve_the_inventory_for_order_line_{:02}]", i - 1)
        };
        y.push_str(&format!(
            "  - {{ id: reserve_the_inventory_for_order_line_{i:02}, action: mock, with: {{ output: {i} }}{needs} }}\n"
        ));
    }
    y
}

/// Whether the page scrolls sideways, and whether every graph label fits its box.
async fn layout(browser: &Browser) -> (bool, bool) {
    let sideways = browser
        .script("return document.documentElement.scrollWidth > document.documentElement.clientWidth;", json!([]))
        .await;
    let fits = browser
        .script(
            "return [...document.querySelectorAll('svg .node')].every(n => { \
               const w = n.querySelector('rect').width.baseVal.value; \
               return [...n.querySelectorAll('text')].every(t => t.getBBox().x + t.getBBox().width <= w); });",
            json!([]),
        )
        .await;
    (sideways == json!(true), fits == json!(true))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_acts_on_runs_from_the_console_after_a_dry_run_says_what_will_happen() {
    let twelve = twelve();
    let dir = folder(&[
        ("flaky.yaml", FLAKY),
        ("declined.yaml", DECLINED),
        ("boom.yaml", BOOM),
        ("waiter.yaml", WAITER),
        ("twelve.yaml", &twelve),
    ]);
    let server = Server::start(dir.path());
    let browser = Browser::start().await;
    browser.resize(1280, 900).await;

    // Retry a paused step: the dry run says what, then it goes on and succeeds.
    let a = server.start_run("flaky", json!({})).await;
    server.until_status(&a, &["paused"]).await;
    browser.goto(&format!("{}/#/runs/{a}", server.url)).await;
    let waits = browser.until("#run-waits", |t| t.contains("charge")).await;
    assert!(waits.contains("an operator"), "{waits}");
    browser.click("#op-retry").await;
    let said = browser.until("#confirm-text", |t| t.starts_with("Dry run")).await;
    assert_eq!(said, "Dry run: this would retry step charge.");
    browser.screenshot("12-confirm-retry").await;
    browser.click("#confirm-yes").await;
    browser.until("#run-status", |s| s == "succeeded").await;

    // Rerun it: a new run, linked to the old one.
    browser.click("#op-rerun").await;
    let said = browser.until("#confirm-text", |t| t.starts_with("Dry run")).await;
    assert!(said.contains("rerun: a new run of flaky") && said.contains("the same input"), "{said}");
    browser.click("#confirm-yes").await;
    let linked = browser.until("#run-rerun-of", |t| t.contains(&a)).await;
    assert!(linked.contains(&a), "{linked}");

    // Skip a paused step with the output it should have had; a wrong output is refused first.
    let b = server.start_run("declined", json!({})).await;
    server.until_status(&b, &["paused"]).await;
    browser.goto(&format!("{}/#/runs/{b}", server.url)).await;
    browser.until("#run-status", |s| s == "paused").await;
    browser.click("#op-skip").await;
    browser.until("#confirm-text", |t| t.starts_with("Dry run")).await;
    browser.type_into("#confirm-json", "{\"paid\": \"by hand\"}").await;
    browser.click("#confirm-check").await;
    let said = browser.until("#confirm-text", |t| t.contains("giving the output")).await;
    assert_eq!(said, "Dry run: this would skip step charge, giving the output.");
    browser.click("#confirm-yes").await;
    browser.until("#run-status", |s| s == "succeeded").await;
    let output = browser.text("#steps").await;
    assert!(output.contains("skipped"), "{output}");

    // Abort a paused run: the dry run names what the roll-back undoes.
    let c = server.start_run("flaky", json!({})).await;
    server.until_status(&c, &["paused"]).await;
    browser.goto(&format!("{}/#/runs/{c}", server.url)).await;
    browser.until("#run-status", |s| s == "paused").await;
    browser.click("#op-abort").await;
    let said = browser.until("#confirm-text", |t| t.starts_with("Dry run")).await;
    assert_eq!(said, "Dry run: this would abort: roll back, undoing hold in that order.");
    browser.click("#confirm-no").await;
    assert_eq!(browser.count("#confirm").await, 0, "kept as is: the panel goes and nothing happens");
    assert_eq!(server.until_status(&c, &["paused"]).await["status"], "paused");
    browser.click("#op-abort").await;
    browser.until("#confirm-text", |t| t.starts_with("Dry run")).await;
    browser.click("#confirm-yes").await;
    browser.until("#run-status", |s| s == "compensated").await;

    // A waiting run says what it waits for; cancel asks first too.
    let d = server.start_run("waiter", json!({"key": "k-42"})).await;
    server.until_status(&d, &["waiting"]).await;
    browser.goto(&format!("{}/#/runs/{d}", server.url)).await;
    let waits = browser.until("#run-waits", |t| t.contains("k-42")).await;
    assert!(waits.contains("event go with key k-42 until"), "{waits}");
    browser.screenshot("13-run-waits").await;
    browser.click("#cancel-button").await;
    let said = browser.until("#confirm-text", |t| t.starts_with("Dry run")).await;
    assert_eq!(said, "Dry run: this would cancel: roll back, undoing reserve in that order.");
    browser.click("#confirm-yes").await;
    browser.until("#run-status", |s| s == "compensated").await;

    // The run list: the failed step and error code, and the runs that ended badly.
    let e = server.start_run("boom", json!({})).await;
    server.until_status(&e, &["failed"]).await;
    browser.goto(&format!("{}/#/runs", server.url)).await;
    let row = browser.until(&format!("#runs tr[data-run='{e}']"), |t| t.contains("conflict")).await;
    assert!(row.contains("explode") && row.contains("conflict"), "{row}");
    browser.choose("#runs-status", "failed,compensated,compensation_failed").await;
    browser.until("#runs-shown", |t| t == "3 shown, all of them").await;
    let listed = browser.text("#runs").await;
    assert!(listed.contains(&e) && listed.contains(&c) && listed.contains(&d) && !listed.contains(&a), "{listed}");
    browser.screenshot("14-runs-ended-badly").await;

    // The header counts the workflows the list shows.
    let health = browser.until("#health", |t| t.contains("workflows")).await;
    let listed = browser.count("#workflows .wf").await;
    assert!(health.contains(&format!("{listed} workflows: {listed} active")), "{health} against {listed} listed");

    // Twelve steps at 1280 px: the graph wraps, the page never scrolls sideways, labels stay in their boxes.
    browser.goto(&format!("{}/#/workflows/twelve", server.url)).await;
    browser.until("#graph svg", |_| true).await;
    assert_eq!(browser.count("#graph .node").await, 12);
    assert_eq!(layout(&browser).await, (false, true), "no sideways scroll, every label inside its box");
    browser.screenshot("15-twelve-steps-1280").await;
    let f = server.start_run("twelve", json!({})).await;
    server.until_status(&f, &["succeeded"]).await;
    browser.goto(&format!("{}/#/runs/{f}", server.url)).await;
    browser.until("#run-status", |s| s == "succeeded").await;
    browser.until("#run-graph svg", |_| true).await;
    assert_eq!(layout(&browser).await, (false, true), "the run page too");
    browser.screenshot("16-twelve-steps-run-1280").await;
}
