//! `explore`: every failure point of a workflow, run before deploy.
//!
//! The workflow runs once on a fresh sandbox (the happy path), then once more
//! per failure point, each on a fresh sandbox of its own, some at once:
//!
//! | point | injected | a clean workflow ends |
//! |-------|----------|-----------------------|
//! | `STEP` | every attempt of the step fails with `failed` | `failed` or `compensated`, nothing leaked (`succeeded` if the step has `on_error: continue`) |
//! | `STEP answer lost` | for a step whose action changes something: the action runs (the effect happens), then every attempt's answer is lost (`timeout`) | `failed` or `compensated`, nothing leaked: a step whose outcome is unknown must be undone (`compensate.also_when_failed`) |
//! | `STEP.compensate` | a later step fails for good, and the compensation's first attempt fails with `unavailable` | `compensated` (its retry saves it), nothing leaked |
//! | `crash after STEP` | the process "crashes" after the step's action did its effect, before the checkpoint; a new engine resumes | as the happy path, with the same records in the sandbox (no double effect) |
//!
//! Waits are answered and time skips ahead when a run only waits on timers
//! ([`harness`]), so a flow that waits for a person explores in milliseconds. Services run on the sandbox, which writes
//! through (as a remote service would), so a crash does not take back an effect.

pub(crate) mod harness;
pub(crate) mod holdings;
pub(crate) mod scratch;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value as Json;

use crate::base::clock::VirtualClock;
use crate::config::{Backends, Config, ConfigError};
use crate::dsl::model::Section;
use crate::engine::compiled::CompiledWorkflow;
use crate::engine::driver::{Engine, EngineOptions, NewRun};
use crate::engine::library::Library;
use crate::engine::record::RunRecord;
use crate::engine::ReplayError;
use crate::journal::entry::Entry;
use crate::journal::injection::Injection;
use crate::services::sandbox::{SandboxError, Seed};
use crate::store::faulty::{FailRule, Faulty};
use crate::store::{Store, StoreError, StoreErrorKind};
use holdings::{counts, holdings, leaks};
pub(crate) use scratch::Scratch;

/// Why a workflow could not be run in the simulated world (a problem of this
/// machine or of the engine, not a finding about the workflow).
#[derive(Debug)]
pub enum ExploreError {
    /// A temporary folder for a run's store could not be made.
    TempDir(std::io::Error),
    Store(StoreError),
    Sandbox(SandboxError),
    Config(ConfigError),
    /// A run could not be read back to resume it.
    Replay(ReplayError),
    /// The run did not end after a new engine resumed it.
    NotEnded(String),
    /// A run's task stopped before it ended (it panicked, or the runtime shut down).
    Stopped(tokio::task::JoinError),
}

impl std::fmt::Display for ExploreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExploreError::TempDir(e) => write!(f, "cannot make a temporary folder: {e}"),
            ExploreError::Store(e) => f.write_str(&e.message),
            ExploreError::Sandbox(e) => e.fmt(f),
            ExploreError::Config(e) => f.write_str(&e.0),
            ExploreError::Replay(e) => e.fmt(f),
            ExploreError::NotEnded(run_id) => write!(f, "run {run_id} did not end after its resume"),
            ExploreError::Stopped(e) => write!(f, "a run stopped: {e}"),
        }
    }
}

impl std::error::Error for ExploreError {}

macro_rules! explore_error_from {
    ($($from:ty => $variant:ident),*) => {$(
        impl From<$from> for ExploreError {
            fn from(e: $from) -> Self {
                ExploreError::$variant(e)
            }
        }
    )*};
}

explore_error_from!(
    StoreError => Store,
    SandboxError => Sandbox,
    ConfigError => Config,
    ReplayError => Replay,
    tokio::task::JoinError => Stopped
);

impl From<ExploreError> for String {
    fn from(e: ExploreError) -> Self {
        e.to_string()
    }
}

