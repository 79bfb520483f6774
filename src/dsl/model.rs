//! The typed model of a workflow. Every value a diagnostic may point at keeps its span.

use super::duration::Duration;
use super::node::Node;
use super::span::{Span, Spanned};

/// A parsed workflow definition.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: Spanned<String>,
    pub version: Option<u64>,
    pub description: Option<String>,
    /// The run input's JSON Schema.
    pub input: Option<Node>,
    pub timeout: Option<Spanned<Duration>>,
    pub defaults: Defaults,
    pub triggers: Vec<Trigger>,
    pub steps: Vec<Step>,
    /// Templates giving the run's output.
    pub output: Option<Node>,
    pub on_failure: Vec<Step>,
    /// Steps that run at the end whatever the outcome (DSL.md A3).
    pub finally: Vec<Step>,
}

impl Workflow {
    /// `steps`, `on_failure`, then `finally`, in file order.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(&self.on_failure).chain(&self.finally)
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.all_steps().find(|s| s.id.value == id)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Defaults {
    pub retry: Option<RetryPolicies>,
    pub timeout: Option<Spanned<Duration>>,
}

#[derive(Debug, Clone)]
pub struct Trigger {
    pub span: Span,
    pub kind: Option<TriggerKind>,
    pub timezone: Option<Spanned<String>>,
    pub input: Option<Node>,
}

#[derive(Debug, Clone)]
pub enum TriggerKind {
    Schedule(Spanned<String>),
    Event(Spanned<String>),
}

/// Which list a step is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Steps,
    OnFailure,
    /// Run last, whatever the outcome.
    Finally,
}

impl Section {
    /// The list's key in a workflow file.
    pub fn key(self) -> &'static str {
        match self {
            Section::Steps => "steps",
            Section::OnFailure => "on_failure",
            Section::Finally => "finally",
        }
    }

    /// Whether a failing step of this list leaves the run's status as it is
    /// (and its steps may read any step of `steps`, and `error`).
    pub fn is_after(self) -> bool {
        self != Section::Steps
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub id: Spanned<String>,
    pub name: Option<String>,
    pub action: Spanned<String>,
    pub with: Option<Node>,
    pub needs: Needs,
    pub when: Option<Node>,
    pub for_each: Option<Node>,
    pub concurrency: Option<Spanned<u32>>,
    pub retry: Option<RetryPolicies>,
    pub timeout: Option<Spanned<Duration>>,
    /// `timeout` as a template that gives a duration at run time (DSL.md B3).
    pub timeout_from: Option<Node>,
    pub repeat: Option<Repeat>,
    pub compensate: Option<Compensate>,
    pub on_error: OnError,
    pub section: Section,
    /// Where the step's mapping starts.
    pub span: Span,
}

/// `repeat:` (DSL.md B2): the action is called round after round until
/// `until` holds, at most `max` rounds, `every` apart.
#[derive(Debug, Clone)]
pub struct Repeat {
    /// A template over `output` (this round's) and `iteration`.
    pub until: Node,
    pub every: Option<Spanned<Duration>>,
    /// `every` as a template that gives a duration at run time.
    pub every_from: Option<Node>,
    pub max: Spanned<u32>,
    pub span: Span,
}

/// What a step waits for before it starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Needs {
    /// `needs:` absent: the previous step in the same list, if any.
    Previous(Option<String>),
    /// `needs:` written out (possibly `[]`).
    Explicit(Vec<Spanned<String>>),
}

impl Needs {
    pub fn ids(&self) -> Vec<&str> {
        match self {
            Needs::Previous(p) => p.iter().map(String::as_str).collect(),
            Needs::Explicit(list) => list.iter().map(|s| s.value.as_str()).collect(),
        }
    }
}

/// What a step's failure does to the run (DSL.md A2).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum OnError {
    /// The run rolls back.
    #[default]
    Fail,
    /// The step is `failed` and the run goes on, whatever the code.
    Continue,
    /// The run goes on for these codes, and rolls back for any other.
    ContinueOn(Vec<Spanned<String>>),
    /// The run is paused for an operator (retry, skip, abort), whatever the code (DSL.md C1).
    Pause,
    /// The run is paused for these codes, and rolls back for any other.
    PauseOn(Vec<Spanned<String>>),
}

impl OnError {
    /// Whether a failure with this code lets the run go on.
    pub fn continues(&self, code: &str) -> bool {
        match self {
            OnError::Fail => false,
            OnError::Continue => true,
            OnError::ContinueOn(codes) => codes.iter().any(|c| c.value == code),
            OnError::Pause | OnError::PauseOn(_) => false,
        }
    }

