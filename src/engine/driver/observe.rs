//! Observation: the log lines of transitions and attempts.

use super::*;

/// The end of an attempt, inside its span: the outcome and how long it took.
pub(super) fn log_finished(outcome: &Outcome, began: std::time::Instant) {
    let duration_ms = began.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Outcome::Ok(_) => info!(outcome = "ok", duration_ms, "attempt finished"),
        Outcome::Err(e) => info!(outcome = %e.code, message = %e.message, duration_ms, "attempt failed"),
    }
}

/// The log events of a run's transitions: starts, retries, timeouts, compensations.
/// `now`: the engine's clock, for how far off a timer is.
pub(super) fn log_entry(run_id: &str, state: &RunState, entry: &Entry, now: u64) {
    let workflow = state.wf.name.as_str();
    let step = |s: &usize| state.wf.steps.get(*s).map_or("", |d| d.id.as_str());
    match entry {
        Entry::RunStarted { .. } => info!(run_id, workflow, "run started"),
        Entry::InputRejected { error, .. } => warn!(run_id, workflow, message = %error.message, "run input rejected"),
        Entry::RetryScheduled { step: s, item, due } => {
            info!(run_id, workflow, step = step(s), item, in_ms = due.saturating_sub(now), "retry scheduled")
        }
        Entry::RunTimedOut { .. } => warn!(run_id, workflow, "run timed out; rolling back"),
        Entry::CancelRequested { .. } => info!(run_id, workflow, "run cancelled; rolling back"),
        Entry::StepFailed { step: s, error } => {
            warn!(run_id, workflow, step = step(s), code = %error.code, message = %error.message, "step failed")
        }
        Entry::CompensationStarted { step: s, item, attempt, .. } => {
            info!(run_id, workflow, step = step(s), item, attempt, "compensation started")
        }
        Entry::CompensationFinished { step: s, item, attempt, outcome, .. } => match outcome {
            Outcome::Ok(_) => info!(run_id, workflow, step = step(s), item, attempt, "compensation succeeded"),
            Outcome::Err(e) => {
                warn!(run_id, workflow, step = step(s), item, attempt, code = %e.code, message = %e.message, "compensation failed")
            }
        },
        _ => {}
    }
}