/// Points explored at once.
const AT_ONCE: usize = 4;

/// One failure point and what came of it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    pub point: String,
    pub status: String,
    /// Compensations that ran, in order (`step` or `step[item]`).
    pub compensations: Vec<String>,
    /// What the sandbox still holds that the run changed.
    pub leaks: Vec<String>,
    /// What is wrong here; empty when the point is clean.
    pub problems: Vec<String>,
    /// Why a point was not run (the happy path never reaches it), if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_reached: Option<String>,
}

/// What a point does to the run.
#[derive(Clone)]
enum Plan {
    Happy,
    Fail(Injection),
    Compensation { trigger: Injection, compensation: Injection },
    Crash(String),
}

/// What every run of an exploration or a test stands on: the sandbox's seed,
/// and the workflows its `workflow.run` steps start children of (children run
/// on the same fresh sandbox as their parent).
#[derive(Clone)]
pub(crate) struct Ground {
    pub seed: Seed,
    pub library: Arc<dyn crate::engine::library::Library>,
    /// The config every command reads (`sagaflow.toml` or `--config`): its
    /// templates, HTTP allow-list and services back the runs.
    pub config: Arc<Config>,
    /// Where each run's fresh store is made.
    pub scratch: Scratch,
}

/// Explores a workflow with one input. `crash`: add the crash points.
pub(crate) async fn explore(
    wf: Arc<CompiledWorkflow>,
    input: Json,
    ground: Ground,
    crash: bool,
) -> Result<Vec<Point>, ExploreError> {
    let happy = run(&wf, &input, &ground, &Plan::Happy).await?;
    let mut points = vec![judge(&wf, "(none: the happy path)", &Plan::Happy, &happy, &happy)];
    let jobs = plans(&wf, &happy, crash, ground.library.as_ref()).into_iter().map(|(name, plan)| {
        let (wf, input, ground, baseline) = (wf.clone(), input.clone(), ground.clone(), happy.clone());
        async move {
            match plan {
                Err(why) => Ok::<_, ExploreError>(not_reached(&name, &why)),
                Ok(plan) => {
                    let outcome = run(&wf, &input, &ground, &plan).await?;
                    Ok(judge(&wf, &name, &plan, &outcome, &baseline))
                }
            }
        }
    });
    points.extend(at_once(jobs.collect(), AT_ONCE).await?);
    Ok(points)
}

/// Runs the jobs, each a task of its own, at most `n` at once, and gives their
/// results in the jobs' order; the first error (in that order) ends it.
pub(crate) async fn at_once<T, E, F>(jobs: Vec<F>, n: usize) -> Result<Vec<T>, E>
where
    T: Send + 'static,
    E: From<tokio::task::JoinError> + Send + 'static,
    F: std::future::Future<Output = Result<T, E>> + Send + 'static,
{
    use futures_util::{StreamExt, TryStreamExt};
    let spawned = futures_util::stream::iter(jobs).map(|job| async move { tokio::spawn(job).await? });
    spawned.buffered(n.max(1)).try_collect().await
}

fn not_reached(name: &str, why: &str) -> Point {
    Point {
        point: name.to_owned(),
        status: "-".into(),
        compensations: Vec::new(),
        leaks: Vec::new(),
        problems: Vec::new(),
        not_reached: Some(why.to_owned()),
    }
}

fn injection(step: &str, compensate: bool, code: &str, times: Option<u32>) -> Injection {
    Injection { step: step.to_owned(), compensate, code: code.to_owned(), times }
}

/// Every point of the workflow, in file order: the step, its compensation,
/// then (with `crash`) a crash after it; and inside each child run a step
/// starts, the child's points, named by their path (`pay/charge`). `Err`: the
/// happy path never gets there.
fn plans(
    wf: &CompiledWorkflow,
    happy: &RunEnd,
    crash: bool,
    library: &dyn Library,
) -> Vec<(String, Result<Plan, String>)> {
    let mut out = Vec::new();
    let top = Within { wf, record: &happy.record, prefix: String::new(), outer: None };
    top.points(happy, crash, library, &mut out);
    out
}

