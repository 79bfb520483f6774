//! `POST /v1/runs/{id}/retry|skip|abort`: an operator acts on a run (DSL.md
//! C1, C2). Each is journaled with who asked (`token` with the server's
//! token set, else `anonymous`) and answers what it did.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::extract::{Params, RunId};
use crate::engine::operator::{Ask, Refused};
use crate::journal::entry::OperatorAction;
use crate::server::error::{ApiError, JsonBody};
use crate::server::App;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RetryBody {
    /// Which paused step (the first when left out).
    #[serde(default)]
    step: Option<String>,
    /// A new `with` for it, replacing the old one.
    #[serde(default)]
    with: Option<Json_>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SkipBody {
    #[serde(default)]
    step: Option<String>,
    /// The output the step should have had, checked against its action's output schema.
    output: Json_,
}

/// `?dry_run=true`: say what the act would do, and do nothing.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct DryRun {
    dry_run: Option<String>,
}

impl DryRun {
    pub(super) fn asked(&self) -> Result<bool, ApiError> {
        match self.dry_run.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request("bad_request", format!("?dry_run={other}: say true or false"))),
        }
    }
}

/// `POST /v1/runs/{id}/retry`: the paused step tries again.
pub(super) async fn retry(
    State(app): State<Arc<App>>,
    RunId(id): RunId,
    Params(dry): Params<DryRun>,
    JsonBody(body): JsonBody<RetryBody>,
) -> Result<Response, ApiError> {
    operate(&app, &id, Ask::Retry { step: body.step, with: body.with }, dry.asked()?).await
}

/// `POST /v1/runs/{id}/skip`: the paused step is skipped with the output given.
pub(super) async fn skip(
    State(app): State<Arc<App>>,
    RunId(id): RunId,
    Params(dry): Params<DryRun>,
    JsonBody(body): JsonBody<SkipBody>,
) -> Result<Response, ApiError> {
    let ask = Ask::Skip { step: body.step, output: body.output };
    check_output(&app, &id, &ask)?;
    operate(&app, &id, ask, dry.asked()?).await
}

/// `POST /v1/runs/{id}/abort`: the run rolls back, as its failure would have made it.
pub(super) async fn abort(
    State(app): State<Arc<App>>,
    RunId(id): RunId,
    Params(dry): Params<DryRun>,
) -> Result<Response, ApiError> {
    operate(&app, &id, Ask::Abort, dry.asked()?).await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RerunBody {
    /// An edited input (the old run's when left out).
    #[serde(default)]
    input: Option<Json_>,
}

/// `POST /v1/runs/{id}/rerun`: a new run of the workflow's active version
/// (the old run's, when the workflow is gone), linked both ways.
pub(super) async fn rerun(
    State(app): State<Arc<App>>,
    RunId(id): RunId,
    Params(dry): Params<DryRun>,
    JsonBody(body): JsonBody<RerunBody>,
) -> Result<Response, ApiError> {
    let meta = app.store.run(&id)?.ok_or_else(|| ApiError::not_found(format!("there is no run `{id}`")))?;
    let wf = app.catalog.snapshot().active(&meta.workflow);
    if let (Some(wf), Some(input)) = (&wf, &body.input) {
        if let Some(e) = wf.check_input(&wf.with_defaults(input.clone())) {
            return Err(ApiError::bad_request("invalid_input", e.message));
        }
    }
    if dry.asked()? {
        let with = if body.input.is_some() { "the input given" } else { "the same input" };
        let version = wf.as_ref().map_or_else(|| meta.hash.clone(), |w| w.hash.clone());
        let does = format!("rerun: a new run of {} (version {}) with {with}", meta.workflow, short(&version));
        return Ok(dry_answer(&id, "rerun", does));
    }
    app.takes_writes()?;
    let by = who(&app);
    let new = app.engine.rerun(&id, wf, body.input, by).await.map_err(ApiError::from)?;
    let body = json!({ "run_id": new, "rerun_of": id, "by": by });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// Who asks, as the journal says it.
fn who(app: &App) -> &'static str {
    if app.token.is_some() {
        "token"
    } else {
        "anonymous"
    }
}

/// A dry run's answer: what the act would do.
pub(super) fn dry_answer(id: &str, action: &str, does: String) -> Response {
    Json(json!({ "run_id": id, "action": action, "dry_run": true, "does": does })).into_response()
}

fn short(hash: &str) -> &str {
    hash.get(..12).unwrap_or(hash)
}

async fn operate(app: &App, id: &str, ask: Ask, dry_run: bool) -> Result<Response, ApiError> {
    app.store.run(id)?.ok_or_else(|| ApiError::not_found(format!("there is no run `{id}`")))?;
    let name = ask.name();
    if dry_run {
        let state = app.engine.replay(id).map_err(|e| ApiError::internal(e.to_string()))?;
        let does = crate::engine::bulk::would_do(&state, &ask).map_err(|refused| rejected(id, name, refused))?;
        return Ok(dry_answer(id, name, does));
    }
    app.takes_writes()?;
    let by = who(app);
    match app.engine.operate(id, ask, by).await {
        Ok(action) => {
            let step = step_of(app, id, &action);
            let body = json!({ "run_id": id, "action": name, "step": step, "by": by });
            Ok((StatusCode::ACCEPTED, Json(body)).into_response())
        }
        Err(refused) => Err(rejected(id, name, refused)),
    }
}

/// The id of the step an action is about, when it is about one.
fn step_of(app: &App, id: &str, action: &OperatorAction) -> Option<String> {
    let (OperatorAction::Retry { step, .. } | OperatorAction::Skip { step, .. }) = action else { return None };
    let state = app.engine.replay(id).ok()?;
    state.wf.steps.get(*step).map(|s| s.id.clone())
}

fn rejected(id: &str, action: &str, refused: Refused) -> ApiError {
    let message = format!("run {id}: cannot {action}: {refused}");
    match refused {
        Refused::Unknown => ApiError::not_found(message),
        Refused::Stopped => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message),
        Refused::NotPaused(status) | Refused::Over(status) => {
            ApiError::conflict(message).with_details(json!({ "status": status }))
        }
        Refused::NotPausedStep { paused, .. } => ApiError::conflict(message).with_details(json!({ "paused": paused })),
    }
}

