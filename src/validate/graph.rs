//! The step graph: unique ids, `needs` that name real steps, no cycles, and who
//! is sure to have finished before whom.

use std::collections::HashMap;

use super::diagnostic::{Code, Diagnostic};
use super::suggest::did_you_mean;
use crate::dsl::model::{Needs, Section, Step, Workflow};

/// Steps by position (`steps` then `on_failure`), with their resolved needs.
pub struct Graph<'w> {
    pub steps: Vec<&'w Step>,
    pub index: HashMap<&'w str, usize>,
    /// For each step, the positions of the steps it needs (only valid ones).
    pub needs: Vec<Vec<usize>>,
    /// For each step, every step it transitively needs.
    pub ancestors: Vec<Vec<bool>>,
    pub has_cycle: bool,
}

impl<'w> Graph<'w> {
    /// Builds the graph, reporting duplicate ids, bad needs and cycles.
    pub fn build(workflow: &'w Workflow, out: &mut Vec<Diagnostic>) -> Graph<'w> {
        let steps: Vec<&Step> = workflow.all_steps().collect();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            if let Some(&first) = index.get(step.id.value.as_str()) {
                out.push(
                    Diagnostic::new(
                        Code::DuplicateId,
                        step.id.span,
                        format!("another step already has the id `{}`", step.id.value),
                    )
                    .help(format!(
                        "step ids are unique across `steps` and `on_failure`; the first is at step {}",
                        first + 1
                    )),
                );
            } else {
                index.insert(&step.id.value, i);
            }
        }
        let needs = steps.iter().map(|s| resolve_needs(s, &steps, &index, out)).collect();
        let mut graph = Graph { ancestors: Vec::new(), steps, index, needs, has_cycle: false };
        graph.report_cycles(out);
        graph.ancestors = (0..graph.steps.len()).map(|i| graph.reach(i)).collect();
        graph
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Whether `ancestor` is sure to have finished before `step` starts.
    pub fn is_ancestor(&self, step: usize, ancestor: usize) -> bool {
        self.ancestors[step][ancestor]
    }

    fn reach(&self, start: usize) -> Vec<bool> {
        let mut seen = vec![false; self.steps.len()];
        let mut stack: Vec<usize> = self.needs[start].clone();
        while let Some(n) = stack.pop() {
            if !seen[n] {
                seen[n] = true;
                stack.extend(&self.needs[n]);
            }
        }
        seen
    }

    fn report_cycles(&mut self, out: &mut Vec<Diagnostic>) {
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; self.steps.len()];
        let mut path = Vec::new();
        for start in 0..self.steps.len() {
            if state[start] == 0 {
                self.visit(start, &mut state, &mut path, out);
            }
        }
    }

    fn visit(&mut self, node: usize, state: &mut [u8], path: &mut Vec<usize>, out: &mut Vec<Diagnostic>) {
        state[node] = 1;
        path.push(node);
        for next in self.needs[node].clone() {
            match state[next] {
                0 => self.visit(next, state, path, out),
                1 => {
                    self.has_cycle = true;
                    let from = path.iter().position(|&p| p == next).unwrap_or(0);
                    let cycle: Vec<usize> = path[from..].to_vec();
                    out.push(self.cycle_diagnostic(&cycle));
                }
                _ => {}
            }
        }
        path.pop();
        state[node] = 2;
    }

    fn cycle_diagnostic(&self, cycle: &[usize]) -> Diagnostic {
        // Name the cycle from its first step in file order, in the direction of `needs`.
        let first = cycle.iter().enumerate().min_by_key(|(_, &s)| s).map_or(0, |(i, _)| i);
        let mut order: Vec<&str> =
            cycle[first..].iter().chain(&cycle[..first]).map(|&s| self.steps[s].id.value.as_str()).collect();
        order.push(order[0]);
        let at = self.steps[cycle[first]];
        let span = match &at.needs {
            Needs::Explicit(list) => list
                .iter()
                .find(|n| cycle.iter().any(|&c| self.steps[c].id.value == n.value))
                .map_or(at.id.span, |n| n.span),
            Needs::Previous(_) => at.id.span,
        };
        Diagnostic::new(
            Code::Cycle,
            span,
            format!("these steps need each other in a circle, so none can start: {}", order.join(" → ")),
        )
        .help("remove one of these `needs` to break the circle")
    }
}

fn resolve_needs(step: &Step, steps: &[&Step], index: &HashMap<&str, usize>, out: &mut Vec<Diagnostic>) -> Vec<usize> {
    let Needs::Explicit(list) = &step.needs else {
        return step.needs.ids().iter().filter_map(|id| index.get(id).copied()).collect();
    };
    let mut resolved = Vec::new();
    for need in list {
        if need.value == step.id.value {
            out.push(Diagnostic::new(
                Code::SelfNeeds,
                need.span,
                format!("step `{}` needs itself, so it can never start", step.id.value),
            ));
            continue;
        }
        let same_section = steps.iter().filter(|s| s.section == step.section).map(|s| s.id.value.as_str());
        match index.get(need.value.as_str()) {
            Some(&i) if steps[i].section == step.section => resolved.push(i),
            Some(_) => {
                out.push(Diagnostic::new(Code::UnknownStep, need.span, cross_section_message(step, &need.value)))
            }
            None => out.push(
                Diagnostic::new(
                    Code::UnknownStep,
                    need.span,
                    format!("`needs` names `{}`, but no step has that id", need.value),
                )
                .maybe_help(did_you_mean(&need.value, same_section)),
            ),
        }
    }
    resolved
}

fn cross_section_message(step: &Step, need: &str) -> String {
    match step.section {
        Section::Steps => format!("`{need}` is an `on_failure` step; a step in `steps` cannot wait for it"),
        Section::OnFailure => {
            format!("`{need}` is in `steps`; every step there has ended before `on_failure` starts, so an `on_failure` step needs only other `on_failure` steps")
        }
    }
}