/// A run's workflow as explored: the top run, or a child run reached through
/// the steps in `prefix` (`pay/`), whose compensations a failure of `outer`
/// (a later step of the parent) sets off when none of its own can.
struct Within<'a> {
    wf: &'a CompiledWorkflow,
    record: &'a RunRecord,
    prefix: String,
    outer: Option<String>,
}

impl Within<'_> {
    fn ran(&self, id: &str) -> bool {
        self.record.steps.iter().any(|s| s.id == id && s.status == "succeeded")
    }

    fn points(
        &self,
        happy: &RunEnd,
        crash: bool,
        library: &dyn Library,
        out: &mut Vec<(String, Result<Plan, String>)>,
    ) {
        let wf = self.wf;
        for (i, step) in wf.steps.iter().enumerate().filter(|(_, s)| s.section == Section::Steps) {
            let path = format!("{}{}", self.prefix, step.id);
            let ran = self.ran(&step.id);
            let reached = || if ran { Ok(()) } else { Err("the happy path does not run this step".to_owned()) };
            out.push((path.clone(), reached().map(|()| Plan::Fail(injection(&path, false, "failed", None)))));
            if has_effect(step) {
                let lost = injection(&path, false, crate::journal::injection::LOST, None);
                out.push((format!("{path} answer lost"), reached().map(|()| Plan::Fail(lost))));
            }
            // A later step of its own that fails for good rolls it back; else the parent's.
            let trigger = wf.steps[i + 1..]
                .iter()
                .rfind(|t| t.section == Section::Steps && !t.on_error.continues("failed") && self.ran(&t.id))
                .map(|t| format!("{}{}", self.prefix, t.id))
                .or_else(|| self.outer.clone());
            // A child's undoing is the child's own compensations: their points are inside it.
            let undo_child =
                step.compensate.as_ref().is_some_and(|c| c.kind == crate::engine::compiled::StepKind::UndoChild);
            if step.compensate.is_some() && !undo_child {
                let plan = match (reached(), &trigger) {
                    (Err(e), _) => Err(e),
                    (Ok(()), None) => Err("no later step can fail and roll the run back".to_owned()),
                    (Ok(()), Some(t)) => Ok(Plan::Compensation {
                        trigger: injection(t, false, "failed", None),
                        compensation: injection(&path, true, "unavailable", Some(1)),
                    }),
                };
                out.push((format!("{path}.compensate"), plan));
            }
            if crash && self.prefix.is_empty() {
                out.push((format!("crash after {path}"), reached().map(|()| Plan::Crash(step.id.clone()))));
            }
            let child = step.child_workflow().and_then(|name| library.active(&name).ok());
            let child_record = happy.children.get(&path);
            if let (Some(child), Some(record), true) = (child, child_record, ran) {
                let inner = Within { wf: &child, record, prefix: format!("{path}/"), outer: trigger };
                inner.points(happy, crash, library, out);
            }
        }
    }
}

/// Whether a step calls an action that changes something: its answer can be
/// lost after the change was made.
fn has_effect(step: &crate::engine::compiled::CompiledStep) -> bool {
    let registry = crate::config::registry::builtin();
    step.kind == crate::engine::compiled::StepKind::Call
        && registry.get(&step.action).is_some_and(|r| r.spec.effect != crate::actions::Effect::Read)
}

/// A run's end and the sandbox around it.
#[derive(Clone)]
pub(crate) struct RunEnd {
    pub record: RunRecord,
    /// The sandbox's state (`Sandbox::show`) before and after the run.
    pub before: Json,
    pub after: Json,
    /// The records of the child runs its steps started, by the step's path (`pay`, `pay/inner`).
    pub children: BTreeMap<String, RunRecord>,
}

