//! Scenario and replay tests of the run state machine, with no driver: a
//! simulator answers each attempt from a script and moves a virtual clock.

use std::sync::Arc;

use serde_json::{json, Value as Json};

use super::compiled::CompiledWorkflow;
use super::machine::{Decide, Phase, RunState};
use super::record::RunRecord;
use super::wanted::Start;
use crate::journal::entry::{ActionError, Entry, Item, Outcome};

pub(super) fn compile(yaml: &str) -> Arc<CompiledWorkflow> {
    match CompiledWorkflow::compile(std::path::Path::new("t.yaml"), yaml, crate::config::registry::builtin()) {
        Ok(wf) => wf,
        Err(e) => panic!("does not compile: {:?}", e.0.diagnostics),
    }
}

/// Runs a workflow to its end the way the driver does, from what the machine
/// says ([`RunState::running`], [`RunState::start`]): an attempt that fails at
/// once fails, a sleep waits for its timer, and `answer(step id, item,
/// attempt)` decides each call, wait and emit (compensations are asked as
/// `"undo <id>"`). Time moves to the next timer when nothing else can.
pub(super) fn simulate(
    yaml: &str,
    input: Json,
    mut answer: impl FnMut(&str, Item, u32) -> Outcome,
) -> (RunState, Vec<Entry>) {
    let wf = compile(yaml);
    let mut state = RunState::new("run-1", wf.clone());
    let mut journal = Vec::new();
    let mut now = 1_000u64;
    let push = |state: &mut RunState, journal: &mut Vec<Entry>, e: Entry| {
        state.apply(&e);
        journal.push(e);
    };
    push(
        &mut state,
        &mut journal,
        Entry::RunStarted {
            workflow: wf.name.clone(),
            hash: wf.hash.clone(),
            input,
            at: now,
            deadline: wf.timeout_ms.map(|t| now + t),
            inject: Vec::new(),
            parent: None,
            rerun_of: None,
            trace: None,
        },
    );
    let mut random = || 0.5;
    for _ in 0..10_000 {
        let decided = state.decide(&mut Decide { now, random: &mut random });
        if !decided.is_empty() {
            for e in decided {
                push(&mut state, &mut journal, e);
            }
            continue;
        }
        if state.phase == Phase::Done {
            break;
        }
        let answered = state.running().into_iter().find_map(|key| {
            let asked = if key.compensation {
                format!("undo {}", wf.steps[key.step].id)
            } else {
                wf.steps[key.step].id.clone()
            };
            match state.start(key) {
                Start::Fail(e) => Some((key, Outcome::Err(e))),
                Start::Sleep => None,
                Start::Wait { .. }
                | Start::Emit { .. }
                | Start::Call(_)
                | Start::Child(_)
                | Start::UndoChild { .. } => Some((key, answer(&asked, key.item, key.attempt))),
            }
        });
        if let Some((key, outcome)) = answered {
            push(&mut state, &mut journal, key.finished(outcome, now));
            continue;
        }
        let Some((due, entry)) = state.timers().into_iter().min_by_key(|(due, _)| *due) else {
            panic!("the run is stuck: {:?}", RunRecord::of(&state));
        };
        now = now.max(due);
        push(&mut state, &mut journal, entry);
    }
    (state, journal)
}

pub(super) fn ok(v: Json) -> Outcome {
    Outcome::Ok(v)
}

pub(super) fn err(code: &str) -> Outcome {
    Outcome::Err(ActionError::new(code, "scripted failure"))
}

/// The entry kinds and what they name, without times.
pub(super) fn shape(entries: &[Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| match e {
            Entry::AttemptStarted { step, item, attempt, .. } => format!("start {step} {item:?} #{attempt}"),
            Entry::AttemptFinished { step, item, attempt, outcome, .. } => {
                format!("end {step} {item:?} #{attempt} {}", matches!(outcome, Outcome::Ok(_)))
            }
            Entry::RetryScheduled { step, item, .. } => format!("retry {step} {item:?}"),
            Entry::CompensationStarted { step, item, attempt, .. } => format!("undo {step} {item:?} #{attempt}"),
            Entry::RunFinished { status, .. } => format!("finished {status}"),
            other => {
                serde_json::to_value(other).ok().and_then(|v| v["type"].as_str().map(str::to_owned)).unwrap_or_default()
            }
        })
        .collect()
}

const SAGA: &str = "name: saga
steps:
  - id: reserve
    action: mock
    retry: { max_attempts: 3, delay: 100ms }
    compensate: { action: mock }
  - id: charge
    action: mock
    compensate: { action: mock, retry: { max_attempts: 2, delay: 50ms } }
  - id: ship
    action: mock
