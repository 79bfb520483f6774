//! Saga lint, from the actions' effect classes: what a roll-back cannot undo.
//!
//! - `uncompensated-step` (warning): a `reversible` step with no `compensate`,
//!   while a later step can still fail and roll the run back: its effect would
//!   be stranded.
//! - `compensable-after-irreversible` (warning): a step that can be undone runs
//!   after one that cannot (money captured, an account verified): a failure
//!   there rolls back around a change that stays. The point of no return
//!   should come last. Messages (`notify.*`, `email.*`, `event.*`) do not count:
//!   a mail or an event is not a change to undo.
//!
//! (A compensation reading an output it cannot have is an error of the
//! template checks: `unreachable-step`.)

use super::graph::Graph;
use crate::actions::{Effect, Registry};
use crate::dsl::diagnostic::{Code, Diagnostic};
use crate::dsl::model::Section;

/// Whether an action sends a message rather than changing business state.
pub(crate) fn is_message(action: &str) -> bool {
    ["notify.", "email.", "event."].iter().any(|p| action.starts_with(p))
}

fn effect_of<'r>(registry: &'r Registry, action: &str) -> Option<&'r Effect> {
    registry.get(action).map(|a| &a.spec.effect)
}

pub(crate) fn check_saga(graph: &Graph, registry: &Registry, out: &mut Vec<Diagnostic>) {
    if graph.has_cycle {
        return;
    }
    let forward: Vec<usize> = (0..graph.steps.len()).filter(|&i| graph.steps[i].section == Section::Steps).collect();
    let no_return = points_of_no_return(graph, registry);
    for &i in &forward {
        let step = graph.steps[i];
        let Some(effect) = effect_of(registry, &step.action.value) else { continue };
        if let (Effect::Reversible { undo }, None) = (effect, &step.compensate) {
            let later = forward
                .iter()
                .find(|&&j| j != i && !graph.is_ancestor(i, j) && graph.steps[j].on_error.may_roll_back());
            if let Some(&j) = later {
                out.push(
                    Diagnostic::new(
                        Code::UncompensatedStep,
                        step.action.span,
                        format!(
                            "step `{}` runs `{}`, which can be undone, but has no `compensate`: if `{}` fails, its effect stays",
                            step.id.value, step.action.value, graph.steps[j].id.value
                        ),
                    )
                    .help(format!("add `compensate: {{ action: {undo}, with: ... }}` to `{}`", step.id.value)),
                );
            }
        }
        if step.compensate.is_some() {
            if let Some(j) = no_return[i] {
                let p = graph.steps[j];
                out.push(
                    Diagnostic::new(
                        Code::CompensableAfterIrreversible,
                        step.id.span,
                        format!(
                            "step `{}` can be undone but runs after `{}` (`{}`), which cannot: a roll-back from here leaves that change in place",
                            step.id.value, p.id.value, p.action.value
                        ),
                    )
                    .help(format!("move `{}` before `{}`: the point of no return should come last", step.id.value, p.id.value)),
                );
            }
        }
    }
}

/// For each step, the first step (by position) that it surely runs after and
/// that cannot be undone; worked out once in the order of `needs`, so it takes
/// one pass whatever the size of the graph.
fn points_of_no_return(graph: &Graph, registry: &Registry) -> Vec<Option<usize>> {
    let irreversible = |j: usize| {
        let action = &graph.steps[j].action.value;
        !is_message(action) && matches!(effect_of(registry, action), Some(Effect::Irreversible))
    };
    let mut first: Vec<Option<usize>> = vec![None; graph.steps.len()];
    for &i in &graph.order {
        first[i] = graph.needs[i].iter().flat_map(|&n| irreversible(n).then_some(n).into_iter().chain(first[n])).min();
    }
    first
}
