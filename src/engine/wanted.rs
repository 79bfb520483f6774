//! What a run wants done now, decided from its state alone: the attempts that
//! should be running, how each one is run, and what a roll-back cuts short.
//! The driver performs it (tasks, timers, the store, the clock); the scenario
//! tests read the same answers, so nothing here is decided twice.

use serde_json::Value as Json;

use super::compiled::StepKind;
use super::machine::{event_key, Phase, RunState};
use crate::journal::entry::{ActionError, Entry, Item, Outcome};
use crate::journal::injection::Injection;

/// Which attempt: a step's (or one item's), or its compensation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AttemptKey {
    pub compensation: bool,
    pub step: usize,
    pub item: Item,
    pub attempt: u32,
}

impl AttemptKey {
    /// The attempt whose end an entry journals, if it journals one.
    pub(crate) fn ended_by(entry: &Entry) -> Option<AttemptKey> {
        match *entry {
            Entry::AttemptFinished { step, item, attempt, .. } => {
                Some(AttemptKey { compensation: false, step, item, attempt })
            }
            Entry::CompensationFinished { step, item, attempt, .. } => {
                Some(AttemptKey { compensation: true, step, item, attempt })
            }
            _ => None,
        }
    }

    /// The attempt whose start an entry journals, and when it started.
    pub(crate) fn started_by(entry: &Entry) -> Option<(AttemptKey, u64)> {
        match *entry {
            Entry::AttemptStarted { step, item, attempt, at } => {
                Some((AttemptKey { compensation: false, step, item, attempt }, at))
            }
            Entry::CompensationStarted { step, item, attempt, at } => {
                Some((AttemptKey { compensation: true, step, item, attempt }, at))
            }
            _ => None,
        }
    }

    /// The entry that journals this attempt's end.
    pub(crate) fn finished(self, outcome: Outcome, at: u64) -> Entry {
        let AttemptKey { compensation, step, item, attempt } = self;
        if compensation {
            Entry::CompensationFinished { step, item, attempt, outcome, at }
        } else {
            Entry::AttemptFinished { step, item, attempt, outcome, at }
        }
    }
}

/// How an attempt is run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Start {
    /// It ends at once with this error: a failure injected with `--fail`, or an
    /// input that cannot be made (a template that does not render).
    Fail(ActionError),
    /// A durable `sleep`: its end is one of the run's timers.
    Sleep,
    /// An `event.wait` for an event of this type and key that came at or after `since`.
    Wait { kind: String, key: String, since: u64 },
    /// An `event.emit`: the event, whose id is the step's idempotency key,
    /// joins the commit of the step's end (the outbox).
    Emit { id: String, kind: String, key: String, data: Json },
    /// A call of a registered action.
    Call(Box<Call>),
    /// A child run of another workflow (`workflow.run`), waited for by its end's event.
    Child(Box<super::child::ChildStart>),
    /// The undoing of a succeeded child run, waited for by its end's event.
    UndoChild { run_id: String },
}

/// An action call an attempt makes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub action: String,
    pub input: Json,
    /// The same for every attempt of one unit: a service that sees it twice must not act twice.
    pub idempotency_key: String,
    pub timeout_ms: Option<u64>,
    /// Some: the action runs, then its answer is replaced by this error
    /// (`--fail STEP=lost`: the effect happened, the caller never heard).
    pub lost: Option<ActionError>,
}

impl RunState {
    /// The attempts that should be running now: the forward units under way
    /// and the compensation under way.
    pub(crate) fn running(&self) -> Vec<AttemptKey> {
        let forward = self.in_flight().into_iter().map(|(step, item, attempt)| AttemptKey {
            compensation: false,
            step,
            item,
            attempt,
        });
        let undo = self.compensation_in_flight().map(|(step, item, attempt)| AttemptKey {
            compensation: true,
            step,
            item,
            attempt,
        });
        forward.chain(undo).collect()
    }