/// One run in a simulated world: failures injected, waits answered (with the
/// data given for the event type, else `{}`), time skipped while it waits on
/// timers alone ([`harness`]), and perhaps a crash.
#[derive(Default, Clone)]
pub(crate) struct Scenario {
    pub inject: Vec<Injection>,
    pub halt_after: Option<String>,
    pub answers: BTreeMap<String, Json>,
}

fn scenario(plan: &Plan) -> Scenario {
    let inject = match plan {
        Plan::Happy | Plan::Crash(_) => Vec::new(),
        Plan::Fail(i) => vec![i.clone()],
        Plan::Compensation { trigger, compensation } => vec![trigger.clone(), compensation.clone()],
    };
    let halt_after = match plan {
        Plan::Crash(step) => Some(step.clone()),
        _ => None,
    };
    Scenario { inject, halt_after, answers: BTreeMap::new() }
}

async fn run(wf: &Arc<CompiledWorkflow>, input: &Json, ground: &Ground, plan: &Plan) -> Result<RunEnd, ExploreError> {
    run_once(wf, input, ground, scenario(plan)).await
}

/// Runs the workflow once on a fresh sandbox and store (a temporary folder).
pub(crate) async fn run_once(
    wf: &Arc<CompiledWorkflow>,
    input: &Json,
    ground: &Ground,
    s: Scenario,
) -> Result<RunEnd, ExploreError> {
    // Dropped last, when the run's engines are gone: its folder or database goes with it.
    let scratch = ground.scratch.open(&ground.seed)?;
    let (store, sandbox) = (scratch.store.clone(), scratch.sandbox.clone());
    let backends = Backends::on(&ground.config, sandbox.clone())?;
    let before = sandbox.show(None)?;
    let world = harness::World { answers: s.answers, clock: Some(VirtualClock::default()) };
    let options = || EngineOptions {
        clock: Arc::new(world.clock.clone().unwrap_or_default()),
        library: ground.library.clone(),
        ..EngineOptions::default()
    };
    // The crash: the commit that holds the end of the step's attempt never reaches the disk.
    let crashing: Arc<dyn Store> = match s.halt_after.as_deref().and_then(|id| wf.position(id)) {
        Some(step) => Arc::new(Faulty::new(store.clone(), crash_after(step))),
        None => store.clone(),
    };
    let engine = Engine::start(crashing, backends.registry.clone(), options());
    let seen = engine.transitions();
    let new = NewRun { inject: s.inject, ..NewRun::of(wf.clone(), input.clone()) };
    let run_id = engine.start_new(new).await?.run_id;
    let record = match harness::follow(&engine, &run_id, &world, seen).await {
        Some(record) => record,
        None => {
            // The crash: a new engine (in PostgreSQL, a new worker) resumes the run.
            drop(engine);
            let store = scratch.after_crash()?;
            let engine = Engine::start(store.clone(), backends.registry.clone(), options());
            let seen = engine.transitions();
            let resumed = crate::engine::resume_unfinished(&engine, store.as_ref(), &backends.registry).await?;
            if !resumed.contains(&run_id) {
                return Err(ExploreError::NotEnded(run_id));
            }
            harness::follow(&engine, &run_id, &world, seen)
                .await
                .ok_or_else(|| ExploreError::NotEnded(run_id.clone()))?
        }
    };
    let mut children = BTreeMap::new();
    child_records(store.as_ref(), &backends.registry, &record, "", &mut children);
    Ok(RunEnd { record, before, after: sandbox.show(None)?, children })
}

/// The records of the child runs a run's steps started, read back from the store, by step path.
fn child_records(
    store: &dyn Store,
    registry: &crate::actions::Registry,
    record: &RunRecord,
    prefix: &str,
    out: &mut BTreeMap<String, RunRecord>,
) {
    let mut versions = crate::engine::Versions::default();
    for step in &record.steps {
        let Some(child) = &step.child_run else { continue };
        let Ok(state) = crate::engine::replay(store, &mut versions, child, registry) else { continue };
        let child_record = RunRecord::of(&state);
        let path = format!("{prefix}{}", step.id);
        child_records(store, registry, &child_record, &format!("{path}/"), out);
        out.insert(path, child_record);
    }
}