on_failure:
  - id: tell
    action: mock
    with: { output: '{{error.code}}' }
";

#[test]
fn a_failure_compensates_in_reverse_then_runs_on_failure() {
    let (state, journal) = simulate(SAGA, json!({}), |step, _, attempt| match (step, attempt) {
        ("reserve", 1) => err("unavailable"),
        ("ship", _) => err("conflict"),
        ("undo charge", 1) => err("timeout"),
        _ => ok(json!(step)),
    });
    let r = RunRecord::of(&state);
    assert_eq!(r.status, "compensated");
    assert_eq!(
        r.compensations.iter().map(|c| (c.step.as_str(), c.attempts)).collect::<Vec<_>>(),
        vec![("charge", 2), ("reserve", 1)]
    );
    assert_eq!(r.steps[0].attempts, 2);
    assert_eq!(state.attempt_input(3, None), Ok(json!({"output": "conflict"})), "on_failure reads `error`");
    assert_eq!(
        shape(&journal),
        vec![
            "run_started",
            "start 0 None #1",
            "end 0 None #1 false",
            "retry 0 None",
            "retry_due",
            "start 0 None #2",
            "end 0 None #2 true",
            "start 1 None #1",
            "end 1 None #1 true",
            "start 2 None #1",
            "end 2 None #1 false",
            "undo 1 None #1",
            "compensation_finished",
            "compensation_retry_scheduled",
            "compensation_retry_due",
            "undo 1 None #2",
            "compensation_finished",
            "undo 0 None #1",
            "compensation_finished",
            "start 3 None #1",
            "end 3 None #1 true",
            "finished compensated",
        ]
    );
}

#[test]
fn replaying_a_journal_whole_or_entry_by_entry_gives_the_same_run() {
    let (lived, journal) = simulate(SAGA, json!({}), |step, _, attempt| match (step, attempt) {
        ("reserve", 1) | ("undo charge", 1) => err("unavailable"),
        ("ship", _) => err("conflict"),
        _ => ok(json!(step)),
    });
    let wf = lived.wf.clone();
    let whole = RunState::replayed("run-1", wf.clone(), &journal);
    assert_eq!(RunRecord::of(&whole), RunRecord::of(&lived));
    let mut random = || 0.5;
    // Each decision in the journal is what `decide` says on the prefix before it.
    let mut prefix = RunState::new("run-1", wf);
    for (i, e) in journal.iter().enumerate() {
        let decided = prefix.decide(&mut Decide { now: 0, random: &mut random });
        let is_decision = matches!(
            e,
            Entry::AttemptStarted { .. }
                | Entry::RetryScheduled { .. }
                | Entry::CompensationStarted { .. }
                | Entry::RunFinished { .. }
        );
        if is_decision {
            assert_eq!(shape(&decided[..1]), shape(std::slice::from_ref(e)), "entry {i}");
        }
        prefix.apply(e);
    }
    assert!(prefix.decide(&mut Decide { now: 0, random: &mut random }).is_empty());
}

#[test]
fn for_each_items_are_bounded_by_concurrency_and_compensated_per_item() {
    let yaml = "name: fe
steps:
  - id: each
    action: mock
    for_each: '{{input.items}}'
    concurrency: 2
    with: { output: '{{item}}' }
    compensate: { action: mock }
  - id: boom
    action: mock
";
    let wf = compile(yaml);
    let mut state = RunState::new("r", wf.clone());
    state.apply(&Entry::RunStarted {
        workflow: "fe".into(),
        hash: wf.hash.clone(),
        input: json!({"items": [1, 2, 3]}),
        at: 0,
        deadline: None,
        inject: Vec::new(),
        parent: None,
        rerun_of: None,
        trace: None,
    });
    let mut random = || 0.5;
    let mut d = Decide { now: 0, random: &mut random };
    let items = state.decide(&mut d);
    assert_eq!(shape(&items), vec!["step_items"]);
    state.apply(&items[0]);
    let started = state.decide(&mut d);
    assert_eq!(shape(&started), vec!["start 0 Some(0) #1", "start 0 Some(1) #1"], "two at a time");
    for e in &started {
        state.apply(e);
    }
    assert!(state.decide(&mut d).is_empty(), "the third waits for a free slot");
    state.apply(&Entry::AttemptFinished { step: 0, item: Some(1), attempt: 1, outcome: ok(json!(2)), at: 1 });
    assert_eq!(shape(&state.decide(&mut d)), vec!["start 0 Some(2) #1"]);
    let (state, _) =
        simulate(
            yaml,
            json!({"items": [1, 2, 3]}),
            |step, _, _| if step == "boom" { err("failed") } else { ok(json!(1)) },
        );
    let r = RunRecord::of(&state);
    assert_eq!(r.status, "compensated");
    assert_eq!(r.compensations.iter().map(|c| c.item).collect::<Vec<_>>(), vec![Some(2), Some(1), Some(0)]);
}

