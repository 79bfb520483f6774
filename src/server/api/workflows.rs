//! `/v1/workflows` and `/v1/validate`: what the server runs, and checking a file before it is saved.

use std::path::Path as FilePath;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value as Json_};

use super::extract::{Params, WorkflowName};
use crate::engine::compiled::CompiledWorkflow;
use crate::server::catalog::FileState;
use crate::server::error::{ApiError, BoundedBody};
use crate::server::App;
use crate::validate::render;

/// `GET /v1/workflows`: every workflow file, with its state.
pub(super) async fn list(State(app): State<Arc<App>>) -> Json<Json_> {
    let snapshot = app.catalog.snapshot();
    let workflows: Vec<Json_> = snapshot.files.values().map(summary).collect();
    Json(json!({ "workflows": workflows, "generation": snapshot.generation }))
}

fn summary(f: &FileState) -> Json_ {
    json!({
        "name": f.display_name(),
        "file": f.file.display().to_string(),
        "state": if f.is_valid() { "active" } else { "invalid" },
        "version": f.active.as_ref().map(|a| a.hash.clone()),
        "serving": f.active.is_some(),
        "loaded_at": f.loaded_at,
        "errors": f.diagnostics.as_ref().map_or(0, |d| d["errors"].as_u64().unwrap_or(0)),
        "diagnostics": f.diagnostics.as_ref().map(|d| d["diagnostics"].clone()),
    })
}

/// `GET /v1/workflows/{name}`: its state, diagnostics, last reload report and graph.
pub(super) async fn one(
    State(app): State<Arc<App>>,
    WorkflowName(name): WorkflowName,
) -> Result<Json<Json_>, ApiError> {
    let snapshot = app.catalog.snapshot();
    let file = snapshot.file_of(&name).ok_or_else(|| ApiError::not_found(snapshot.no_workflow(&name)))?;
    let mut body = summary(file);
    body["reload"] = json!(app.reports.get(&name));
    if let Some(wf) = &file.active {
        body["description"] = json!(wf.description);
        body["input"] = json!(wf.input_json);
        body["steps"] = json!(graph(wf));
        body["triggers"] = json!({
            "events": wf.event_triggers,
            "schedules": wf.schedules.iter().map(|s| json!({"cron": s.cron, "timezone": s.timezone, "input": s.input})).collect::<Vec<_>>(),
        });
    }
    Ok(Json(body))
}

/// The steps as a graph: ids, actions, what each needs, compensations.
fn graph(wf: &CompiledWorkflow) -> Vec<Json_> {
    wf.steps
        .iter()
        .map(|s| {
            json!({
                "id": s.id,
                "action": s.action,
                "section": s.section.key(),
                "needs": s.needs.iter().filter_map(|n| wf.steps.get(*n).map(|d| d.id.clone())).collect::<Vec<_>>(),
                "compensate": s.compensate.as_ref().map(|c| c.action.clone()),
                "for_each": s.for_each.is_some(),
                "conditional": s.when.is_some(),
                "max_attempts": s.retry.first().max_attempts,
                "timeout_ms": s.timeout_ms,
            })
        })
        .collect()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ValidateQuery {
    /// The name the report gives the file.
    file: Option<String>,
}

/// `POST /v1/validate?file=NAME.yaml`: the body is a workflow's YAML; the
/// answer is the `validate --format json` report (200 whether or not it has errors).
pub(super) async fn validate(
    State(app): State<Arc<App>>,
    Params(query): Params<ValidateQuery>,
    BoundedBody(body): BoundedBody,
) -> Result<Json<Json_>, ApiError> {
    let name = query.file.as_deref().unwrap_or("request.yaml");
    if name.len() > 255 {
        return Err(ApiError::bad_request("bad_request", "?file= names a file in at most 255 characters"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("empty_body", "the body is empty: send the workflow file's YAML"));
    }
    let name = name.to_owned();
    let report = tokio::task::spawn_blocking(move || {
        let checked = crate::validate::check_text(FilePath::new(&name), &body, app.engine.registry());
        render::json(std::slice::from_ref(&checked.report))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(report))
}
