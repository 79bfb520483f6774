//! Child runs through the driver (DSL.md B1): a child's output and error
//! reach its step, a parent's roll-back undoes a succeeded child and cancels
//! a running one, a resumed parent finds the same child, and calls too deep
//! or of a workflow that does not exist fail with their codes.

use std::sync::Arc;

use serde_json::json;

use super::compiled::CompiledWorkflow;
use super::driver::{Engine, EngineOptions};
use super::library::Shelf;
use crate::journal::status::RunStatus;
use crate::store::memory::MemoryStore;
use crate::store::ReadRuns;

fn shelf(yamls: &[&str]) -> Arc<Shelf> {
    let compile = |yaml: &&str| match CompiledWorkflow::compile(
        std::path::Path::new("t.yaml"),
        yaml,
        crate::config::registry::builtin(),
    ) {
        Ok(wf) => wf,
        Err(e) => panic!("{:?}", e.0.diagnostics),
    };
    Arc::new(Shelf::of(yamls.iter().map(compile)))
}

fn get(shelf: &Shelf, name: &str) -> Arc<CompiledWorkflow> {
    shelf.0.get(name).cloned().unwrap_or_else(|| panic!("no {name}"))
}

fn engine(store: Arc<MemoryStore>, shelf: Arc<Shelf>) -> Engine {
    let options = EngineOptions { library: shelf, ..EngineOptions::default() };
    Engine::start(store, crate::config::registry::builtin_shared().clone(), options)
}

const PARENT: &str = "name: parent
steps:
  - id: hold
    action: mock
    with: { output: held }
    compensate: { action: mock }
  - id: pay
    action: workflow.run
    with: { workflow: '{{input.child}}', input: { amount: 7 } }
  - id: ship
    action: mock
    with: { fail: '{{input.fail}}' }
output: { paid: '{{steps.pay.output.paid}}' }
";

const CHILD: &str = "name: child
input: { type: object, required: [amount], properties: { amount: { type: integer } } }
steps:
  - id: charge
    action: mock
    with: { output: { paid: '{{input.amount}}' } }
    compensate: { action: mock }
output: { paid: '{{steps.charge.output.paid}}' }
";

const FAILING: &str = "name: failing
steps:
  - id: charge
    action: mock
    with: { fail: true, error: card_declined }
";

const SLOW: &str = "name: slow
steps:
  - id: nap
    action: sleep
    with: { for: 1h }
    compensate: { action: mock }
";

#[tokio::test]
async fn a_childs_output_is_its_steps_and_the_records_link_parent_and_child() {
    let store = Arc::new(MemoryStore::default());
    let shelf = shelf(&[PARENT, CHILD]);
    let engine = engine(store.clone(), shelf.clone());
    let id =
        engine.start_run(get(&shelf, "parent"), json!({ "child": "child", "fail": false })).await.expect("started");
    let parent = engine.wait(&id).await.expect("record");
    assert_eq!(parent.status, RunStatus::Succeeded);
    assert_eq!(parent.output, json!({ "paid": 7 }));
    let child_id = parent.steps[1].child_run.clone().expect("the step names its child");
    let child = engine.wait(&child_id).await.expect("the child's record");
    assert_eq!(child.status, RunStatus::Succeeded);
    let link = child.parent.expect("the child names its parent");
    assert_eq!((link.run_id.as_str(), link.step.as_str()), (id.as_str(), "pay"));
    // Two journal entries in the parent for the whole child: its attempt's start and end.
    let entries = store.entries(&id).expect("journal");
    let about_pay = entries.iter().filter(|e| serde_json::to_value(e).is_ok_and(|v| v["step"] == 1)).count();
    assert_eq!(about_pay, 2);
}

#[tokio::test]
async fn a_parents_roll_back_undoes_a_succeeded_child_which_ends_compensated() {
    let shelf = shelf(&[PARENT, CHILD]);
    let engine = engine(Arc::new(MemoryStore::default()), shelf.clone());
    let id = engine.start_run(get(&shelf, "parent"), json!({ "child": "child", "fail": true })).await.expect("started");
    let parent = engine.wait(&id).await.expect("record");
    assert_eq!(parent.status, RunStatus::Compensated);
    let undone: Vec<&str> = parent.compensations.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(undone, ["pay", "hold"], "the child is undone first: it ended last");
    let child = engine.wait(parent.steps[1].child_run.as_deref().expect("child")).await.expect("record");
    assert_eq!(child.status, RunStatus::Compensated);
    assert_eq!(child.compensations.len(), 1);
}

