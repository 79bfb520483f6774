//! Operating on runs through the engine (DSL.md C1, C2): a step with
//! `on_error: pause` parks its run `paused` and tells its subscribers; an
//! operator retries it (a new `with` replaces the old), skips it with an
//! output, or aborts the run; each is journaled with who asked.

use std::sync::Arc;

use serde_json::json;

use super::compiled::CompiledWorkflow;
use super::driver::{Engine, EngineOptions};
use super::operator::{Ask, Refused};
use crate::journal::entry::{Entry, OperatorAction};
use crate::journal::status::{RunStatus, StepStatus};
use crate::store::memory::MemoryStore;
use crate::store::ReadRuns;

const FLOW: &str = "name: flow
steps:
  - id: hold
    action: mock
    with: { output: held }
    compensate: { action: mock }
  - id: charge
    action: mock
    with: { fail: true, error: card_declined }
    retry: { max_attempts: 2, delay: 1ms, on: [card_declined] }
    on_error: pause
  - id: after
    action: mock
    with: { output: '{{steps.charge.output.paid}}' }
output: { paid: '{{steps.charge.output.paid}}' }
";

fn setup() -> (Engine, Arc<MemoryStore>, Arc<CompiledWorkflow>) {
    let store = Arc::new(MemoryStore::default());
    let engine =
        Engine::start(store.clone(), crate::config::registry::builtin_shared().clone(), EngineOptions::default());
    let wf = match CompiledWorkflow::compile(std::path::Path::new("t.yaml"), FLOW, crate::config::registry::builtin()) {
        Ok(wf) => wf,
        Err(e) => panic!("{:?}", e.0.diagnostics),
    };
    (engine, store, wf)
}

async fn paused(engine: &Engine, store: &MemoryStore, wf: &Arc<CompiledWorkflow>) -> String {
    let id = engine.start_run(wf.clone(), json!({})).await.expect("started");
    for _ in 0..200 {
        engine.flush().await;
        if store.run(&id).ok().flatten().is_some_and(|m| m.status == RunStatus::Paused) {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    panic!("the run never paused");
}

#[tokio::test]
async fn a_paused_step_retried_with_a_new_with_goes_on_counting_its_attempts() {
    let (engine, store, wf) = setup();
    let id = paused(&engine, &store, &wf).await;
    let told = store.events("run.paused", &id, 0).expect("events");
    assert_eq!(told.len(), 1, "the run's subscribers are told");
    assert_eq!(
        (told[0].data["step"].as_str(), told[0].data["error"]["code"].as_str()),
        (Some("charge"), Some("card_declined"))
    );
    assert!(engine.operate(&id, Ask::Abort, "x").await.is_ok(), "abort is taken while paused");
    let (engine, store, wf) = setup();
    let id = paused(&engine, &store, &wf).await;
    let with = json!({ "output": { "paid": 12 } });
    let done = engine.operate(&id, Ask::Retry { step: None, with: Some(with.clone()) }, "cli").await;
    assert_eq!(done, Ok(OperatorAction::Retry { step: 1, item: None, with: Some(with) }));
    let record = engine.wait(&id).await.expect("record");
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.output, json!({ "paid": 12 }));
    assert_eq!(record.steps[1].attempts, 3, "two failed, then the operator's");
    let entries = store.entries(&id).expect("journal");
    let by = entries.iter().find_map(|e| match e {
        Entry::Operator { by, .. } => Some(by.clone()),
        _ => None,
    });
    assert_eq!(by.as_deref(), Some("cli"), "the journal says who");
}

#[tokio::test]
async fn a_paused_step_skipped_takes_the_output_given_and_abort_rolls_back() {
    let (engine, store, wf) = setup();
    let id = paused(&engine, &store, &wf).await;
    engine
        .operate(&id, Ask::Skip { step: Some("charge".into()), output: json!({ "paid": 7 }) }, "anonymous")
        .await
        .expect("skipped");
    let record = engine.wait(&id).await.expect("record");
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.steps[1].status, StepStatus::Skipped);
    assert_eq!(record.steps[2].output, json!(7), "the next step reads the output given");

    let id = paused(&engine, &store, &wf).await;
    let wrong = engine.operate(&id, Ask::Retry { step: Some("hold".into()), with: None }, "cli").await;
    assert!(matches!(wrong, Err(Refused::NotPausedStep { .. })), "{wrong:?}");
    engine.operate(&id, Ask::Abort, "cli").await.expect("aborted");
    let record = engine.wait(&id).await.expect("record");
    assert_eq!(record.status, RunStatus::Compensated, "`hold` is undone");
    assert_eq!(record.error.map(|e| e.code.to_string()), Some("card_declined".to_owned()));
    let again = engine.operate(&id, Ask::Abort, "cli").await;
    assert_eq!(again, Err(Refused::Over(RunStatus::Compensated)));
}