/// A skipped step's output must be one its action could have given.
fn check_output(app: &App, id: &str, ask: &Ask) -> Result<(), ApiError> {
    let Ok(state) = app.engine.replay(id) else { return Ok(()) };
    match state.misfit_output(ask, app.engine.registry()) {
        None => Ok(()),
        Some(why) => Err(ApiError::bad_request("invalid_output", why)),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct BulkBody {
    #[serde(default)]
    workflow: Option<String>,
    #[serde(default)]
    status: Option<String>,
    /// RFC 3339, or milliseconds since the epoch.
    #[serde(default)]
    started_after: Option<String>,
    #[serde(default)]
    started_before: Option<String>,
    #[serde(default)]
    error_code: Option<String>,
    /// Say what each run would do; act on none.
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
    /// For `retry`: a new input for each paused step.
    #[serde(default)]
    with: Option<Json_>,
    /// For `skip`: each paused step's output.
    #[serde(default)]
    output: Option<Json_>,
}

/// `POST /v1/bulk/{action}`: an act on every run the filter chooses (at most
/// 1,000 a call; `next` goes on), each run's outcome apart; with
/// `dry_run: true`, what each would do, and nothing done.
pub(super) async fn bulk(
    State(app): State<Arc<App>>,
    axum::extract::Path(action): axum::extract::Path<String>,
    JsonBody(body): JsonBody<BulkBody>,
) -> Result<Response, ApiError> {
    let ask = match action.as_str() {
        "retry" => Ask::Retry { step: None, with: body.with.clone() },
        "skip" => match body.output.clone() {
            Some(output) => Ask::Skip { step: None, output },
            None => return Err(ApiError::bad_request("invalid_body", "`skip` needs `output`: each step's output")),
        },
        "abort" => Ask::Abort,
        "rerun" => Ask::Rerun { run_id: String::new() },
        other => {
            let hint = crate::base::suggest::hint(other, ["retry", "skip", "abort", "rerun"]);
            return Err(ApiError::not_found(format!("there is no bulk action `{other}`{hint}")));
        }
    };
    let time = |t: &Option<String>| t.as_deref().map(crate::engine::bulk::parse_time).transpose();
    let bad = |e: String| ApiError::bad_request("invalid_filter", e);
    let status =
        body.status.as_deref().map(str::parse::<crate::journal::status::RunStatus>).transpose().map_err(bad)?;
    let choice = crate::engine::bulk::Choice {
        workflow: body.workflow,
        status,
        started_after: time(&body.started_after).map_err(bad)?,
        started_before: time(&body.started_before).map_err(bad)?,
        error_code: body.error_code,
    };
    if choice.is_empty() {
        return Err(ApiError::bad_request(
            "empty_filter",
            "an empty filter would act on every run; name a workflow, a status, a time range or an error code",
        ));
    }
    if !body.dry_run {
        app.takes_writes()?;
    }
    let request = crate::engine::bulk::Request {
        choice,
        ask,
        dry_run: body.dry_run,
        cursor: body.cursor,
        limit: body.limit.unwrap_or(crate::engine::bulk::MAX_RUNS),
        by: who(&app).to_owned(),
    };
    let page = crate::engine::bulk::act(&app.engine, app.store.as_ref(), &request)
        .await
        .map_err(|e| ApiError::bad_request("invalid_filter", e))?;
    Ok(Json(page).into_response())
}
