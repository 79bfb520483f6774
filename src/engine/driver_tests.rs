//! The driver with actions of the tests' own: output schemas, idempotency keys,
//! cancellation and the bound on concurrent attempts.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::compiled::CompiledWorkflow;
use super::driver::{Engine, EngineOptions};
use crate::actions::{Action, ActionError, ActionFuture, ActionSpec, Call, Effect, Registry};
use crate::store::memory::MemoryStore;

/// Records every call; answers from a closure.
struct Probe {
    calls: Arc<Mutex<Vec<Call>>>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    answer: fn(&Call) -> Result<Json, ActionError>,
    delay_ms: u64,
}

impl Action for Probe {
    fn call(&self, call: Call) -> ActionFuture {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call.clone());
        let (in_flight, peak, answer, delay) = (self.in_flight.clone(), self.peak.clone(), self.answer, self.delay_ms);
        Box::pin(async move {
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            in_flight.fetch_sub(1, Ordering::SeqCst);
            answer(&call)
        })
    }
}

struct Setup {
    engine: Engine,
    store: Arc<MemoryStore>,
    calls: Arc<Mutex<Vec<Call>>>,
    peak: Arc<AtomicUsize>,
}

fn setup(answer: fn(&Call) -> Result<Json, ActionError>, delay_ms: u64, max_concurrent_attempts: usize) -> Setup {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let peak = Arc::new(AtomicUsize::new(0));
    let probe =
        Probe { calls: calls.clone(), in_flight: Arc::new(AtomicUsize::new(0)), peak: peak.clone(), answer, delay_ms };
    let spec = ActionSpec {
        name: "probe.call".into(),
        description: "A test action.".into(),
        effect: Effect::Irreversible,
        input_schema: json!({}),
        output_schema: json!({ "type": "object", "required": ["id"], "properties": { "id": { "type": "string" } } }),
        errors: Vec::new(),
    };
    let registry = match Registry::from_actions(vec![(spec, Arc::new(probe))]) {
        Ok(r) => Arc::new(r),
        Err(e) => panic!("{e:?}"),
    };
    let store = Arc::new(MemoryStore::default());
    let engine =
        Engine::start(store.clone(), registry, EngineOptions { max_concurrent_attempts, ..EngineOptions::default() });
    Setup { engine, store, calls, peak }
}

/// Compiles against a registry that knows `probe.call` (and the built-ins' names are not needed).
fn workflow(yaml: &str) -> Arc<CompiledWorkflow> {
    let registry = match Registry::from_actions(vec![(
        ActionSpec {
            name: "probe.call".into(),
            description: String::new(),
            effect: Effect::Irreversible,
            input_schema: json!({}),
            output_schema: json!({}),
            errors: Vec::new(),
        },
        Arc::new(Probe {
            calls: Arc::default(),
            in_flight: Arc::default(),
            peak: Arc::default(),
            answer: |_| Ok(Json::Null),
            delay_ms: 0,
        }) as Arc<dyn Action>,
    )]) {
        Ok(r) => r,
        Err(e) => panic!("{e:?}"),
    };
    match CompiledWorkflow::compile(Path::new("t.yaml"), yaml, &registry) {
        Ok(wf) => wf,
        Err(e) => panic!("{:?}", e.0.diagnostics),
    }
}

#[tokio::test]
async fn output_that_breaks_the_output_schema_fails_the_step_with_code_schema() {
    let s = setup(|_| Ok(json!({ "id": 7 })), 0, 8);
    let wf =
        workflow("name: w\nsteps:\n  - id: a\n    action: probe.call\n    retry: { max_attempts: 3, delay: 1ms }\n");
    let id = s.engine.start_run(wf, json!({})).await.expect("started");
    let r = s.engine.wait(&id).await.expect("record");
    assert_eq!(r.status, "failed");
    let e = r.steps[0].error.clone().expect("error");
    assert_eq!(e.code, "schema");
    assert!(e.message.contains("output schema"), "{}", e.message);
    assert_eq!(r.steps[0].attempts, 1, "schema is not retryable");
}

/// A run handed to the engine again while it is here (a second resume, a
/// takeover that finds a run of its own) goes on as it is: the attempt it
/// has in flight is not launched a second time.
#[tokio::test]
async fn resuming_a_run_already_here_launches_nothing_again() {
    let s = setup(|_| Ok(json!({ "id": "x" })), 300, 8);
    let wf = workflow("name: w\nsteps:\n  - id: a\n    action: probe.call\n");
    let id = s.engine.start_run(wf.clone(), json!({})).await.expect("started");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let entries = crate::store::ReadRuns::entries(s.store.as_ref(), &id).expect("journal");
    s.engine.resume(id.clone(), wf, entries).await;
    let r = s.engine.wait(&id).await.expect("record");
    assert_eq!(r.status, "succeeded");
    assert_eq!(s.calls.lock().unwrap_or_else(|p| p.into_inner()).len(), 1, "one call, not two");
}