fn compile(yaml: &str) -> Arc<CompiledWorkflow> {
    match CompiledWorkflow::compile(std::path::Path::new("t.yaml"), yaml, crate::config::registry::builtin()) {
        Ok(wf) => wf,
        Err(e) => panic!("{:?}", e.0.diagnostics),
    }
}

/// DSL.md C2: `retry` of a `compensation_failed` run retries its failed
/// compensations, and it ends `compensated`; of a run in a retry's backoff,
/// tries now; `rerun` starts it again, linked both ways.
#[tokio::test]
async fn retry_takes_up_failed_compensations_and_backoffs_and_rerun_links_both_ways() {
    let (engine, store, _) = setup();
    let undo_fails_once = compile(
        "name: u
steps:
  - id: hold
    action: mock
    compensate: { action: mock, with: { fail_attempts: 1 } }
  - id: boom
    action: mock
    with: { fail: true, error: conflict }
",
    );
    let id = engine.start_run(undo_fails_once.clone(), json!({})).await.expect("started");
    let first = engine.wait(&id).await.expect("record");
    assert_eq!(first.status, RunStatus::CompensationFailed);
    let done = engine.operate(&id, Ask::Retry { step: None, with: None }, "cli").await;
    assert_eq!(done, Ok(OperatorAction::RetryCompensations));
    let again = engine.wait(&id).await.expect("record");
    assert_eq!(again.status, RunStatus::Compensated, "{again:?}");
    assert_eq!(again.compensations[0].attempts, 2);

    let backoff = compile(
        "name: b
steps:
  - id: flaky
    action: mock
    with: { fail_attempts: 1, output: ok }
    retry: { max_attempts: 2, delay: 1h }
",
    );
    let id = engine.start_run(backoff, json!({})).await.expect("started");
    for _ in 0..200 {
        engine.flush().await;
        if store.run(&id).ok().flatten().is_some_and(|m| m.status == RunStatus::Waiting) {
            break;
        }
    }
    assert_eq!(
        engine.operate(&id, Ask::Retry { step: None, with: None }, "cli").await,
        Ok(OperatorAction::RetryNow { step: 0, item: None })
    );
    let now = engine.wait(&id).await.expect("record");
    assert_eq!(now.status, RunStatus::Succeeded, "tried now, not in an hour");

    let id = engine.start_run(undo_fails_once, json!({})).await.expect("started");
    engine.wait(&id).await.expect("record");
    let new = engine.rerun(&id, None, Some(json!({ "edited": true })), "cli").await.expect("rerun");
    let rerun = engine.wait(&new).await.expect("record");
    assert_eq!((rerun.rerun_of.as_deref(), &rerun.input), (Some(id.as_str()), &json!({ "edited": true })));
    let old = engine.replay(&id).map(|s| crate::engine::record::RunRecord::of(&s)).expect("old");
    assert_eq!(old.reruns, [new]);
}
