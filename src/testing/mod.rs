//! `sagaflow test`: test files run on a fresh sandbox each, every expectation
//! checked and every miss said in plain words with its file and line.

pub(crate) mod spec;

use std::sync::Arc;

use serde_json::Value as Json;

use crate::engine::compiled::CompiledWorkflow;
use crate::explore::holdings::{holdings, leaks};
use crate::explore::{compensations, run_once, Ground, RunEnd, Scenario};
use crate::journal::injection::Injection;
use spec::{at, Case, Expected, TestFile};

/// One case's result: its name, and what did not hold (empty: it passed).
pub(crate) struct CaseResult {
    pub name: String,
    pub misses: Vec<String>,
}

/// Compiles a test file's workflow and checks its `fail`s: what is wrong is a
/// usage error (exit 2), not a failed test.
pub(crate) fn prepare(
    test: &TestFile,
    library: &dyn crate::engine::library::Library,
    registry: &crate::actions::Registry,
) -> Result<(Arc<CompiledWorkflow>, Vec<Vec<Injection>>), String> {
    let source = crate::base::file::read_regular_text(&test.workflow, crate::dsl::loader::MAX_FILE_BYTES as u64)
        .map_err(|e| at(&test.file, Default::default(), &format!("cannot read {}: {e}", test.workflow.display())))?;
    let wf = CompiledWorkflow::compile(&test.workflow, &source, registry).map_err(|_| {
        format!("{} has errors (`sagaflow validate` shows them); its tests cannot run", test.workflow.display())
    })?;
    let mut injections = Vec::new();
    for case in &test.cases {
        let parsed = case
            .fail
            .iter()
            .map(|(f, span)| crate::engine::inject::parse(f, &wf, library).map_err(|e| at(&test.file, *span, &e)));
        injections.push(parsed.collect::<Result<Vec<_>, _>>()?);
        for e in &case.expect {
            if let Expected::Step { id, .. } = &e.what {
                if wf.position(id).is_none() {
                    return Err(at(&test.file, e.span, &wf.no_step(id)));
                }
            }
        }
    }
    Ok((wf, injections))
}

/// Runs one case on a fresh sandbox and checks what it expects.
pub(crate) async fn run_case(
    test: &TestFile,
    wf: &Arc<CompiledWorkflow>,
    case: &Case,
    inject: Vec<Injection>,
    ground: &Ground,
) -> Result<CaseResult, crate::explore::ExploreError> {
    let scenario = Scenario { inject, halt_after: None, answers: case.events.clone() };
    let outcome = run_once(wf, &case.input, ground, scenario).await?;
    let misses =
        case.expect.iter().filter_map(|e| miss(&e.what, &outcome).map(|m| at(&test.file, e.span, &m))).collect();
    Ok(CaseResult { name: case.name.clone(), misses })
}

/// What is wrong with one expectation, if anything.
fn miss(expected: &Expected, got: &RunEnd) -> Option<String> {
    let r = &got.record;
    match expected {
        Expected::Status(s) => (r.status != s.as_str()).then(|| {
            let why = r.error.as_ref().map(|e| format!(" ({}: {})", e.code, e.message)).unwrap_or_default();
            format!("expected the run to end `{s}`, it ended `{}`{why}", r.status)
        }),
        Expected::Output(want) => {
            (!contains(&r.output, want)).then(|| format!("expected the output to hold {want}, it is {}", r.output))
        }
        Expected::Step { id, status } => {
            let step = r.steps.iter().find(|s| s.id == *id)?;
            (step.status != status.as_str()).then(|| {
                let why = step.error.as_ref().map(|e| format!(" ({}: {})", e.code, e.message)).unwrap_or_default();
                format!("expected step `{id}` to be `{status}`, it is `{}`{why}", step.status)
            })
        }
        Expected::Compensations(want) => {
            let ran = compensations(r);
            (ran != *want).then(|| format!("expected the compensations {want:?} in that order, these ran: {ran:?}"))
        }
        Expected::Leaks(want) => {
            let left = leaks(&holdings(&got.before), &holdings(&got.after));
            (left != *want).then(|| format!("expected the run to leave {want:?} held, it left {left:?}"))
        }
        Expected::Record { key, fields } => match record(&got.after, key) {
            Err(e) => Some(e),
            Ok(found) => (!contains(&found, fields))
                .then(|| format!("expected the sandbox record {key} to hold {fields}, it is {found}")),
        },
    }
}

/// Whether `have` holds everything `want` says (mappings: these keys at least).
fn contains(have: &Json, want: &Json) -> bool {
    match (have, want) {
        (Json::Object(h), Json::Object(w)) => w.iter().all(|(k, v)| h.get(k).is_some_and(|hv| contains(hv, v))),
        (Json::Number(h), Json::Number(w)) => h.as_f64() == w.as_f64(),
        _ => have == want,
    }
}

/// The sandbox record `service.kind.id` (the id: its sku or any `*_id` field).
fn record(state: &Json, key: &str) -> Result<Json, String> {
    let mut parts = key.splitn(3, '.');
    let (Some(service), Some(kind), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`{key}` is not `service.kind.id`"));
    };
    let records =
        state.get(service).and_then(|s| s.get(kind)).and_then(Json::as_array).ok_or_else(|| {
            format!("the sandbox has no `{service}.{kind}` records (`sagaflow sandbox show` lists them)")
        })?;
    let names = |r: &Json| -> bool {
        r.as_object().is_some_and(|o| o.iter().any(|(k, v)| (k == "sku" || k.ends_with("_id")) && v == id))
    };
    records.iter().find(|r| names(r)).cloned().ok_or_else(|| format!("the sandbox has no {service}.{kind} `{id}`"))
}
