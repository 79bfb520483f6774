//! What a run that is not moving waits for, as its record says it (`waits`):
//! an event (type and key, until its timeout), a timer (a `sleep`, a retry's
//! backoff, a `repeat`'s next round), a child run, or an operator.

use serde::{Deserialize, Serialize};

use super::compiled::StepKind;
use super::machine::{RunState, UnitStatus};
use crate::journal::entry::Item;

/// One thing a run waits for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct WaitRecord {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
    pub kind: WaitKind,
    /// For an event: its type and key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_key: Option<String>,
    /// When the wait ends by itself (milliseconds since the epoch): the timer's
    /// due time, or the event wait's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<u64>,
    /// For a child run: its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_run: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WaitKind {
    Event,
    Sleep,
    Child,
    Retry,
    Round,
    CompensationRetry,
    Operator,
}

impl WaitRecord {
    fn new(state: &RunState, s: usize, item: Item, kind: WaitKind) -> WaitRecord {
        let step = state.wf.steps[s].id.clone();
        WaitRecord { step, item, kind, event_type: None, event_key: None, until: None, child_run: None }
    }
}

/// Everything the run waits for now, in step order.
pub(crate) fn waits(state: &RunState) -> Vec<WaitRecord> {
    let mut out = Vec::new();
    for (s, step) in state.steps.iter().enumerate() {
        let for_each = state.wf.steps[s].for_each.is_some();
        for (i, unit) in step.units.iter().enumerate() {
            let item = for_each.then_some(i);
            let kind = match unit.status {
                UnitStatus::Running => running_wait(state, s, item),
                UnitStatus::Retrying => Some((WaitKind::Retry, unit.retry_due)),
                UnitStatus::Repeating => Some((WaitKind::Round, unit.next_round)),
                UnitStatus::Paused => Some((WaitKind::Operator, None)),
                _ => None,
            };
            if let Some((kind, until)) = kind {
                out.push(WaitRecord { until, ..filled(state, s, item, kind) });
            }
            if let Some(c) = unit.compensation.as_deref().filter(|c| c.status == UnitStatus::Retrying) {
                out.push(WaitRecord {
                    until: c.retry_due,
                    ..WaitRecord::new(state, s, item, WaitKind::CompensationRetry)
                });
            }
        }
    }
    out
}

/// A unit whose attempt is under way waits when its step waits inside the engine.
fn running_wait(state: &RunState, s: usize, item: Item) -> Option<(WaitKind, Option<u64>)> {
    match state.wf.steps[s].kind {
        StepKind::Sleep => Some((WaitKind::Sleep, state.sleep_end(s, item).ok().map(|(due, _)| due))),
        StepKind::Wait => {
            let started = state.unit(s, item)?.attempt_at.unwrap_or(state.started_at);
            let timeout = state.attempt_timeout(s, item).ok().flatten();
            Some((WaitKind::Event, timeout.map(|t| started.saturating_add(t))))
        }
        StepKind::Child => Some((WaitKind::Child, None)),
        _ => None,
    }
}

/// The record with what its kind names: the event, the child.
fn filled(state: &RunState, s: usize, item: Item, kind: WaitKind) -> WaitRecord {
    let mut record = WaitRecord::new(state, s, item, kind);
    match kind {
        WaitKind::Event => {
            if let Ok((kind, key)) = state.awaited_event(s, item) {
                record.event_type = Some(kind);
                record.event_key = Some(key);
            }
        }
        WaitKind::Child => record.child_run = state.child_of(s, item),
        _ => {}
    }
    record
}