#[test]
fn a_when_that_renders_false_skips_and_a_for_each_of_text_fails() {
    let (state, _) = simulate(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    when: '{{input.go}}'\n  - id: b\n    action: mock\n",
        json!({"go": 0}),
        |_, _, _| ok(json!(null)),
    );
    assert_eq!(
        RunRecord::of(&state).steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>(),
        vec!["skipped", "succeeded"]
    );
    let (state, _) = simulate(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    for_each: '{{input.items}}'\n",
        json!({"items": "not a list"}),
        |_, _, _| ok(json!(null)),
    );
    let r = RunRecord::of(&state);
    assert_eq!(r.status, "failed");
    assert_eq!(r.error.map(|e| e.code.to_string()), Some("template".to_owned()));
}

#[test]
fn the_run_deadline_rolls_back_what_succeeded() {
    let (state, _) = simulate(
        "name: w\ntimeout: 1s\nsteps:\n  - id: a\n    action: mock\n    compensate: { action: mock }\n  - id: b\n    action: mock\n    retry: { max_attempts: 100, delay: 400ms, backoff: fixed }\n",
        json!({}),
        |step, _, _| if step == "b" { err("unavailable") } else { ok(json!(1)) },
    );
    let r = RunRecord::of(&state);
    assert_eq!((r.status.as_str(), r.error.map(|e| e.code.to_string())), ("compensated", Some("timeout".to_owned())));
    assert_eq!(r.steps[1].attempts, 3, "attempts at 0, 400 and 800 ms; the deadline comes at 1 s");
}

#[test]
fn backoff_waits_grow_by_the_multiplier_up_to_max_delay_with_jitter_in_range() {
    let yaml = "name: b\nsteps:\n  - id: a\n    action: mock\n    retry: { max_attempts: 6, delay: 100ms, multiplier: 3, max_delay: 2s, jitter: JITTER }\n";
    let waits = |jitter: bool, random: f64| {
        let wf = compile(&yaml.replace("JITTER", &jitter.to_string()));
        let mut state = RunState::new("r", wf.clone());
        state.apply(&Entry::RunStarted {
            workflow: "b".into(),
            hash: wf.hash.clone(),
            input: json!({}),
            at: 0,
            deadline: None,
            inject: Vec::new(),
            parent: None,
            rerun_of: None,
            trace: None,
        });
        let mut r = || random;
        let mut out = Vec::new();
        for attempt in 1..=5u32 {
            let mut d = Decide { now: 0, random: &mut r };
            for e in state.decide(&mut d) {
                state.apply(&e);
            }
            state.apply(&Entry::AttemptFinished { step: 0, item: None, attempt, outcome: err("unavailable"), at: 0 });
            let mut d = Decide { now: 0, random: &mut r };
            for e in state.decide(&mut d) {
                if let Entry::RetryScheduled { due, .. } = e {
                    out.push(due);
                }
                state.apply(&e);
            }
            state.apply(&Entry::RetryDue { step: 0, item: None });
        }
        out
    };
    assert_eq!(waits(false, 0.0), vec![100, 300, 900, 2000, 2000], "x3 each time, capped at 2 s");
    assert_eq!(waits(true, 0.0), vec![50, 150, 450, 1000, 1000], "jitter at its low end halves each wait");
    assert_eq!(waits(true, 0.999_999), vec![99, 299, 899, 1999, 1999], "and at its high end keeps it");
    let fixed = compile(
        "name: f\nsteps:\n  - id: a\n    action: mock\n    retry: { max_attempts: 3, backoff: fixed, delay: 250ms }\n",
    );
    assert_eq!(fixed.steps[0].retry.first().wait_after(1).millis(), 250);
    assert_eq!(fixed.steps[0].retry.first().wait_after(2).millis(), 250);
}

#[test]
fn a_cancel_is_taken_only_while_a_forward_step_has_not_ended() {
    use super::machine::CancelRefused;
    let (state, journal) = simulate(SAGA, json!({}), |_, _, _| ok(json!(1)));
    assert_eq!(state.final_status(), "succeeded");
    let last_step_end =
        journal.iter().rposition(|e| matches!(e, Entry::AttemptFinished { step: 2, .. })).expect("ship ended");
    for end in 1..=journal.len() {
        let replayed = RunState::replayed("run-1", state.wf.clone(), &journal[..end]);
        let expected = match end {
            e if e == journal.len() => Err(CancelRefused::Ended(crate::journal::status::RunStatus::Succeeded)),
            e if e > last_step_end => Err(CancelRefused::StepsEnded),
            _ => Ok(()),
        };
        assert_eq!(replayed.cancellable(), expected, "after {:?}", shape(&journal[end - 1..end]));
    }
    let (rolled_back, journal) =
        simulate(SAGA, json!({}), |step, _, _| if step == "ship" { err("conflict") } else { ok(json!(1)) });
    let failed_at =
        journal.iter().position(|e| matches!(e, Entry::AttemptFinished { step: 2, .. })).expect("ship ended");
    let replayed = RunState::replayed("run-1", rolled_back.wf.clone(), &journal[..=failed_at]);
    assert_eq!(replayed.cancellable(), Err(CancelRefused::RollingBack));
}