/// Fails the commit that holds the end of an attempt of `step` of the top
/// run (the first to start), as a crash after the action's effect and before
/// its checkpoint would.
fn crash_after(step: usize) -> FailRule {
    let top = std::sync::Mutex::new(None::<String>);
    Box::new(move |commit: &crate::store::Commit| {
        let mut top = top.lock().unwrap_or_else(|p| p.into_inner());
        if top.is_none() {
            *top =
                commit.entries.iter().find(|(_, _, e)| matches!(e, Entry::RunStarted { .. })).map(|(r, ..)| r.clone());
        }
        let ends = commit.entries.iter().any(|(run, _, e)| {
            Some(run) == top.as_ref() && matches!(e, Entry::AttemptFinished { step: s, .. } if *s == step)
        });
        ends.then(|| StoreError::new(StoreErrorKind::Broken, "a crash simulated here (--crash)"))
    })
}

/// The compensations of a run, in the order they ran: `step` or `step[item]`.
pub(crate) fn compensations(record: &RunRecord) -> Vec<String> {
    record
        .compensations
        .iter()
        .map(|c| match c.item {
            Some(i) => format!("{}[{i}]", c.step),
            None => c.step.clone(),
        })
        .collect()
}

/// What a point's outcome says, against the happy path's.
fn judge(wf: &CompiledWorkflow, name: &str, plan: &Plan, got: &RunEnd, happy: &RunEnd) -> Point {
    let status = got.record.status.to_string();
    let mut problems = Vec::new();
    let mut leaked = Vec::new();
    match plan {
        Plan::Happy if status != "succeeded" => problems.push(format!("the happy path ends `{status}`")),
        Plan::Happy => {}
        Plan::Crash(_) => {
            if happy.record.status != status.as_str() {
                problems.push(format!("ends `{status}`, not `{}` as without the crash", happy.record.status));
            }
            let (want, have) = (counts(&happy.after), counts(&got.after));
            for (kind, n) in &have {
                let expected = want.get(kind).copied().unwrap_or(0);
                if *n != expected {
                    problems.push(format!("double effect: {n} {kind} records, {expected} without the crash"));
                }
            }
        }
        Plan::Fail(i) | Plan::Compensation { trigger: i, .. } => {
            let code = i.error().code;
            let tolerated = wf.position(&i.step).is_some_and(|p| wf.steps[p].on_error.continues(code.as_str()));
            let allowed: &[&str] = match (plan, tolerated) {
                (Plan::Compensation { .. }, _) => &["compensated"],
                (_, true) => &["succeeded"],
                _ => &["failed", "compensated"],
            };
            if !allowed.contains(&status.as_str()) {
                problems.push(format!("ends `{status}`; a clean flow ends {}", allowed.join(" or ")));
            }
            if status != "succeeded" {
                leaked = leaks(&holdings(&got.before), &holdings(&got.after));
                problems.extend(leaked.iter().map(|l| format!("leak: {l}")));
            }
        }
    }
    Point {
        point: name.to_owned(),
        status,
        compensations: compensations(&got.record),
        leaks: leaked,
        problems,
        not_reached: None,
    }
}

/// Counts of points by outcome, for the summary line.
pub(crate) fn summary(points: &[Point]) -> BTreeMap<&'static str, usize> {
    let mut out = BTreeMap::new();
    for p in points {
        let key = match (&p.not_reached, p.problems.is_empty()) {
            (Some(_), _) => "not reached",
            (None, true) => "clean",
            (None, false) => "with problems",
        };
        *out.entry(key).or_insert(0) += 1;
    }
    out
}