/// A takeover's resume leaves a run the engine has as it is (the journal it
/// read could be behind by the time the resume comes: a run that ended
/// meanwhile would come back) and resumes the ones it lacks.
#[tokio::test]
async fn a_takeover_resumes_only_the_runs_the_engine_does_not_have() {
    let s = setup(|_| Ok(json!({ "id": "x" })), 300, 8);
    let wf = workflow("name: w\nsteps:\n  - id: a\n    action: probe.call\n");
    let id = s.engine.start_run(wf, json!({})).await.expect("started");
    assert_eq!(s.engine.absent(vec![id.clone(), "elsewhere".into()]).await, ["elsewhere"]);
    let meta = crate::store::ReadRuns::run(s.store.as_ref(), &id).expect("read").expect("its row");
    crate::engine::resume_runs(&s.engine, s.store.as_ref(), s.engine.registry(), &[meta]).await.expect("resumed");
    let r = s.engine.wait(&id).await.expect("record");
    assert_eq!(r.status, "succeeded");
    assert_eq!(s.calls.lock().unwrap_or_else(|p| p.into_inner()).len(), 1, "one call, not two");
    s.engine.flush().await;
    assert_eq!(s.engine.absent(vec![id.clone()]).await, [id], "ended: no longer here");
}

#[tokio::test]
async fn every_attempt_of_a_step_gets_the_same_idempotency_key() {
    let s = setup(
        |c| {
            if c.ctx.attempt < 3 {
                Err(ActionError::new("unavailable", "try again"))
            } else {
                Ok(json!({ "id": "x" }))
            }
        },
        0,
        8,
    );
    let wf = workflow(
        "name: w\nsteps:\n  - id: a\n    action: probe.call\n    retry: { max_attempts: 3, delay: 1ms }\n  - id: b\n    action: probe.call\n    for_each: [1, 2]\n    retry: { max_attempts: 3, delay: 1ms }\n",
    );
    let id = s.engine.start_run(wf, json!({})).await.expect("started");
    let r = s.engine.wait(&id).await.expect("record");
    assert_eq!(r.status, "succeeded");
    let calls = s.calls.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let keys = |step: &str| {
        calls.iter().filter(|c| c.ctx.step == step).map(|c| c.ctx.idempotency_key.clone()).collect::<Vec<_>>()
    };
    assert_eq!(keys("a"), vec![format!("{id}:a"); 3]);
    let mut b = keys("b");
    b.sort();
    b.dedup();
    assert_eq!(b, vec![format!("{id}:b:0"), format!("{id}:b:1")], "one key per item");
    let attempts: Vec<u32> = calls.iter().filter(|c| c.ctx.step == "a").map(|c| c.ctx.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3]);
}