#[test]
fn only_entries_that_change_the_run_are_taken_from_outside() {
    let (state, journal) = simulate(SAGA, json!({}), |step, _, attempt| match (step, attempt) {
        ("reserve", 1) => err("unavailable"),
        ("ship", _) => err("conflict"),
        _ => ok(json!(1)),
    });
    // Every entry of a real run was taken when it came.
    for end in 1..journal.len() {
        let before = RunState::replayed("run-1", state.wf.clone(), &journal[..end - 1]);
        assert!(before.accepts(&journal[end - 1]), "refused {:?}", shape(&journal[end - 1..end]));
    }
    // After the end, none from outside is.
    let late = [
        Entry::AttemptFinished { step: 0, item: None, attempt: 1, outcome: ok(json!(2)), at: 9 },
        Entry::RetryDue { step: 0, item: None },
        Entry::CompensationFinished { step: 0, item: None, attempt: 1, outcome: ok(json!(2)), at: 9 },
        Entry::CompensationRetryDue { step: 1, item: None },
        Entry::RunTimedOut { at: 9 },
        Entry::CancelRequested { at: 9 },
    ];
    for entry in &late {
        assert!(!state.accepts(entry), "took {:?}", shape(std::slice::from_ref(entry)));
    }
    // A stale end of an earlier attempt is refused while a later one runs.
    let retried = journal.iter().position(|e| matches!(e, Entry::AttemptStarted { step: 0, attempt: 2, .. }));
    let retried = retried.expect("reserve ran twice");
    let during = RunState::replayed("run-1", state.wf.clone(), &journal[..=retried]);
    assert!(!during.accepts(&late[0]), "the end of attempt 1 while attempt 2 runs");
}

/// The name of an entry's kind. The match is exhaustive: a new kind of entry
/// does not compile until it is named here, and then the table test wants it
/// in the table at the top of `machine.rs`.
fn entry_kind(entry: &Entry) -> &'static str {
    match entry {
        Entry::RunStarted { .. } => "RunStarted",
        Entry::InputRejected { .. } => "InputRejected",
        Entry::StepSkipped { .. } => "StepSkipped",
        Entry::StepItems { .. } => "StepItems",
        Entry::StepFailed { .. } => "StepFailed",
        Entry::AttemptStarted { .. } => "AttemptStarted",
        Entry::AttemptFinished { .. } => "AttemptFinished",
        Entry::RetryScheduled { .. } => "RetryScheduled",
        Entry::RetryDue { .. } => "RetryDue",
        Entry::RoundDue { .. } => "RoundDue",
        Entry::OutputFailed { .. } => "OutputFailed",
        Entry::RunTimedOut { .. } => "RunTimedOut",
        Entry::CancelRequested { .. } => "CancelRequested",
        Entry::CompensationStarted { .. } => "CompensationStarted",
        Entry::CompensationFinished { .. } => "CompensationFinished",
        Entry::CompensationRetryScheduled { .. } => "CompensationRetryScheduled",
        Entry::CompensationRetryDue { .. } => "CompensationRetryDue",
        Entry::UndoRequested { .. } => "UndoRequested",
        Entry::Operator { .. } => "Operator",
        Entry::RunFinished { .. } => "RunFinished",
    }
}

