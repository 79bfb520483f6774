//! The relay against a scripted webhook on loopback and a triggered workflow,
//! over the in-memory store (the sled outbox is tested through the binary).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{triggered_run_id, Relay, Subscriptions};
use crate::adapters::client::Client;
use crate::adapters::test_server::{Reply, TestServer};
use crate::adapters::webhook::Webhook;
use crate::engine::compiled::CompiledWorkflow;
use crate::engine::driver::{Engine, EngineOptions};
use crate::store::memory::MemoryStore;
use crate::store::{OutboxTable, ReadRuns, Store, Subscriber};

const EMITTER: &str = "name: emitter
steps:
  - id: announce
    action: event.emit
    with: { type: order.placed, key: o-1, data: { order_id: o-1 } }
  - id: other
    action: event.emit
    with: { type: user.created, key: u-1 }
";

const LISTENER: &str = "name: listener
triggers:
  - event: order.placed
input: { type: object, required: [order_id] }
steps:
  - id: note
    action: mock
    with: { output: { seen: '{{input.order_id}}' } }
";

fn compile(source: &str) -> Arc<CompiledWorkflow> {
    CompiledWorkflow::compile(Path::new("test.yaml"), source, crate::config::registry::builtin())
        .unwrap_or_else(|_| panic!("the test workflow compiles"))
}

fn webhook(url: &str, events: &[&str], max_attempts: u32) -> Arc<Webhook> {
    Arc::new(Webhook {
        name: "hook".into(),
        url: format!("{url}/hook"),
        events: events.iter().map(|e| e.to_string()).collect(),
        headers: Vec::new(),
        timeout: Duration::from_secs(5),
        max_attempts,
        client: Client::new().unwrap_or_else(|e| panic!("{e}")),
    })
}

struct Running {
    engine: Engine,
    relay: Arc<Relay>,
    store: Arc<MemoryStore>,
}

fn start(subscriptions: Subscriptions) -> Running {
    let store = Arc::new(MemoryStore::default());
    let subscriptions = Arc::new(subscriptions);
    let options = EngineOptions { subscriptions: subscriptions.clone(), ..EngineOptions::default() };
    let engine = Engine::start(store.clone(), crate::config::registry::builtin_shared().clone(), options);
    let relay = Relay::spawn(engine.clone(), store.clone() as Arc<dyn Store>, subscriptions);
    Running { engine, relay, store }
}

async fn emit(r: &Running) {
    let run_id = r.engine.start_run(compile(EMITTER), json!({})).await.unwrap_or_else(|e| panic!("{e}"));
    let record = r.engine.wait(&run_id).await.unwrap_or_else(|| panic!("the run ends"));
    assert_eq!(record.status, "succeeded");
}

#[tokio::test]
async fn a_webhook_gets_each_event_of_its_types_once_with_its_id() {
    let server = TestServer::start(|_| Reply::raw(204, b"")).await;
    let r = start(Subscriptions::new(vec![webhook(&server.url, &["order.*"], 3)]));
    emit(&r).await;
    assert_eq!(r.relay.drain(Duration::from_secs(10)).await, 0, "the outbox empties");
    let requests = server.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(requests.len(), 1, "user.created is not a type the webhook takes");
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap_or_default();
    assert_eq!(body["type"], "order.placed");
    assert_eq!(body["data"], json!({ "order_id": "o-1" }));
    let id = body["id"].as_str().unwrap_or_default();
    assert_eq!(requests[0].header("idempotency-key"), Some(id));
    assert_eq!(requests[0].header("x-sagaflow-event-type"), Some("order.placed"));
    assert!(r.store.dead_letters().unwrap_or_default().is_empty());
}

#[tokio::test]
async fn a_failing_webhook_is_tried_again_until_it_answers() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let server = TestServer::start(move |_| match seen.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::raw(503, b"busy"),
        _ => Reply::raw(200, b"ok"),
    })
    .await;
    let r = start(Subscriptions::new(vec![webhook(&server.url, &["*"], 5)]));
    emit(&r).await;
    assert_eq!(r.relay.drain(Duration::from_secs(15)).await, 0, "delivered on the second attempt");
    let requests = server.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let ids: Vec<_> = requests.iter().filter_map(|q| q.header("idempotency-key")).collect();
    assert_eq!(ids.len(), 3, "two events, one of them twice: {ids:?}");
    assert!(r.store.dead_letters().unwrap_or_default().is_empty());
}

#[tokio::test]
async fn a_webhook_that_refuses_the_event_gets_a_dead_letter_not_a_loop() {
    let server = TestServer::start(|_| Reply::raw(400, b"no such thing")).await;
    let r = start(Subscriptions::new(vec![webhook(&server.url, &["order.placed"], 5)]));
    emit(&r).await;
    assert_eq!(r.relay.drain(Duration::from_secs(10)).await, 0);
    assert_eq!(server.requests.lock().unwrap_or_else(|p| p.into_inner()).len(), 1, "a 400 is not retried");
    let dead = r.store.dead_letters().unwrap_or_default();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].subscriber, "webhook:hook");
    assert!(dead[0].error.contains("400"), "{}", dead[0].error);
}

#[tokio::test]
async fn a_webhook_down_for_good_is_given_up_after_its_attempts() {
    let server = TestServer::start(|_| Reply::raw(500, b"down")).await;
    let r = start(Subscriptions::new(vec![webhook(&server.url, &["order.placed"], 2)]));
    emit(&r).await;
    assert_eq!(r.relay.drain(Duration::from_secs(15)).await, 0);
    assert_eq!(server.requests.lock().unwrap_or_else(|p| p.into_inner()).len(), 2);
    let dead = r.store.dead_letters().unwrap_or_default();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].error.contains("after 2 attempts"), "{}", dead[0].error);
}

#[tokio::test]
async fn an_event_starts_its_triggered_workflow_once_with_the_event_data_as_input() {
    let subscriptions = Subscriptions::default();
    subscriptions.set_workflows([compile(LISTENER), compile(EMITTER)]);
    assert_eq!(subscriptions.subscribers("order.placed"), vec![Subscriber::Workflow("listener".into())]);
    assert!(subscriptions.subscribers("user.created").is_empty());
    let r = start(subscriptions);
    emit(&r).await;
    assert_eq!(r.relay.drain(Duration::from_secs(10)).await, 0);
    let started = r.relay.started();
    assert_eq!(started.len(), 1);
    let run_id = started[0].1.clone();
    let record = r.engine.wait(&run_id).await.unwrap_or_else(|| panic!("the triggered run ends"));
    assert_eq!(record.status, "succeeded");
    assert_eq!(record.steps[0].output, json!({ "seen": "o-1" }));
    // The same event again (a delivery repeated after a crash) starts nothing new.
    let event = r.store.events("order.placed", "o-1", 0).unwrap_or_default().remove(0);
    assert_eq!(run_id, triggered_run_id(&event, "listener"));
    let again = r.engine.start_run_as(run_id.clone(), compile(LISTENER), event.data).await;
    assert_eq!(again, Ok(false));
    assert_eq!(r.store.runs().unwrap_or_default().iter().filter(|m| m.workflow == "listener").count(), 1);
}

#[tokio::test]
async fn events_nobody_subscribes_to_leave_nothing_in_the_outbox() {
    let r = start(Subscriptions::default());
    emit(&r).await;
    assert!(r.store.pending().unwrap_or_default().is_empty());
}
