//! `/v1/workflows/{name}/runs` and `/v1/runs...`: start, read, list, cancel, follow.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::extract::{Params, RunId, WorkflowName};
use crate::base::ids::content_hash;
use crate::base::trace::TraceParent;
use crate::engine::driver::NewRun;
use crate::engine::machine::CancelRefused;
use crate::engine::record::RunRecord;
use crate::journal::entry::Entry;
use crate::server::error::{ApiError, JsonBody};
use crate::server::timeline;
use crate::server::App;
use crate::store::{RunFilter, RunMeta, RunStatus};

/// `?wait=` may ask for at most this long.
const MAX_WAIT: Duration = Duration::from_secs(300);
const MAX_IDEMPOTENCY_KEY: usize = 255;
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartBody {
    #[serde(default)]
    input: Option<Json_>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartQuery {
    /// Wait up to this long (`30s`) for the run to end, and answer its record if it did.
    wait: Option<String>,
}

/// `POST /v1/workflows/{name}/runs`
pub(super) async fn start(
    State(app): State<Arc<App>>,
    WorkflowName(name): WorkflowName,
    Params(query): Params<StartQuery>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<StartBody>,
) -> Result<Response, ApiError> {
    app.takes_writes()?;
    let wait = query.wait.as_deref().map(parse_wait).transpose()?;
    let _place = wait.map(|_| app.long_request()).transpose()?;
    let wf = active_workflow(&app, &name)?;
    let input = wf.with_defaults(body.input.unwrap_or_else(|| json!({})));
    if let Some(e) = wf.check_input(&input) {
        return Err(ApiError::bad_request("invalid_input", e.message));
    }
    let run_id = idempotent_run_id(&headers, &name)?;
    let keyed = run_id.is_some();
    // The run joins the caller's trace (a malformed `traceparent` is ignored, as W3C says).
    let trace = headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(TraceParent::parse);
    let run = NewRun { run_id, trace, ..NewRun::of(wf, input.clone()) };
    let started = app.engine.start_new(run).await.map_err(|e| app.store_error(e))?;
    let (run_id, created) = (started.run_id, started.created);
    if keyed && !created {
        same_input_or_conflict(&app, &run_id, &input)?;
    }
    if let Some(wait) = wait {
        let ended = tokio::select! {
            record = app.engine.wait(&run_id) => record,
            _ = tokio::time::sleep(wait) => None,
            _ = app.shutdown.cancelled() => None,
        };
        if let Some(record) = ended {
            return Ok((StatusCode::OK, Json(record)).into_response());
        }
    }
    // A run this call created: its status as just committed (no read of the store).
    let status = match started.status {
        Some(status) => status,
        None => app.store.run(&run_id)?.map_or(RunStatus::Running, |m| m.status),
    };
    let body = json!({ "run_id": run_id, "status": status, "created": created });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

fn active_workflow(app: &App, name: &str) -> Result<Arc<crate::engine::compiled::CompiledWorkflow>, ApiError> {
    let snapshot = app.catalog.snapshot();
    if let Some(wf) = snapshot.active(name) {
        return Ok(wf);
    }
    if let Some(file) = snapshot.file_of(name) {
        return Err(ApiError::unprocessable(
            "workflow_invalid",
            format!(
                "`{name}` ({}) has errors and no version that validated; `GET /v1/workflows/{name}` shows them",
                file.file.display()
            ),
        ));
    }
    Err(ApiError::not_found(snapshot.no_workflow(name)))
}

/// The run an `Idempotency-Key` names: the same key (for one workflow) is the same run.
fn idempotent_run_id(headers: &HeaderMap, workflow: &str) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else { return Ok(None) };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("bad_request", "the Idempotency-Key header must be plain text"))?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::bad_request(
            "bad_request",
            format!("an Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY} characters"),
        ));
    }
    Ok(Some(format!("k{}", &content_hash(&format!("{workflow}\0{key}"))[..19])))
}

fn same_input_or_conflict(app: &App, run_id: &str, input: &Json_) -> Result<(), ApiError> {
    let first = app.store.entries(run_id)?.into_iter().next();
    // The journal holds the input with its secrets masked: so must what it is compared with.
    let mut input = input.clone();
    crate::base::secrets::mask_json(&mut input);
    match first {
        Some(Entry::RunStarted { input: earlier, .. }) if earlier != input => Err(ApiError::conflict(format!(
            "this Idempotency-Key started run {run_id} with another input; use a new key for a new run"
        ))),
        _ => Ok(()),
    }
}

fn parse_wait(text: &str) -> Result<Duration, ApiError> {
    let d: crate::dsl::duration::Duration = text.parse().map_err(|e: crate::dsl::duration::DurationError| {
        ApiError::bad_request("bad_request", format!("?wait={text}: {e}"))
    })?;
    let wait = Duration::from_millis(d.millis());
    if wait > MAX_WAIT {
        return Err(ApiError::bad_request("bad_request", format!("?wait may be at most {}s", MAX_WAIT.as_secs())));
    }
    Ok(wait)
}

/// `GET /v1/runs/{id}`: the run record of DSL.md.
pub(super) async fn one(State(app): State<Arc<App>>, RunId(id): RunId) -> Result<Json<RunRecord>, ApiError> {
    Ok(Json(record(&app, &id)?))
}

fn record(app: &App, id: &str) -> Result<RunRecord, ApiError> {
    let meta = run_meta(app, id)?;
    let state = app.engine.replay(&meta.run_id)?;
    Ok(RunRecord::of(&state))
}