#[test]
fn the_transition_table_names_every_kind_of_entry_and_only_those() {
    use std::collections::BTreeSet;
    let e = || ActionError::new("x", "y");
    let every = [
        Entry::RunStarted {
            workflow: String::new(),
            hash: String::new(),
            input: json!({}),
            at: 0,
            deadline: None,
            inject: vec![],
            parent: None,
            rerun_of: None,
            trace: None,
        },
        Entry::InputRejected { error: e(), at: 0 },
        Entry::StepSkipped { step: 0 },
        Entry::StepItems { step: 0, count: 0 },
        Entry::StepFailed { step: 0, error: e() },
        Entry::AttemptStarted { step: 0, item: None, attempt: 1, at: 0 },
        Entry::AttemptFinished { step: 0, item: None, attempt: 1, outcome: ok(json!(1)), at: 0 },
        Entry::RetryScheduled { step: 0, item: None, due: 0 },
        Entry::RetryDue { step: 0, item: None },
        Entry::RoundDue { step: 0, item: None },
        Entry::OutputFailed { error: e() },
        Entry::RunTimedOut { at: 0 },
        Entry::CancelRequested { at: 0 },
        Entry::CompensationStarted { step: 0, item: None, attempt: 1, at: 0 },
        Entry::CompensationFinished { step: 0, item: None, attempt: 1, outcome: ok(json!(1)), at: 0 },
        Entry::CompensationRetryScheduled { step: 0, item: None, due: 0 },
        Entry::CompensationRetryDue { step: 0, item: None },
        Entry::UndoRequested { at: 0 },
        Entry::Operator { action: crate::journal::entry::OperatorAction::Abort, by: "cli".into(), at: 0 },
        Entry::RunFinished { status: crate::journal::status::RunStatus::Succeeded, output: None, at: 0 },
    ];
    let kinds: BTreeSet<&str> = every.iter().map(entry_kind).collect();
    assert_eq!(kinds.len(), every.len(), "each kind once");
    let table = include_str!("machine.rs").lines().filter(|l| l.starts_with("//! |") && !l.contains("---"));
    let mut named = BTreeSet::new();
    for row in table.skip(1) {
        let entry_column = row.split('|').nth(2).unwrap_or_default();
        let words = entry_column.split(|c: char| !c.is_alphanumeric());
        named.extend(words.filter(|w| w.starts_with(|c: char| c.is_ascii_uppercase())).map(str::to_owned));
    }
    let kinds: BTreeSet<String> = kinds.into_iter().map(str::to_owned).collect();
    assert_eq!(named, kinds, "the table at the top of machine.rs and the kinds of entry differ");
}

#[test]
fn the_fold_reads_secrets_it_is_given_never_the_environment() {
    let wf = compile(
        "name: w\nsteps:\n  - id: a\n    action: mock\n    with: { output: \"k={{secrets.PURE_FOLD_TOKEN}}\" }\n",
    );
    let started = run_started(&wf, vec![]);
    let given = Arc::new(std::collections::BTreeMap::from([("PURE_FOLD_TOKEN".to_owned(), "abc1".to_owned())]));
    let state = RunState::replayed_with("r", wf.clone(), std::slice::from_ref(&started), given);
    assert_eq!(state.attempt_input(0, None).ok(), Some(json!({"output": "k=abc1"})));
    // Not given: not read from anywhere else, so the template has nothing to render.
    let bare = RunState::replayed("r", wf, &[started]);
    assert!(bare.attempt_input(0, None).is_err());
}

#[test]
fn the_machine_says_how_each_attempt_runs() {
    use super::wanted::{AttemptKey, Call};
    let wf = compile(
        "name: w
steps:
  - { id: nap, action: sleep, with: { for: 1h }, needs: [] }
  - { id: tell, action: event.emit, with: { type: order.paid, key: o-1, data: { n: 1 } }, needs: [] }
  - { id: charge, action: mock, with: { output: 5 }, timeout: 3s, needs: [], compensate: { action: mock, with: { output: back } } }
  - { id: broken, action: mock, needs: [] }
",
    );
    let inject = vec![crate::journal::injection::Injection {
        step: "broken".into(),
        compensate: false,
        code: "unavailable".into(),
        times: None,
    }];
    let mut state = RunState::replayed("r", wf.clone(), &[run_started(&wf, inject)]);
    let mut random = || 0.5;
    for e in state.decide(&mut Decide { now: 2, random: &mut random }) {
        state.apply(&e);
    }
    let key = |step| AttemptKey { compensation: false, step, item: None, attempt: 1 };
    assert_eq!(state.running(), (0..4).map(key).collect::<Vec<_>>());
    assert_eq!(state.start(key(0)), Start::Sleep);
    let emit = Start::Emit { id: "r:tell".into(), kind: "order.paid".into(), key: "o-1".into(), data: json!({"n": 1}) };
    assert_eq!(state.start(key(1)), emit);
    let call = Call {
        action: "mock".into(),
        input: json!({"output": 5}),
        idempotency_key: "r:charge".into(),
        timeout_ms: Some(3000),
        lost: None,
    };
    assert_eq!(state.start(key(2)), Start::Call(Box::new(call)));
    assert!(matches!(state.start(key(3)), Start::Fail(e) if e.code == "unavailable"));
    let undo = AttemptKey { compensation: true, step: 2, item: None, attempt: 1 };
    assert_eq!(state.idempotency_key(undo), "r:charge:compensate");
    assert!(state.cut_short().is_empty(), "nothing is cut short going forward");
}