    /// Whether a failure with this code pauses the run for an operator.
    pub fn pauses(&self, code: &str) -> bool {
        match self {
            OnError::Pause => true,
            OnError::PauseOn(codes) => codes.iter().any(|c| c.value == code),
            _ => false,
        }
    }

    /// The codes it names (`{continue: [...]}` or `{pause: [...]}`).
    pub fn codes(&self) -> &[Spanned<String>] {
        match self {
            OnError::ContinueOn(codes) | OnError::PauseOn(codes) => codes,
            _ => &[],
        }
    }

    /// Whether some failure of the step rolls the run back.
    pub fn may_roll_back(&self) -> bool {
        !matches!(self, OnError::Continue)
    }
}

#[derive(Debug, Clone)]
pub struct Compensate {
    pub action: Spanned<String>,
    pub with: Option<Node>,
    pub retry: Option<RetryPolicies>,
    pub timeout: Option<Spanned<Duration>>,
    /// Also undo the step when it failed after an attempt started (its outcome
    /// is unknown: the work may have been done). DSL.md A1.
    pub also_when_failed: bool,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backoff {
    Fixed,
    #[default]
    Exponential,
}

/// A retry policy with the language's defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub delay: Duration,
    pub multiplier: f64,
    pub max_delay: Option<Spanned<Duration>>,
    /// `delay` and `max_delay` as templates that give durations at run time
    /// (DSL.md B3); the engine fills them in before the policy is used.
    pub delay_from: Option<Node>,
    pub max_delay_from: Option<Node>,
    pub jitter: bool,
    /// No attempt starts after this long from the first (DSL.md A4).
    pub max_duration: Option<Spanned<Duration>>,
    /// `None`: every retryable code. Named codes are retried even when not by
    /// default; `any`: every code but `cancelled`.
    pub on: Option<Vec<Spanned<String>>>,
    pub span: Span,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            max_attempts: 1,
            backoff: Backoff::Exponential,
            delay: Duration(100),
            multiplier: 2.0,
            max_delay: None,
            delay_from: None,
            max_delay_from: None,
            jitter: false,
            max_duration: None,
            on: None,
            span: Span::default(),
        }
    }
}

impl Retry {
    /// The wait before attempt `attempt + 1` (attempt counts from 1), without jitter.
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let base = self.delay.millis();
        let ms = match self.backoff {
            Backoff::Fixed => base.min(super::duration::MAX_MILLIS),
            Backoff::Exponential => {
                crate::base::backoff::exponential(base, self.multiplier, attempt, super::duration::MAX_MILLIS)
            }
        };
        Duration(self.max_delay.as_ref().map_or(ms, |cap| ms.min(cap.value.millis())))
    }

    /// The sum of all waits between attempts. Once the waits stop growing
    /// (capped), the rest are counted at once rather than one by one.
    pub fn total_wait(&self) -> Duration {
        let mut total = 0u64;
        let mut last = None;
        for attempt in 1..self.max_attempts {
            let wait = self.wait_after(attempt).millis();
            if last == Some(wait) {
                let rest = u64::from(self.max_attempts - attempt);
                return Duration(total.saturating_add(wait.saturating_mul(rest)));
            }
            total = total.saturating_add(wait);
            last = Some(wait);
        }
        Duration(total)
    }

    /// Whether this policy retries a failure with `code`: the retryable codes
    /// when it names none; else the codes it names (`any`: all but `cancelled`).
    pub fn handles(&self, code: &crate::base::error::ErrorCode) -> bool {
        match &self.on {
            None => code.is_retryable(),
            Some(codes) => codes.iter().any(|c| {
                *code == c.value.as_str() || (c.value == "any" && *code != crate::base::error::ErrorCode::Cancelled)
            }),
        }
    }
}

/// A step's retry policies (DSL.md A4): an error is handled by the first whose
/// `on` holds its code; an error none holds is not retried. Each counts the
/// attempts that failed with an error it handled.
#[derive(Debug, Clone)]
pub struct RetryPolicies(pub Vec<Retry>);

impl Default for RetryPolicies {
    fn default() -> Self {
        RetryPolicies(vec![Retry::default()])
    }
}

impl RetryPolicies {
    /// The policy that handles a failure with `code`, and its place.
    pub fn handling(&self, code: &crate::base::error::ErrorCode) -> Option<(usize, &Retry)> {
        self.0.iter().enumerate().find(|(_, p)| p.handles(code))
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Retry> {
        self.0.iter()
    }

    /// The first policy (all a single `retry:` mapping is).
    pub fn first(&self) -> Retry {
        self.0.first().cloned().unwrap_or_default()
    }
}