fn run_meta(app: &App, id: &str) -> Result<RunMeta, ApiError> {
    app.store.run(id)?.ok_or_else(|| ApiError::not_found(format!("there is no run `{id}`")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    workflow: Option<String>,
    status: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// `GET /v1/runs?workflow=&status=&limit=&cursor=`: newest first, paged.
pub(super) async fn list(
    State(app): State<Arc<App>>,
    Params(q): Params<ListQuery>,
) -> Result<Json<crate::store::RunPage>, ApiError> {
    let limit = match q.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(text) => text.parse::<usize>().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
            ApiError::bad_request("bad_request", format!("?limit={text}: give a number from 1 to {MAX_PAGE}"))
        })?,
    };
    let statuses = q.status.as_deref().map(RunStatus::parse_list).transpose();
    let statuses = statuses.map_err(|e| ApiError::bad_request("bad_request", format!("?status: {e}")))?;
    if let Some(cursor) = q.cursor.as_deref() {
        if cursor.len() > 200 || !cursor.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(ApiError::bad_request("bad_request", "?cursor is not one this server gave"));
        }
    }
    let filter = RunFilter { workflow: q.workflow, statuses: statuses.unwrap_or_default() };
    let store = app.store.clone();
    let page = tokio::task::spawn_blocking(move || store.runs_page(&filter, q.cursor.as_deref(), limit))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(page))
}

/// `POST /v1/runs/{id}/cancel`: the run rolls back (its compensations run).
pub(super) async fn cancel(
    State(app): State<Arc<App>>,
    RunId(id): RunId,
    Params(dry): Params<super::operate::DryRun>,
) -> Result<Response, ApiError> {
    let meta = run_meta(&app, &id)?;
    if dry.asked()? {
        let state = app.engine.replay(&id).map_err(|e| ApiError::internal(e.to_string()))?;
        return match crate::engine::bulk::would_cancel(&state) {
            Ok(does) => Ok(super::operate::dry_answer(&id, "cancel", does)),
            Err(refused) => Err(ApiError::conflict(format!("run {id}: {refused}"))
                .with_details(json!({ "status": crate::engine::record::run_status(&state) }))),
        };
    }
    app.takes_writes()?;
    if let Err(refused) = app.engine.cancel(&id).await {
        if refused == CancelRefused::Stopped {
            return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", format!("run {id}: {refused}")));
        }
        let status = match &refused {
            CancelRefused::Ended(status) => *status,
            _ => meta.status,
        };
        let message = format!("run {id}: {refused}");
        return Err(ApiError::conflict(message).with_details(json!({ "status": status })));
    }
    let body = json!({ "run_id": id, "status": "cancelling" });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /v1/runs/{id}/events`: the run's transitions as server-sent events,
/// from its first, live until it ends (`event: end` carries the run record).
pub(super) async fn events(State(app): State<Arc<App>>, RunId(id): RunId) -> Result<Response, ApiError> {
    let meta = run_meta(&app, &id)?;
    let place = app.long_request()?;
    // Listen before reading the history: nothing falls between the two.
    let live = app.engine.transitions();
    let wf = app.engine.version(&meta.hash)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Event>(256);
    tokio::spawn(async move {
        follow(app, id, wf, live, tx).await;
        drop(place);
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok::<Event, Infallible>(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response())
}

/// How often a stream reads the journal of a run in a store workers share.
const SHARED_POLL: Duration = Duration::from_millis(500);

/// Sends a run's transitions: the journal so far, then live ones, then the end.
async fn follow(
    app: Arc<App>,
    run_id: String,
    wf: Arc<crate::engine::compiled::CompiledWorkflow>,
    mut live: tokio::sync::broadcast::Receiver<Arc<crate::engine::driver::Transition>>,
    tx: tokio::sync::mpsc::Sender<Event>,
) {
    let mut next_seq = 0u32;
    let mut ended = false;
    // The journal from `next_seq` on; again after falling behind the live feed.
    let catch_up = |next_seq: &mut u32, ended: &mut bool| -> Vec<Event> {
        let entries = app.store.entries(&run_id).unwrap_or_default();
        let mut out = Vec::new();
        for (seq, entry) in entries.iter().enumerate().skip(*next_seq as usize) {
            out.push(transition_event(&wf, seq as u32, entry));
            *ended |= timeline::is_end(entry);
            *next_seq = seq as u32 + 1;
        }
        out
    };
    for event in catch_up(&mut next_seq, &mut ended) {
        if tx.send(event).await.is_err() {
            return;
        }
    }
    // A run another worker of a shared store moves shows only in its journal.
    let shared = app.store.is_shared();
    while !ended {
        let t = tokio::select! {
            t = live.recv() => Some(t),
            _ = tokio::time::sleep(SHARED_POLL), if shared => None,
            _ = app.shutdown.cancelled() => return,
            _ = tx.closed() => return,
        };
        let events = match t {
            Some(Ok(t)) if t.run_id != run_id || t.seq < next_seq => continue,
            Some(Ok(t)) if t.seq == next_seq => {
                next_seq += 1;
                ended = timeline::is_end(&t.entry);
                vec![transition_event(&wf, t.seq, &t.entry)]
            }
            None | Some(Ok(_)) | Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => {
                catch_up(&mut next_seq, &mut ended)
            }
            Some(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return,
        };
        for event in events {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
    if let Ok(record) = record(&app, &run_id) {
        let data = serde_json::to_string(&record).unwrap_or_default();
        let _ = tx.send(Event::default().event("end").data(data)).await;
    }
}

fn transition_event(wf: &crate::engine::compiled::CompiledWorkflow, seq: u32, entry: &Entry) -> Event {
    let data = timeline::describe(wf, seq, entry).to_string();
    Event::default().event("transition").id(seq.to_string()).data(data)
}