/// A run's first entry, at time 1, with no input.
fn run_started(wf: &CompiledWorkflow, inject: Vec<crate::journal::injection::Injection>) -> Entry {
    Entry::RunStarted {
        workflow: wf.name.clone(),
        hash: wf.hash.clone(),
        input: json!({}),
        at: 1,
        deadline: None,
        inject,
        parent: None,
        rerun_of: None,
        trace: None,
    }
}

/// DSL.md A1: a step that failed after an attempt started may have done its
/// work; with `also_when_failed` it is undone, first (it ended last), and its
/// compensation reads the unit as `step`.
#[test]
fn a_failed_step_whose_outcome_is_unknown_is_undone_first_and_reads_itself_as_step() {
    let yaml = "name: unknown
steps:
  - id: hold
    action: mock
    compensate: { action: mock }
  - id: note
    action: mock
    compensate: { action: mock }
    on_error: continue
  - id: charge
    action: mock
    retry: { max_attempts: 2, delay: 1s }
    compensate:
      action: mock
      with: { output: { key: '{{step.key}}', code: '{{step.error.code}}', out: '{{step.output}}', id: '{{step.id}}' } }
      also_when_failed: true
";
    let (state, _) = simulate(yaml, json!({}), |asked, _, _| match asked {
        "charge" => err("timeout"),
        "note" => err("failed"),
        _ => ok(json!({ "done": asked })),
    });
    let r = RunRecord::of(&state);
    assert_eq!(r.status, "compensated");
    let undone: Vec<&str> = r.compensations.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(
        undone,
        ["charge", "hold"],
        "charge failed last, so it is undone first; `note` failed without also_when_failed"
    );
    let input = state.compensation_input(2, None).expect("renders");
    assert_eq!(input, json!({ "output": { "key": "run-1:charge", "code": "timeout", "out": null, "id": "charge" } }));
}

/// Units that end by one entry (the failure and the retries the roll-back cuts
/// short) are undone in the reverse order of their starts; a unit that never
/// started is never undone; one in flight is undone once it ends.
#[test]
fn items_failed_cancelled_and_in_flight_are_undone_in_reverse_order_of_their_ends() {
    let yaml = "name: items
steps:
  - id: pay
    action: mock
    for_each: '{{input.cards}}'
    concurrency: 2
    retry: { max_attempts: 3, delay: 1s }
    compensate: { action: mock, with: { output: '{{step.index}}' }, also_when_failed: true }
  - id: later
    action: mock
    needs: [pay]
    compensate: { action: mock }
";
    let (state, _) = simulate(yaml, json!({ "cards": ["a", "b", "c", "d"] }), |asked, item, _| match (asked, item) {
        ("pay", Some(0)) => err("unavailable"),
        ("pay", Some(1)) => err("card_declined"),
        _ => ok(json!({})),
    });
    let r = RunRecord::of(&state);
    assert_eq!(r.status, "compensated");
    let undone: Vec<(&str, Option<usize>)> = r.compensations.iter().map(|c| (c.step.as_str(), c.item)).collect();
    assert_eq!(undone, [("pay", Some(2)), ("pay", Some(1)), ("pay", Some(0))], "item 3 never started");
    assert_eq!(state.compensation_input(0, Some(1)).expect("renders"), json!({ "output": 1 }));
}

/// A run rejected at its input runs no step at all: not its `on_failure` steps
/// either (they would fail on the fields the input lacks).
#[test]
fn a_run_rejected_at_its_input_runs_no_step_not_even_on_failure_or_finally() {
    let yaml = "name: strict
input: { type: object, required: [order_id] }
steps:
  - id: work
    action: mock
on_failure:
  - id: tell
    action: mock
    with: { output: '{{input.order_id}}' }
finally:
  - id: last
    action: mock
";
    let (state, journal) = simulate(yaml, json!({}), |_, _, _| ok(json!({})));
    let r = RunRecord::of(&state);
    assert_eq!((r.status.as_str(), r.error.map(|e| e.code.to_string())), ("failed", Some("schema".to_owned())));
    assert_eq!(shape(&journal), ["run_started", "input_rejected", "finished failed"]);
    let statuses: Vec<&str> = r.steps.iter().map(|s| s.status.as_str()).collect();
    assert_eq!(statuses, ["pending", "not_run", "not_run"], "after-steps that never ran say so (DSL.md C1)");
}