#[tokio::test]
async fn a_child_that_fails_fails_its_step_with_its_code_and_a_missing_one_with_not_found() {
    let shelf = shelf(&[PARENT, FAILING]);
    let engine = engine(Arc::new(MemoryStore::default()), shelf.clone());
    let id = engine.start_run(get(&shelf, "parent"), json!({ "child": "failing", "fail": false })).await.expect("ok");
    let parent = engine.wait(&id).await.expect("record");
    let error = parent.error.expect("failed");
    assert_eq!((error.code.as_str(), error.step.as_deref()), ("card_declined", Some("pay")));
    assert!(error.message.contains("ended failed"), "{}", error.message);
    assert_eq!(parent.status, RunStatus::Compensated, "`hold` is undone");

    let id = engine.start_run(get(&shelf, "parent"), json!({ "child": "chlid", "fail": false })).await.expect("ok");
    let error = engine.wait(&id).await.expect("record").error.expect("failed");
    assert_eq!(error.code, "not_found");
    assert!(error.message.contains("no workflow `chlid`"), "{}", error.message);
}

#[tokio::test]
async fn cancelling_a_parent_cancels_the_child_it_waits_for() {
    let shelf = shelf(&[PARENT, SLOW]);
    let engine = engine(Arc::new(MemoryStore::default()), shelf.clone());
    let id = engine.start_run(get(&shelf, "parent"), json!({ "child": "slow", "fail": false })).await.expect("ok");
    engine.flush().await;
    engine.flush().await;
    assert_eq!(engine.cancel(&id).await, Ok(()));
    let parent = engine.wait(&id).await.expect("record");
    assert_eq!(parent.status, RunStatus::Compensated);
    assert_eq!(parent.steps[1].error.as_ref().map(|e| e.code.as_str()), Some("cancelled"));
    let child = engine.wait(parent.steps[1].child_run.as_deref().expect("child")).await.expect("record");
    assert_eq!(child.status, RunStatus::Failed, "the child's sleep was cut short: nothing to undo");
    assert_eq!(child.error.map(|e| e.code.to_string()), Some("cancelled".to_owned()));
}

#[tokio::test]
async fn calls_past_sixteen_deep_fail_with_too_deep_at_every_level() {
    let deep = "name: deep
steps:
  - id: again
    action: workflow.run
    with: { workflow: '{{input.name}}', input: { name: '{{input.name}}' } }
";
    let store = Arc::new(MemoryStore::default());
    let shelf = shelf(&[deep]);
    let engine = engine(store.clone(), shelf.clone());
    let id = engine.start_run(get(&shelf, "deep"), json!({ "name": "deep" })).await.expect("ok");
    let top = engine.wait(&id).await.expect("record");
    assert_eq!(top.error.map(|e| e.code.to_string()), Some("too_deep".to_owned()));
    assert_eq!(store.runs().expect("runs").len(), 17, "the top run and 16 levels of children");
}

#[tokio::test]
async fn a_parent_resumed_mid_wait_finds_the_same_child() {
    let store = Arc::new(MemoryStore::default());
    let shelf = shelf(&[PARENT, SLOW]);
    let first = engine(store.clone(), shelf.clone());
    let id = first.start_run(get(&shelf, "parent"), json!({ "child": "slow", "fail": false })).await.expect("ok");
    first.flush().await;
    first.flush().await;
    drop(first);
    let second = engine(store.clone(), shelf.clone());
    let resumed = super::resume_unfinished(&second, store.as_ref(), second.registry()).await.expect("resumed");
    assert_eq!(resumed.len(), 2, "the parent and its child");
    assert_eq!(store.runs().expect("runs").len(), 2, "no second child");
    assert_eq!(second.cancel(&id).await, Ok(()));
    let parent = second.wait(&id).await.expect("record");
    assert_eq!(parent.status, RunStatus::Compensated);
}

#[tokio::test]
async fn a_child_output_too_large_to_keep_fails_its_step_with_too_large() {
    let parent = "name: parent
steps:
  - id: big
    action: workflow.run
    with: { workflow: big, input: { text: '{{input.text}}' } }
";
    let big = "name: big
steps:
  - id: a
    action: mock
    with: { output: '{{input.text}}' }
output: { a: '{{steps.a.output}}', b: '{{steps.a.output}}' }
";
    let shelf = shelf(&[parent, big]);
    let engine = engine(Arc::new(MemoryStore::default()), shelf.clone());
    let text = "x".repeat(600 * 1024);
    let id = engine.start_run(get(&shelf, "parent"), json!({ "text": text })).await.expect("started");
    let record = engine.wait(&id).await.expect("record");
    let error = record.error.expect("failed");
    assert_eq!(error.code, "too_large", "{}", error.message);
    assert!(error.message.contains("the child run"), "{}", error.message);
}