    /// How to run one of the [`running`](Self::running) attempts: a pure
    /// decision from the state (no I/O, no clock).
    pub(crate) fn start(&self, key: AttemptKey) -> Start {
        let AttemptKey { compensation, step: s, item, attempt } = key;
        let injected = self.injected(s, compensation, attempt);
        if let Some(i) = injected.filter(|i| !i.loses_answer()) {
            return Start::Fail(i.error());
        }
        // The action runs, then its answer is lost: for calls only (a sleep, a
        // wait or an emit is the engine's own, with no answer to lose).
        let lost = injected.map(Injection::error);
        let def = &self.wf.steps[s];
        let timeout = if compensation { Ok(None) } else { self.attempt_timeout(s, item) };
        let (action, kind, timeout_ms) = match (&def.compensate, compensation, timeout) {
            (_, _, Err(e)) => return Start::Fail(e),
            (Some(c), true, _) => (&c.action, c.kind, c.timeout_ms),
            (_, _, Ok(timeout_ms)) => (&def.action, def.kind, timeout_ms),
        };
        if !compensation && kind == StepKind::Sleep {
            return self.sleep_end(s, item).map_or_else(Start::Fail, |_| Start::Sleep);
        }
        if !compensation && kind == StepKind::Wait {
            let since = self.started_at;
            return self.awaited_event(s, item).map_or_else(Start::Fail, |(kind, key)| Start::Wait {
                kind,
                key,
                since,
            });
        }
        if compensation && kind == StepKind::UndoChild {
            return self.undo_child(s, item);
        }
        let input = if compensation { self.compensation_input(s, item) } else { self.attempt_input(s, item) };
        let input = match input {
            Ok(input) => input,
            Err(e) => return Start::Fail(e),
        };
        if !compensation && kind == StepKind::Fail {
            return Start::Fail(crate::actions::builtin::failure(&input));
        }
        if kind == StepKind::Child {
            return self.child_start(key, input, timeout_ms);
        }
        let idempotency_key = self.idempotency_key(key);
        if kind == StepKind::Emit {
            return emit(input, idempotency_key);
        }
        Start::Call(Box::new(Call { action: action.clone(), input, idempotency_key, timeout_ms, lost }))
    }

    /// The key every attempt of a unit (or of its compensation) carries.
    pub(crate) fn idempotency_key(&self, key: AttemptKey) -> String {
        let id = &self.wf.steps[key.step].id;
        let suffix = match self.unit(key.step, key.item) {
            _ if key.compensation => ":compensate".to_owned(),
            // Each round of a `repeat` step is a call of its own (DSL.md B2).
            Some(u) if self.wf.steps[key.step].repeat.is_some() => format!(":r{}", u.round.max(1)),
            _ => String::new(),
        };
        match key.item {
            Some(i) => format!("{}:{id}:{i}{suffix}", self.run_id),
            None => format!("{}:{id}{suffix}", self.run_id),
        }
    }

    /// What a roll-back ends at once: the forward waits (`sleep`,
    /// `event.wait`) still under way, each to end `cancelled`. (Forward calls
    /// under way are tasks: the driver cancels those.)
    pub(crate) fn cut_short(&self) -> Vec<AttemptKey> {
        if self.phase != Phase::RollingBack {
            return Vec::new();
        }
        let forward = |k: &AttemptKey| self.wf.steps[k.step].section == crate::dsl::model::Section::Steps;
        // A child run is not cut short: it is cancelled, and rolls back on its own (the driver's part).
        let waits = |k: &AttemptKey| matches!(self.wf.steps[k.step].kind, StepKind::Sleep | StepKind::Wait);
        self.running().into_iter().filter(|k| !k.compensation && forward(k) && waits(k)).collect()
    }
}

/// The event an `event.emit` attempt sends, from its input.
fn emit(input: Json, id: String) -> Start {
    let Some(kind) = input.get("type").and_then(Json::as_str).map(str::to_owned) else {
        return Start::Fail(ActionError::new("invalid_input", "event.emit needs a `type`"));
    };
    let key = event_key(input.get("key"));
    let data = input.get("data").cloned().unwrap_or(Json::Null);
    Start::Emit { id, kind, key, data }
}