/// DSL.md C1: an `on_failure` step of a run that did not fail is `not_run`,
/// not `pending`: it never ran and never will.
#[test]
fn on_failure_steps_of_a_run_that_succeeded_are_not_run() {
    let yaml = "name: fine\nsteps:\n  - id: work\n    action: mock\non_failure:\n  - id: tell\n    action: mock\n";
    let (state, _) = simulate(yaml, json!({}), |_, _, _| ok(json!({})));
    let r = RunRecord::of(&state);
    assert_eq!(r.status, crate::journal::status::RunStatus::Succeeded);
    assert_eq!(r.steps[1].status, crate::journal::status::StepStatus::NotRun);
}

/// The step's error is the failure that ended it, not the `cancelled` of an
/// item the roll-back cut short.
#[test]
fn a_for_each_steps_error_is_the_failure_that_ended_it() {
    let yaml = "name: items
steps:
  - id: pay
    action: mock
    for_each: '{{input.cards}}'
    concurrency: 3
    retry: { max_attempts: 3, delay: 1s }
";
    let (state, _) = simulate(yaml, json!({ "cards": ["a", "b", "c"] }), |_, item, _| match item {
        Some(0) => err("unavailable"),
        Some(1) => err("card_declined"),
        _ => ok(json!({})),
    });
    let r = RunRecord::of(&state);
    let error = r.steps[0].error.clone().map(|e| (e.code.to_string(), e.message));
    assert_eq!(error, Some(("card_declined".to_owned(), "scripted failure".to_owned())));
    assert_eq!(r.error.map(|e| e.code.to_string()).as_deref(), Some("card_declined"));
}

/// DSL.md A2: `on_error: {continue: [codes]}` lets the run go on for those
/// codes only; `steps.X.error` is readable and routes with `when`; a run whose
/// failures were all continued ends `succeeded`; `fail` is never retried.
#[test]
fn errors_are_handled_by_code_and_read_where_outputs_are() {
    let yaml = "name: codes
steps:
  - id: lookup
    action: mock
    on_error: { continue: [not_found, timeout] }
  - id: fallback
    action: mock
    needs: [lookup]
    when: \"{{eq steps.lookup.error.code 'not_found'}}\"
    with: { output: '{{steps.lookup.error.message}}' }
  - id: check
    action: fail
    needs: [fallback]
    when: '{{input.too_big}}'
    retry: { max_attempts: 5, on: [over_limit] }
    with: { code: over_limit, message: the total is over the limit }
    on_error: { continue: [over_limit] }
";
    let lookup_fails = |code: &'static str| {
        move |asked: &str, _: Item, _: u32| match asked {
            "lookup" => err(code),
            _ => ok(json!("fine")),
        }
    };
    let (state, _) = simulate(yaml, json!({ "too_big": true }), lookup_fails("not_found"));
    let r = RunRecord::of(&state);
    assert_eq!((r.status.as_str(), r.error.is_none()), ("succeeded", true), "every failure was continued");
    assert_eq!((r.steps[0].status.as_str(), r.steps[1].status.as_str()), ("failed", "succeeded"));
    let read = state.attempt_input(1, None).expect("renders");
    assert_eq!(read, json!({ "output": "scripted failure" }), "steps.lookup.error.message");
    let check = &r.steps[2];
    assert_eq!((check.status.as_str(), check.attempts), ("failed", 1), "fail is never retried");
    assert_eq!(
        check.error.clone().map(|e| (e.code.to_string(), e.message)),
        Some(("over_limit".into(), "the total is over the limit".into()))
    );

    let (state, _) = simulate(yaml, json!({ "too_big": false }), lookup_fails("forbidden"));
    let r = RunRecord::of(&state);
    assert_eq!(
        (r.status.as_str(), r.error.map(|e| e.code.to_string())),
        ("failed", Some("forbidden".to_owned())),
        "a code not listed rolls back"
    );
}

/// DSL.md A4: a code named in `on:` is retried even when it is not by default,
/// `any` retries every code but `cancelled`, and `max_duration` bounds the
/// attempts by time alone.
#[test]
fn retry_names_its_codes_takes_any_and_stops_at_its_max_duration() {
    let attempts = |yaml: &str, code: &'static str| {
        let (state, _) = simulate(yaml, json!({}), move |_, _, _| err(code));
        RunRecord::of(&state).steps[0].attempts
    };
    let named = "name: n\nsteps:\n  - id: a\n    action: mock\n    retry: { max_attempts: 3, delay: 1s, on: [card_declined] }\n";
    assert_eq!(attempts(named, "card_declined"), 3, "named, so retried though not retryable by default");
    assert_eq!(attempts(named, "timeout"), 1, "not named, so not retried though retryable by default");
    let any = "name: n\nsteps:\n  - id: a\n    action: mock\n    retry: { max_attempts: 4, delay: 1s, on: [any] }\n";
    assert_eq!(attempts(any, "conflict"), 4);
    assert_eq!(attempts(any, "cancelled"), 1, "any is every code but cancelled");
    // 1s, 2s, 4s, 8s, 16s, 32s apart: attempts start at 0, 1, 3, 7, 15, 31 s; the next (63 s) is past a minute.
    let timed = "name: t\nsteps:\n  - id: a\n    action: mock\n    retry: { max_duration: 1m, delay: 1s }\n";
    assert_eq!(attempts(timed, "unavailable"), 6, "no attempt starts more than a minute after the first");
}