#[tokio::test]
async fn attempts_in_flight_never_exceed_the_global_bound() {
    let s = setup(|_| Ok(json!({ "id": "x" })), 20, 3);
    let wf = workflow("name: w\nsteps:\n  - id: a\n    action: probe.call\n    for_each: [1, 2, 3, 4, 5, 6, 7, 8]\n    concurrency: 8\n");
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(s.engine.start_run(wf.clone(), json!({})).await.expect("started"));
    }
    for id in ids {
        assert_eq!(s.engine.wait(&id).await.map(|r| r.status), Some(crate::journal::status::RunStatus::Succeeded));
    }
    assert_eq!(s.peak.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn cancelling_a_run_cancels_its_attempt_and_rolls_back() {
    let registry = crate::config::registry::builtin();
    let engine = Engine::start(
        Arc::new(MemoryStore::default()),
        crate::config::registry::builtin_shared().clone(),
        EngineOptions::default(),
    );
    let yaml = "name: w\nsteps:\n  - id: quick\n    action: mock\n    compensate: { action: mock }\n  - id: slow\n    action: mock\n    with: { delay: 5s }\n";
    let wf = match CompiledWorkflow::compile(Path::new("t.yaml"), yaml, registry) {
        Ok(wf) => wf,
        Err(e) => panic!("{:?}", e.0.diagnostics),
    };
    let id = engine.start_run(wf, json!({})).await.expect("started");
    engine.flush().await;
    let started = std::time::Instant::now();
    assert_eq!(engine.cancel(&id).await, Ok(()));
    let r = engine.wait(&id).await.expect("record");
    assert!(started.elapsed() < Duration::from_secs(3), "the 5 s attempt was cancelled, not waited for");
    assert_eq!(r.status, "compensated");
    assert_eq!(r.error.map(|e| e.code.to_string()), Some("cancelled".to_owned()));
    assert_eq!(r.steps[1].error.clone().map(|e| e.code.to_string()), Some("cancelled".to_owned()));
}

#[tokio::test]
async fn an_output_too_large_to_keep_fails_the_step() {
    let s = setup(|_| Ok(json!({ "id": "x".repeat(2 * 1024 * 1024) })), 0, 8);
    let wf = workflow("name: w\nsteps:\n  - id: a\n    action: probe.call\n");
    let id = s.engine.start_run(wf, json!({})).await.expect("started");
    let r = s.engine.wait(&id).await.expect("record");
    assert_eq!(r.steps[0].error.clone().map(|e| e.code.to_string()), Some("too_large".to_owned()));
    assert_eq!(r.status, "failed");
}

fn builtin(yaml: &str) -> Arc<CompiledWorkflow> {
    match CompiledWorkflow::compile(Path::new("t.yaml"), yaml, crate::config::registry::builtin()) {
        Ok(wf) => wf,
        Err(e) => panic!("{:?}", e.0.diagnostics),
    }
}

#[tokio::test]
async fn an_emitted_event_wakes_the_run_that_waits_for_it() {
    let engine = Engine::start(
        Arc::new(MemoryStore::default()),
        crate::config::registry::builtin_shared().clone(),
        EngineOptions::default(),
    );
    let waiter = builtin("name: waiter\nsteps:\n  - id: wait\n    action: event.wait\n    with: { type: order.paid, key: '{{input.order}}' }\n    timeout: 10s\n");
    let emitter = builtin("name: emitter\nsteps:\n  - id: emit\n    action: event.emit\n    with: { type: order.paid, key: o-1, data: { amount: 12 } }\n");
    let waiting = engine.start_run(waiter.clone(), json!({ "order": "o-1" })).await.expect("started");
    let other = engine.start_run(waiter, json!({ "order": "o-2" })).await.expect("started");
    engine.flush().await;
    let emitting = engine.start_run(emitter, json!({})).await.expect("started");
    let emitted = engine.wait(&emitting).await.expect("record");
    assert_eq!(emitted.steps[0].output["event_id"], format!("{emitting}:emit"));
    let woken = engine.wait(&waiting).await.expect("record");
    assert_eq!((woken.status.as_str(), &woken.steps[0].output), ("succeeded", &json!({ "amount": 12 })));
    assert_eq!(engine.cancel(&other).await, Ok(()));
    let cancelled = engine.wait(&other).await.expect("record");
    assert_eq!(cancelled.status, "failed", "the other key's wait is still waiting until cancelled");
}

/// The engine on a virtual clock: its timers are stepped through, not waited for.
fn on_virtual_time() -> (Engine, crate::base::clock::VirtualClock) {
    let clock = crate::base::clock::VirtualClock::default();
    let options = EngineOptions { clock: Arc::new(clock.clone()), ..EngineOptions::default() };
    let engine =
        Engine::start(Arc::new(MemoryStore::default()), crate::config::registry::builtin_shared().clone(), options);
    (engine, clock)
}

#[tokio::test]
async fn an_event_that_came_before_the_wait_began_is_not_lost_and_waits_time_out() {
    use crate::base::clock::Clock;
    let (engine, clock) = on_virtual_time();
    let wf = builtin("name: late\nsteps:\n  - id: first\n    action: sleep\n    with: { for: 1h }\n  - id: wait\n    action: event.wait\n    with: { type: user.verified, key: u-7 }\n    timeout: 5s\n");
    let id = engine.start_run(wf, json!({})).await.expect("started");
    engine.publish("user.verified", "u-7", json!({ "at": "now" })).await.expect("published");
    clock.advance_to(clock.now_ms() + 3_600_000);
    let r = engine.wait(&id).await.expect("record");
    assert_eq!(r.steps[1].output, json!({ "at": "now" }), "published while the run slept, found when the wait began");
    let wf = builtin("name: nobody\nsteps:\n  - id: wait\n    action: event.wait\n    with: { type: user.verified, key: u-8 }\n    timeout: 2h\n");
    let id = engine.start_run(wf, json!({})).await.expect("started");
    engine.flush().await;
    clock.advance_to(clock.now_ms() + 2 * 3_600_000);
    let r = engine.wait(&id).await.expect("record");
    assert_eq!(r.steps[0].error.clone().map(|e| e.code.to_string()), Some("timeout".to_owned()));
}

#[tokio::test]
async fn timers_fire_as_the_clock_reaches_them_and_not_before() {
    use crate::base::clock::Clock;
    let (engine, clock) = on_virtual_time();
    let wf = builtin("name: naps\nsteps:\n  - id: nap\n    action: sleep\n    with: { for: 1d }\n  - id: after\n    action: mock\n    with: { output: { done: true } }\n");
    let started = clock.now_ms();
    let id = engine.start_run(wf, json!({})).await.expect("started");
    engine.flush().await;
    clock.advance_to(started + 3_600_000);
    engine.flush().await;
    let waiting = engine.wait(&id);
    tokio::pin!(waiting);
    let early = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await;
    assert!(early.is_err(), "an hour into a day's sleep, the run still sleeps");
    clock.advance_to(started + 86_400_000);
    let r = waiting.await.expect("record");
    assert_eq!((r.status.as_str(), &r.steps[1].output), ("succeeded", &json!({ "done": true })));
    let woke = r.steps[0].output["woke_at"].as_str().unwrap_or_default().to_owned();
    let due = chrono::DateTime::from_timestamp_millis((started + 86_400_000) as i64).unwrap_or_default();
    assert!(woke.starts_with(&due.format("%Y-%m-%dT%H:%M").to_string()), "woke at {woke}, due {due}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_runs_wait_at_once_and_one_event_wakes_them_all() {
    let engine = Engine::start(
        Arc::new(MemoryStore::default()),
        crate::config::registry::builtin_shared().clone(),
        EngineOptions::default(),
    );
    let wf = builtin("name: many\nsteps:\n  - id: wait\n    action: event.wait\n    with: { type: launch.go, key: all }\n    timeout: 10m\n");
    let mut ids = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        ids.push(engine.start_run(wf.clone(), json!({})).await.expect("started"));
    }
    engine.publish("launch.go", "all", json!({ "go": true })).await.expect("published");
    for id in &ids {
        let r = engine.wait(id).await.expect("record");
        assert_eq!(r.status, "succeeded");
    }
}

/// The loop ends once every handle is gone, even with a run parked on a timer,
/// and lets go of its registry (and so of the services and stores behind it).
#[tokio::test]
async fn dropping_every_handle_ends_the_loop_and_frees_the_registry() {
    let http = crate::adapters::http_request::HttpRequest::detached();
    let registry = match crate::config::registry::with_services(&crate::services::Services::detached(), http) {
        Ok(r) => Arc::new(r),
        Err(e) => panic!("{e:?}"),
    };
    let engine = Engine::start(Arc::new(MemoryStore::default()), registry.clone(), EngineOptions::default());
    let yaml = "name: w\nsteps:\n  - id: nap\n    action: sleep\n    with: { for: 1h }\n";
    let wf = match CompiledWorkflow::compile(Path::new("t.yaml"), yaml, &registry) {
        Ok(wf) => wf,
        Err(e) => panic!("{:?}", e.0.diagnostics),
    };
    engine.start_run(wf, json!({})).await.expect("started");
    engine.flush().await;
    assert!(Arc::strong_count(&registry) > 1, "the engine holds the registry while it runs");
    drop(engine);
    for _ in 0..200 {
        if Arc::strong_count(&registry) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the engine loop kept its registry after every handle was dropped");
}

#[tokio::test]
async fn a_store_that_cannot_write_holds_the_engine_until_it_can_and_nothing_is_lost_or_doubled() {
    use crate::store::{ReadRuns, StoreError, StoreErrorKind};
    // A store whose writes fail while `full` is set, as on a full disk.
    let store = Arc::new(MemoryStore::default());
    let full = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refusing = full.clone();
    let rule = move |_: &crate::store::Commit| {
        let no_space = StoreError::new(StoreErrorKind::Unavailable, "no space left on the device");
        refusing.load(Ordering::SeqCst).then_some(no_space)
    };
    let faulty = crate::store::faulty::Faulty::new(store.clone(), Box::new(rule));
    let registry = crate::config::registry::builtin_shared().clone();
    let engine = Engine::start(Arc::new(faulty), registry, EngineOptions::default());
    let wf = builtin("name: w\nsteps:\n  - id: a\n    action: mock\n    with: { delay: 300ms, output: 1 }\n  - id: b\n    action: mock\n");
    let id = engine.start_run(wf, json!({})).await.expect("started");
    full.store(true, Ordering::SeqCst);
    // Step a ends while the disk is full: its end cannot be written, and the engine says so.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while engine.metrics().storage.error().is_none() {
        assert!(std::time::Instant::now() < deadline, "the failed commit was never reported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine.metrics().storage.error().as_deref(), Some("no space left on the device"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.entries(&id).expect("journal").len() <= 2, "nothing was written while the disk was full");
    full.store(false, Ordering::SeqCst);
    let record = engine.wait(&id).await.expect("record");
    assert_eq!(record.status, "succeeded");
    assert_eq!(engine.metrics().storage.error(), None, "the engine went on by itself");
    let journal = store.entries(&id).expect("journal");
    let ends = journal.iter().filter(|e| matches!(e, crate::journal::entry::Entry::AttemptFinished { .. })).count();
    assert_eq!(ends, 2, "each attempt's end is written once: {journal:?}");
    assert!(engine.metrics().storage.failures.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_commit_another_writer_fenced_off_stops_the_engine_even_where_outages_are_waited_out() {
    use crate::store::{ReadRuns, StoreError, StoreErrorKind};
    let store = Arc::new(MemoryStore::default());
    let fenced = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refusing = fenced.clone();
    let rule = move |_: &crate::store::Commit| {
        let taken = StoreError::new(StoreErrorKind::Conflict, "run taken over by worker b");
        refusing.load(Ordering::SeqCst).then_some(taken)
    };
    let faulty = crate::store::faulty::Faulty::new(store.clone(), Box::new(rule));
    let registry = crate::config::registry::builtin_shared().clone();
    // As `serve` runs it: a store that cannot write is waited for without a bound.
    let options = EngineOptions { write_outage_limit: None, ..EngineOptions::default() };
    let engine = Engine::start(Arc::new(faulty), registry, options);
    let wf = builtin(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    with: { delay: 200ms }\n  - id: b\n    action: mock\n",
    );
    let id = engine.start_run(wf, json!({})).await.expect("started");
    fenced.store(true, Ordering::SeqCst);
    let ended = tokio::time::timeout(Duration::from_secs(20), engine.wait(&id)).await;
    assert_eq!(ended.expect("the engine stopped instead of trying the fenced commit forever"), None);
    let journal = store.entries(&id).expect("journal");
    assert!(!journal.iter().any(|e| matches!(e, crate::journal::entry::Entry::RunFinished { .. })), "{journal:?}");
    assert_eq!(engine.metrics().storage.error().as_deref(), Some("run taken over by worker b"));
}

/// A store whose commits take milliseconds (a database over the network): the
/// loop awaits each one, and what comes in meanwhile joins the next group commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_slow_to_commit_gets_fewer_larger_commits_and_every_run_ends() {
    use crate::store::ReadRuns;
    let store = Arc::new(MemoryStore::default());
    let commits = Arc::new(AtomicUsize::new(0));
    let counted = commits.clone();
    let rule = move |_: &crate::store::Commit| {
        counted.fetch_add(1, Ordering::SeqCst);
        None
    };
    let slow = crate::store::faulty::Faulty::new(store.clone(), Box::new(rule)).with_latency(Duration::from_millis(20));
    let registry = crate::config::registry::builtin_shared().clone();
    let engine = Engine::start(Arc::new(slow), registry, EngineOptions::default());
    let wf = builtin(
        "name: w\nsteps:\n  - id: a\n    action: mock\n  - id: b\n    action: mock\n  - id: c\n    action: mock\n",
    );
    let starts: Vec<_> = (0..200)
        .map(|_| {
            let (engine, wf) = (engine.clone(), wf.clone());
            tokio::spawn(async move { engine.start_run(wf, json!({})).await })
        })
        .collect();
    let mut ids = Vec::new();
    for start in starts {
        ids.push(start.await.expect("joined").expect("started"));
    }
    for id in &ids {
        assert_eq!(engine.wait(id).await.expect("record").status, "succeeded");
    }
    let entries: usize = ids.iter().map(|id| store.entries(id).expect("journal").len()).sum();
    let commits = commits.load(Ordering::SeqCst);
    assert!(entries >= 200 * 8, "every run's journal is whole: {entries}");
    assert!(commits * 4 < entries, "{commits} commits for {entries} entries: the waits were used to batch");
}
