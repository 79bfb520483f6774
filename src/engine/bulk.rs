//! An operator's act on every run a filter chooses (DSL.md C2): first as a
//! dry run that says what each would do, then for real, answering each run's
//! outcome. A filter must choose something; at most 1,000 runs a call, with
//! a cursor to go on.

use serde::{Deserialize, Serialize};

use super::driver::Engine;
use super::machine::{RunState, UnitStatus};
use super::operator::{Ask, Refused};
use crate::journal::status::RunStatus;
use crate::store::{ReadRuns, RunFilter, RunMeta};

/// The most runs one call acts on.
pub(crate) const MAX_RUNS: usize = 1000;

/// Which runs: at least one of these must be given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Choice {
    pub workflow: Option<String>,
    pub status: Option<RunStatus>,
    /// Started at or after, and before (ms since the epoch).
    pub started_after: Option<u64>,
    pub started_before: Option<u64>,
    /// The code of the error that ended (or paused) it.
    pub error_code: Option<String>,
}

impl Choice {
    pub(crate) fn is_empty(&self) -> bool {
        self.workflow.is_none()
            && self.status.is_none()
            && self.started_after.is_none()
            && self.started_before.is_none()
            && self.error_code.is_none()
    }
}

/// What happened (or would) to one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Outcome {
    pub run_id: String,
    pub workflow: String,
    pub status: RunStatus,
    /// Taken: what it does (or would do): `retry step charge`, `abort`, `rerun as RUN`...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub does: Option<String>,
    /// Not taken: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// One call's answer: each run chosen, and where to go on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Page {
    pub dry_run: bool,
    pub runs: Vec<Outcome>,
    pub next: Option<String>,
}

/// A bulk act: which runs, what to do, and how.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub choice: Choice,
    pub ask: Ask,
    pub dry_run: bool,
    pub cursor: Option<String>,
    pub limit: usize,
    /// Who asks, as each run's journal says it.
    pub by: String,
}

/// Acts (or, dry, says what it would do) on the runs chosen, newest first.
pub(crate) async fn act(engine: &Engine, store: &dyn ReadRuns, request: &Request) -> Result<Page, String> {
    let Request { choice, ask, dry_run, cursor, limit, by } = request;
    let (dry_run, by) = (*dry_run, by.as_str());
    if choice.is_empty() {
        return Err(
            "an empty filter would act on every run; name a workflow, a status, a time range or an error code".into()
        );
    }
    let filter = RunFilter { workflow: choice.workflow.clone(), statuses: choice.status.into_iter().collect() };
    let page = store.runs_page(&filter, cursor.as_deref(), (*limit).clamp(1, MAX_RUNS)).map_err(|e| e.message)?;
    let mut runs = Vec::new();
    for meta in page.runs.iter().filter(|m| in_range(choice, m)) {
        let Ok(state) = engine.replay(&meta.run_id) else { continue };
        if let Some(code) = &choice.error_code {
            if crate::engine::record::meta_error(&state).is_none_or(|e| &e.code != code) {
                continue;
            }
        }
        let mut outcome = Outcome {
            run_id: meta.run_id.clone(),
            workflow: meta.workflow.clone(),
            status: meta.status,
            does: None,
            refused: None,
        };
        let judged = would_do(&state, ask).map_err(|r| r.to_string());
        match (judged, dry_run) {
            (Err(why), _) => outcome.refused = Some(why),
            (Ok(does), true) => outcome.does = Some(does),
            (Ok(does), false) => match ask {
                Ask::Rerun { .. } => match engine.rerun(&meta.run_id, None, None, by).await {
                    Ok(new) => outcome.does = Some(format!("rerun as {new}")),
                    Err(e) => outcome.refused = Some(e.to_string()),
                },
                _ => match engine.operate(&meta.run_id, ask.clone(), by).await {
                    Ok(_) => outcome.does = Some(does),
                    Err(r) => outcome.refused = Some(r.to_string()),
                },
            },
        }
        runs.push(outcome);
    }
    Ok(Page { dry_run, runs, next: page.next })
}

fn in_range(choice: &Choice, meta: &RunMeta) -> bool {
    choice.started_after.is_none_or(|t| meta.started_at >= t)
        && choice.started_before.is_none_or(|t| meta.started_at < t)
}

/// What an ask would do to a run as it stands, in words; or why it would be refused.
pub(crate) fn would_do(state: &RunState, ask: &Ask) -> Result<String, Refused> {
    match ask {
        Ask::Rerun { .. } => Ok(format!("rerun: a new run of {} with the same input", state.wf.name)),
        _ => state.judge(ask).map(|action| describe(state, &action)),
    }
}

/// What a cancel would do to a run as it stands, or why it would be refused.
pub(crate) fn would_cancel(state: &RunState) -> Result<String, super::machine::CancelRefused> {
    state.cancellable().map(|()| format!("cancel: {}", rolls_back(state)))
}

/// What an operator's action does, in words.
fn describe(state: &RunState, action: &crate::journal::entry::OperatorAction) -> String {
    use crate::journal::entry::OperatorAction as A;
    let step = |s: usize| state.wf.steps.get(s).map_or("?", |d| d.id.as_str()).to_owned();
    match action {
        A::Retry { step: s, with: Some(_), .. } => format!("retry step {} with the new input", step(*s)),
        A::Retry { step: s, .. } => format!("retry step {}", step(*s)),
        A::Skip { step: s, .. } => format!("skip step {}, giving the output", step(*s)),
        A::RetryNow { step: s, .. } => format!("retry step {} now (it waits in a backoff)", step(*s)),
        A::RetryCompensations => {
            let failed = state.compensations.iter().filter(|&&(s, i)| {
                state.unit(s, i).and_then(|u| u.compensation.as_ref()).is_some_and(|c| c.status == UnitStatus::Failed)
            });
            let named: Vec<String> = failed.map(|&(s, _)| step(s)).collect();
            format!("retry the failed compensations ({})", named.join(", "))
        }
        A::Abort => format!("abort: {}", rolls_back(state)),
        A::Rerun { .. } => "rerun".to_owned(),
    }
}

/// A roll-back of the run as it stands, in words: what it undoes, in order.
fn rolls_back(state: &RunState) -> String {
    let queue = state.compensation_queue();
    if queue.is_empty() {
        return "roll back (nothing to undo)".to_owned();
    }
    let named: Vec<String> = queue
        .iter()
        .map(|&(s, item)| {
            let id = &state.wf.steps[s].id;
            item.map_or_else(|| id.clone(), |i| format!("{id}[{i}]"))
        })
        .collect();
    format!("roll back, undoing {} in that order", named.join(", "))
}

/// A time as the filter takes it: RFC 3339, a date (its midnight, UTC), or milliseconds since the epoch.
pub(crate) fn parse_time(text: &str) -> Result<u64, String> {
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(ms);
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let midnight = day.and_time(chrono::NaiveTime::MIN).and_utc();
        return Ok(u64::try_from(midnight.timestamp_millis()).unwrap_or(0));
    }
    chrono::DateTime::parse_from_rfc3339(text).map(|t| u64::try_from(t.timestamp_millis()).unwrap_or(0)).map_err(|e| {
        format!("`{text}` is not a time (RFC 3339, like 2026-12-01T09:00:00Z, a date, or milliseconds): {e}")
    })
}