/// DSL.md A3: `finally` steps run last whatever the outcome, after the roll-back
/// and `on_failure`; they read `run.status` and `error`; one that fails does not
/// change the run's status.
#[test]
fn finally_runs_last_whatever_the_outcome_and_reads_the_ending_status() {
    let yaml = "name: fin
steps:
  - id: hold
    action: mock
    compensate: { action: mock }
  - id: charge
    action: mock
    needs: [hold]
on_failure:
  - id: tell
    action: mock
finally:
  - id: unlock
    action: mock
    with: { output: { status: '{{run.status}}', code: '{{default error.code \"none\"}}' } }
  - id: audit
    action: mock
    needs: [unlock]
";
    let order = |journal: &[Entry], state: &RunState| -> Vec<String> {
        journal
            .iter()
            .filter_map(|e| match e {
                Entry::AttemptStarted { step, .. } => Some(state.wf.steps[*step].id.clone()),
                Entry::CompensationStarted { step, .. } => Some(format!("undo {}", state.wf.steps[*step].id)),
                _ => None,
            })
            .collect()
    };
    let (state, journal) = simulate(yaml, json!({}), |_, _, _| ok(json!({})));
    assert_eq!(order(&journal, &state), ["hold", "charge", "unlock", "audit"]);
    assert_eq!(RunRecord::of(&state).status, "succeeded");
    assert_eq!(
        state.attempt_input(3, None).expect("renders"),
        json!({ "output": { "status": "succeeded", "code": "none" } })
    );

    let (state, journal) = simulate(yaml, json!({}), |asked, _, _| match asked {
        "charge" => err("card_declined"),
        "audit" => err("failed"),
        _ => ok(json!({})),
    });
    assert_eq!(order(&journal, &state), ["hold", "charge", "undo hold", "tell", "unlock", "audit"]);
    let r = RunRecord::of(&state);
    assert_eq!(
        (r.status.as_str(), r.steps[4].status.as_str()),
        ("compensated", "failed"),
        "a failing finally step changes nothing"
    );
    let seen = state.attempt_input(3, None).expect("renders");
    assert_eq!(seen, json!({ "output": { "status": "compensated", "code": "card_declined" } }));
}

/// DSL.md A4: `retry` as a list: an error is handled by the first policy whose
/// `on` holds its code, each policy counts its own, and a code no policy holds
/// is not retried.
#[test]
fn each_retry_policy_of_a_list_counts_the_failures_it_handled() {
    let yaml = "name: l
steps:
  - id: a
    action: mock
    retry:
      - { on: [rate_limited], max_attempts: 5, delay: 1s }
      - { on: [unavailable], max_attempts: 2, delay: 1s }
";
    let codes = ["rate_limited", "unavailable", "rate_limited", "unavailable", "rate_limited"];
    let (state, _) = simulate(yaml, json!({}), move |_, _, attempt| err(codes[(attempt as usize - 1) % codes.len()]));
    let r = RunRecord::of(&state);
    assert_eq!(r.steps[0].attempts, 4, "the second `unavailable` is the second the second policy handled: its last");
    assert_eq!(r.steps[0].error.clone().map(|e| e.code.to_string()).as_deref(), Some("unavailable"));
    let (state, _) = simulate(yaml, json!({}), |_, _, _| err("timeout"));
    assert_eq!(RunRecord::of(&state).steps[0].attempts, 1, "no policy holds `timeout`");
}

/// `finally` after a roll-back whose undo failed for good: it runs, and reads
/// `compensation_failed` as the status the run ends with.
#[test]
fn finally_runs_after_a_failed_compensation_and_reads_that_status() {
    let yaml = "name: fin
steps:
  - id: hold
    action: mock
    compensate: { action: mock }
  - id: charge
    action: mock
finally:
  - id: report
    action: mock
    with: { output: '{{run.status}}' }
";
    let (state, _) = simulate(yaml, json!({}), |asked, _, _| match asked {
        "charge" | "undo hold" => err("failed"),
        _ => ok(json!({})),
    });
    let r = RunRecord::of(&state);
    assert_eq!((r.status.as_str(), r.steps[2].status.as_str()), ("compensation_failed", "succeeded"));
    assert_eq!(state.attempt_input(2, None).expect("renders"), json!({ "output": "compensation_failed" }));
}
