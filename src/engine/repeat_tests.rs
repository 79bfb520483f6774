//! Scenarios of `repeat` (DSL.md B2) and of durations taken from data (B3):
//! rounds with their own retries and keys, the wait between them on the
//! clock, `exhausted` past `max`, and a replay that decides as the run did.

use serde_json::json;

use super::machine::RunState;
use super::record::RunRecord;
use super::tests::{compile, err, ok, shape, simulate};
use super::wanted::{AttemptKey, Start};
use crate::journal::entry::{Entry, Outcome};
use crate::journal::status::{RunStatus, StepStatus};

const POLL: &str = "name: poll
input:
  type: object
  properties: { every: {} }
steps:
  - id: export
    action: mock
    with: { output: { state: running } }
    retry: { max_attempts: 2, delay: 1s }
    repeat: { until: \"{{eq output.state 'done'}}\", every: \"{{input.every}}\", max: 5 }
  - id: after
    action: mock
    with: { output: '{{steps.export.output.state}}' }
";

/// The times at which each attempt of step 0 started.
fn starts(journal: &[Entry]) -> Vec<u64> {
    journal
        .iter()
        .filter_map(|e| match e {
            Entry::AttemptStarted { step: 0, at, .. } => Some(*at),
            _ => None,
        })
        .collect()
}

#[test]
fn rounds_repeat_every_interval_until_the_condition_holds_each_with_its_own_retries() {
    let mut calls = 0;
    let (state, journal) = simulate(POLL, json!({"every": "30s"}), |step, _, attempt| {
        if step != "export" {
            return ok(json!("done"));
        }
        calls += 1;
        match calls {
            // Round 3 fails once and is retried within the round.
            3 => err("unavailable"),
            4 => {
                assert_eq!(attempt, 2, "the retry is the round's second attempt");
                ok(json!({"state": "running"}))
            }
            5 => ok(json!({"state": "done"})),
            _ => {
                assert_eq!(attempt, 1, "each round starts at attempt 1");
                ok(json!({"state": "running"}))
            }
        }
    });
    let record = RunRecord::of(&state);
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(record.steps[0].rounds, Some(4));
    assert_eq!(record.steps[0].output, json!({"state": "done"}), "the step's output is the last round's");
    assert_eq!(record.steps[1].output, json!("done"));
    // Rounds 30 s apart after each round's end; the retry 1 s after its failure.
    assert_eq!(starts(&journal), [1_000, 31_000, 61_000, 62_000, 92_000]);
    assert_eq!(shape(&journal).iter().filter(|e| *e == "round_due").count(), 3);
}

#[test]
fn past_max_rounds_the_step_fails_with_exhausted_and_the_run_rolls_back() {
    let (state, journal) = simulate(POLL, json!({"every": 1000}), |_, _, _| ok(json!({"state": "running"})));
    let record = RunRecord::of(&state);
    assert_eq!(record.status, RunStatus::Failed);
    let error = record.error.expect("an error");
    assert_eq!(error.code, "exhausted");
    assert!(error.message.contains("after 5 rounds"), "{}", error.message);
    assert_eq!(record.steps[0].rounds, Some(5));
    assert_eq!(starts(&journal), [1_000, 2_000, 3_000, 4_000, 5_000], "a number is milliseconds");
}

#[test]
fn each_round_has_its_own_idempotency_key_and_reads_its_iteration() {
    let yaml = "name: k
steps:
  - id: poll
    action: mock
    with: { output: { n: '{{iteration}}' } }
    repeat: { until: '{{gte output.n 3}}', max: 9 }
";
    let wf = compile(yaml);
    let mut n = 0;
    let (state, journal) = simulate(yaml, json!({}), |_, _, _| {
        n += 1;
        Outcome::Ok(json!({ "n": n }))
    });
    assert_eq!(RunRecord::of(&state).steps[0].rounds, Some(3));
    // Replay entry by entry: at each attempt, the key and the input it would get.
    let mut seen = Vec::new();
    let mut replayed = RunState::new("run-1", wf.clone());
    for e in &journal {
        replayed.apply(e);
        if let Entry::AttemptStarted { step, item, attempt, .. } = e {
            let key = AttemptKey { compensation: false, step: *step, item: *item, attempt: *attempt };
            let Start::Call(call) = replayed.start(key) else { panic!("a call") };
            seen.push((call.idempotency_key.clone(), call.input["output"]["n"].clone()));
        }
    }
    let want: Vec<(String, serde_json::Value)> = (1..=3).map(|r| (format!("run-1:poll:r{r}"), json!(r))).collect();
    assert_eq!(seen, want);
}

#[test]
fn a_journal_replayed_whole_or_cut_anywhere_gives_the_same_rounds() {
    let (state, journal) = simulate(POLL, json!({"every": "5s"}), {
        let mut n = 0;
        move |_, _, _| {
            n += 1;
            ok(json!({"state": if n >= 3 { "done" } else { "running" }}))
        }
    });
    let wf = state.wf.clone();
    let whole = RunState::replayed("run-1", wf.clone(), &journal);
    assert_eq!(RunRecord::of(&whole), RunRecord::of(&state));
    for cut in 1..journal.len() {
        let part = RunState::replayed("run-1", wf.clone(), &journal[..cut]);
        let waiting = part.steps[0].units.first().and_then(|u| u.next_round);
        if let Some(due) = waiting {
            // A run cut between rounds knows when the next one is due.
            assert!(part.timers().iter().any(|(at, e)| *at == due && matches!(e, Entry::RoundDue { .. })));
            assert_eq!(RunRecord::of(&part).status, RunStatus::Waiting);
        }
    }
}

#[test]
fn a_repeating_step_cut_short_by_a_roll_back_is_failed_and_undone_when_asked() {
    let yaml = "name: r
steps:
  - id: poll
    action: mock
    repeat: { until: 'false', every: 1h, max: 3 }
    compensate: { action: mock, also_when_failed: true }
  - id: other
    action: mock
    needs: []
    with: { delay: 10s }
";
    let (state, _) = simulate(yaml, json!({}), |step, _, _| match step {
        "other" => err("conflict"),
        _ => ok(json!({})),
    });
    let record = RunRecord::of(&state);
    assert_eq!(record.steps[0].status, StepStatus::Compensated, "{record:?}");
    assert_eq!(record.status, RunStatus::Compensated);
}

#[test]
fn durations_from_data_bound_attempts_and_space_retries_and_a_wrong_one_fails_with_template() {
    let yaml = "name: d
input:
  type: object
  properties: { wait: {}, limit: {} }
steps:
  - id: a
    action: mock
    timeout: '{{input.limit}}'
    retry: { max_attempts: 3, delay: '{{input.wait}}', backoff: fixed }
";
    let capped = "name: c
input:
  type: object
  properties: { cap: {} }
steps:
  - id: a
    action: mock
    retry: { max_attempts: 4, delay: 1m, max_delay: '{{input.cap}}' }
";
    let (_, journal) = simulate(capped, json!({"cap": "90s"}), |_, _, _| err("unavailable"));
    assert_eq!(starts(&journal), [1_000, 61_000, 151_000, 241_000], "1m, then 2m and 4m capped at 90 s");
    let wf = compile(yaml);
    let (state, journal) = simulate(yaml, json!({"wait": "2m", "limit": 1500}), |_, _, _| err("unavailable"));
    assert_eq!(starts(&journal), [1_000, 121_000, 241_000], "2 minutes apart");
    let key = AttemptKey { compensation: false, step: 0, item: None, attempt: 1 };
    let mut first = RunState::new("run-1", wf.clone());
    first.apply(&journal[0]);
    first.apply(&journal[1]);
    let Start::Call(call) = first.start(key) else { panic!("a call") };
    assert_eq!(call.timeout_ms, Some(1_500));
    assert_eq!(RunRecord::of(&state).steps[0].attempts, 3);

    let (state, _) = simulate(yaml, json!({"wait": "soon", "limit": 10}), |_, _, _| err("unavailable"));
    let error = RunRecord::of(&state).error.expect("failed");
    assert_eq!(error.code, "template");
    assert!(error.message.contains("`retry.delay` gave `soon`, which is not a duration"), "{}", error.message);
    let (state, _) = simulate(yaml, json!({"wait": "1s", "limit": true}), |_, _, _| ok(json!({})));
    let error = RunRecord::of(&state).error.expect("failed");
    assert_eq!(error.code, "template");
    assert!(error.message.contains("`timeout` gave true"), "{}", error.message);
}

#[test]
fn a_sleep_for_a_duration_from_data_waits_that_long() {
    let yaml = "name: s
steps:
  - id: nap
    action: sleep
    with: { for: '{{input.window}}' }
";
    for (window, woke) in [(json!("2h"), 7_201_000u64), (json!(60_000), 61_000)] {
        let (state, journal) = simulate(yaml, json!({"window": window}), |_, _, _| ok(json!({})));
        assert_eq!(RunRecord::of(&state).status, RunStatus::Succeeded);
        let ended = journal.iter().find_map(|e| match e {
            Entry::AttemptFinished { at, .. } => Some(*at),
            _ => None,
        });
        assert_eq!(ended, Some(woke));
    }
    let (state, _) = simulate(yaml, json!({"window": "later"}), |_, _, _| ok(json!({})));
    assert_eq!(RunRecord::of(&state).error.map(|e| e.code.to_string()), Some("template".into()));
}
