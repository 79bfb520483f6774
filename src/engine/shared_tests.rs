//! Two engines, as two workers, on one PostgreSQL store: a run id asked of
//! both at once (one event, one tick, one `Idempotency-Key`) starts one run.

use std::sync::Arc;

use serde_json::json;

use super::compiled::CompiledWorkflow;
use super::driver::{Engine, EngineOptions};
use crate::store::postgres::{testing::fresh_database, PgStore};
use crate::store::ReadRuns;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_id_asked_of_two_workers_at_once_starts_one_run() {
    let Some(url) = fresh_database() else { return };
    let registry = crate::config::registry::builtin_shared().clone();
    let yaml = "name: once\nsteps:\n  - { id: a, action: mock, with: { output: 1 } }\n";
    let wf = CompiledWorkflow::compile(std::path::Path::new("once.yaml"), yaml, &registry)
        .unwrap_or_else(|_| panic!("compiles"));
    let store =
        |id: &str| -> Arc<PgStore> { Arc::new(PgStore::open(&url, Some(id)).unwrap_or_else(|e| panic!("{e}"))) };
    let (a, b) = (store("a"), store("b"));
    let one = Engine::start(a.clone(), registry.clone(), EngineOptions::default());
    let two = Engine::start(b.clone(), registry.clone(), EngineOptions::default());
    let mut created = 0;
    for tick in 0..20 {
        let id = format!("tick-{tick}");
        let (x, y) = tokio::join!(
            one.start_run_as(id.clone(), wf.clone(), json!({})),
            two.start_run_as(id.clone(), wf.clone(), json!({}))
        );
        let (x, y) = (x.unwrap_or_else(|e| panic!("{e}")), y.unwrap_or_else(|e| panic!("{e}")));
        assert!(x || y, "tick {tick}: one of them started it");
        created += usize::from(x) + usize::from(y);
        let record = one.wait(&id).await.or(two.wait(&id).await).unwrap_or_else(|| panic!("run {id} ended"));
        assert_eq!(record.status, "succeeded");
        let starts = a
            .entries(&id)
            .unwrap_or_default()
            .iter()
            .filter(|e| matches!(e, crate::journal::entry::Entry::RunStarted { .. }))
            .count();
        assert_eq!(starts, 1, "run {id} started once");
    }
    assert_eq!(created, 20, "each id created by exactly one of the two");
}
