//! Failure injection: `--fail STEP[=CODE][xN]` and `--fail STEP.compensate[=CODE][xN]`.
//! The engine fails the named step's attempts (or its compensation's) at its
//! dispatch, before any action is called, with CODE (default `unavailable`),
//! only the first N of each item with `xN`. `STEP=lost` is the other kind: the
//! action runs (its effect happens), then its answer is lost and the attempt
//! fails with `timeout`. Injections are part of the run's first journal entry,
//! so they show in the run record and hold after a resume.

use super::compiled::{CompiledWorkflow, StepKind};
use super::library::Library;
use crate::journal::injection::{Injection, DEFAULT_CODE};

/// Reads `STEP[.compensate][=CODE][xN]` for a workflow: the step must exist
/// (and have a `compensate` for `.compensate`). A step of a child run is named
/// by its path, `PARENT_STEP/CHILD_STEP`, through the `workflow.run` step that
/// starts it (its workflow found in `library`).
pub(crate) fn parse(text: &str, wf: &CompiledWorkflow, library: &dyn Library) -> Result<Injection, String> {
    let bad = |why: String| format!("--fail `{text}`: {why}");
    // `xN` may end the text; a step id may end in `x2` too, so the step decides.
    let mut readings = vec![(text, None)];
    if let Some((head, n)) = text.rsplit_once('x') {
        if let Ok(n) = n.parse::<u32>() {
            readings.insert(0, (head, Some(n)));
        }
    }
    let mut first_error = None;
    for (head, times) in readings {
        let (target, code) = match head.split_once('=') {
            Some((t, c)) => (t, c),
            None => (head, DEFAULT_CODE),
        };
        let (step, compensate) = match target.strip_suffix(".compensate") {
            Some(step) => (step, true),
            None => (target, false),
        };
        match check(wf, step, compensate, code, times, library) {
            Ok(()) => {
                return Ok(Injection { step: step.to_owned(), compensate, code: code.to_owned(), times });
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(bad(first_error.unwrap_or_default()))
}

fn check(
    wf: &CompiledWorkflow,
    step: &str,
    compensate: bool,
    code: &str,
    times: Option<u32>,
    library: &dyn Library,
) -> Result<(), String> {
    if let Some((head, rest)) = step.split_once('/') {
        let child = child_of(wf, head, library)?;
        return check(&child, rest, compensate, code, times, library);
    }
    let Some(s) = wf.position(step).map(|p| &wf.steps[p]) else { return Err(wf.no_step(step)) };
    if compensate && s.compensate.is_none() {
        return Err(format!("the step `{step}` has no `compensate` to fail"));
    }
    let fine = !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !fine {
        return Err(format!("`{code}` is not an error code (lower-case letters, digits and `_`)"));
    }
    if times == Some(0) {
        return Err("`x0` fails no attempt; leave it out to fail them all".into());
    }
    let kind = if compensate { s.compensate.as_ref().map_or(s.kind, |c| c.kind) } else { s.kind };
    if code == crate::journal::injection::LOST && kind != super::compiled::StepKind::Call {
        return Err(format!(
            "`lost` loses an action's answer after it ran; `{step}` calls no action (a sleep, a wait or an emit is the engine's own)"
        ));
    }
    Ok(())
}

/// The workflow a `workflow.run` step of `wf` runs, when it names it as written.
fn child_of(
    wf: &CompiledWorkflow,
    step: &str,
    library: &dyn Library,
) -> Result<std::sync::Arc<CompiledWorkflow>, String> {
    let Some(s) = wf.position(step).map(|p| &wf.steps[p]) else { return Err(wf.no_step(step)) };
    if s.kind != StepKind::Child {
        return Err(format!("`{step}/...` names a step of a child run, but `{step}` runs no workflow"));
    }
    let name = s.child_workflow().ok_or_else(|| {
        format!("`{step}` names its workflow with a template; its steps cannot be named before it runs")
    })?;
    library.active(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf() -> std::sync::Arc<CompiledWorkflow> {
        let source = "name: w
steps:
  - id: charge
    action: mock
    compensate: { action: mock }
  - id: box2
    action: mock
";
        CompiledWorkflow::compile(std::path::Path::new("w.yaml"), source, crate::config::registry::builtin())
            .unwrap_or_else(|_| panic!("compiles"))
    }

    #[test]
    fn every_form_reads_and_prints_back() {
        let wf = wf();
        let read = |t: &str| parse(t, &wf, &crate::engine::library::NoLibrary);
        let charge = Injection { step: "charge".into(), compensate: false, code: "unavailable".into(), times: None };
        assert_eq!(read("charge"), Ok(charge.clone()));
        assert_eq!(read("charge=card_declined").map(|i| i.code), Ok("card_declined".into()));
        assert_eq!(read("charge=timeoutx2").map(|i| (i.code, i.times)), Ok(("timeout".into(), Some(2))));
        assert_eq!(read("chargex3").map(|i| i.times), Ok(Some(3)));
        assert_eq!(read("charge.compensate").map(|i| i.compensate), Ok(true));
        assert_eq!(read("box2").map(|i| (i.step, i.times)), Ok(("box2".into(), None)), "the step wins");
        assert_eq!(read("charge.compensate=failedx1").map(|i| i.to_string()), Ok("charge.compensate=failedx1".into()));
    }

    #[test]
    fn wrong_ones_say_why() {
        let wf = wf();
        let read = |t: &str| parse(t, &wf, &crate::engine::library::NoLibrary).err().unwrap_or_default();
        assert_eq!(read("charg"), "--fail `charg`: `w` has no step `charg`; did you mean `charge`?");
        assert_eq!(read("box2.compensate"), "--fail `box2.compensate`: the step `box2` has no `compensate` to fail");
        assert_eq!(
            read("charge=Bad Code"),
            "--fail `charge=Bad Code`: `Bad Code` is not an error code (lower-case letters, digits and `_`)"
        );
        assert!(read("chargex0").contains("x0"));
    }

    #[test]
    fn only_the_first_n_attempts_fail() {
        let i = Injection { step: "a".into(), compensate: false, code: "timeout".into(), times: Some(2) };
        assert!(i.applies("a", false, 1) && i.applies("a", false, 2));
        assert!(!i.applies("a", false, 3) && !i.applies("a", true, 1) && !i.applies("b", false, 1));
    }
}
