//! The step graph: unique ids, `needs` that name real steps, no cycles, and who
//! is sure to have finished before whom.

use std::cell::OnceCell;
use std::collections::HashMap;

use bit_set::BitSet;

use crate::base::suggest::did_you_mean;
use crate::dsl::diagnostic::{Code, Diagnostic};
use crate::dsl::model::{Needs, Step, Workflow};

/// How many cycles are reported at most (each costs its length to name).
const MAX_CYCLES_REPORTED: usize = 10;

/// How many steps a cycle's message names at most.
const MAX_NAMED_IN_CYCLE: usize = 12;

/// Steps by position (`steps` then `on_failure`), with their resolved needs.
pub(crate) struct Graph<'w> {
    pub steps: Vec<&'w Step>,
    pub index: HashMap<&'w str, usize>,
    /// For each step, the positions of the steps it needs (only valid ones).
    pub needs: Vec<Vec<usize>>,
    pub has_cycle: bool,
    /// Every step after the steps it needs (when there is no cycle).
    pub order: Vec<usize>,
    /// For each step, every step it transitively needs: worked out when first
    /// asked, so a large graph that nobody asks about costs nothing.
    ancestors: Vec<OnceCell<BitSet>>,
}

impl<'w> Graph<'w> {
    /// Builds the graph, reporting duplicate ids, bad needs and cycles.
    pub(crate) fn build(workflow: &'w Workflow, out: &mut Vec<Diagnostic>) -> Graph<'w> {
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
                        "step ids are unique across `steps`, `on_failure` and `finally`; the first is at step {}",
                        first + 1
                    )),
                );
            } else {
                index.insert(&step.id.value, i);
            }
        }
        let needs = steps.iter().map(|s| resolve_needs(s, &steps, &index, out)).collect();
        let ancestors = steps.iter().map(|_| OnceCell::new()).collect();
        let mut graph = Graph { ancestors, steps, index, needs, has_cycle: false, order: Vec::new() };
        graph.report_cycles(out);
        graph
    }

    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Whether `ancestor` is sure to have finished before `step` starts.
    pub(crate) fn is_ancestor(&self, step: usize, ancestor: usize) -> bool {
        self.needs[step].contains(&ancestor) || self.ancestors(step).contains(ancestor)
    }

    /// Every step that `start` transitively needs. Each step's set is built
    /// from those of the steps it needs, once, by an explicit stack (a chain of
    /// any length cannot overflow the call stack); on a cycle the sets are
    /// partial, and nothing reads them then but the checks that stop early.
    fn ancestors(&self, start: usize) -> &BitSet {
        if let Some(done) = self.ancestors[start].get() {
            return done;
        }
        let mut stack = vec![(start, false)];
        let mut entered = BitSet::with_capacity(self.steps.len());
        while let Some((node, children_done)) = stack.pop() {
            if self.ancestors[node].get().is_some() {
                continue;
            }
            if !children_done {
                if entered.insert(node) {
                    stack.push((node, true));
                    stack.extend(
                        self.needs[node].iter().filter(|&&n| self.ancestors[n].get().is_none()).map(|&n| (n, false)),
                    );
                }
                continue;
            }
            let mut set = BitSet::with_capacity(self.steps.len());
            for &n in &self.needs[node] {
                set.insert(n);
                if let Some(theirs) = self.ancestors[n].get() {
                    set.union_with(theirs);
                }
            }
            let _ = self.ancestors[node].set(set);
        }
        self.ancestors[start].get_or_init(BitSet::new)
    }

    /// Reports each cycle of `needs` once, by a depth-first walk on an explicit
    /// stack: a cycle through thousands of steps is one diagnostic, not a stack
    /// overflow.
    fn report_cycles(&mut self, out: &mut Vec<Diagnostic>) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; self.steps.len()];
        // Where each step on the path stands in it.
        let mut at = vec![0usize; self.steps.len()];
        let mut reported = 0;
        for start in 0..self.steps.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // The path from `start`, each node with the index of its next need to follow.
            let mut path: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::OnPath;
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                let Some(&need) = self.needs[node].get(*next) else {
                    mark[node] = Mark::Done;
                    self.order.push(node);
                    path.pop();
                    continue;
                };
                *next += 1;
                match mark[need] {
                    Mark::New => {
                        mark[need] = Mark::OnPath;
                        at[need] = path.len();
                        path.push((need, 0));
                    }
                    Mark::OnPath => {
                        self.has_cycle = true;
                        reported += 1;
                        if reported <= MAX_CYCLES_REPORTED {
                            let cycle: Vec<usize> = path[at[need]..].iter().map(|&(p, _)| p).collect();
                            out.push(self.cycle_diagnostic(&cycle));
                        }
                    }
                    Mark::Done => {}
                }
            }
        }
    }

    fn cycle_diagnostic(&self, cycle: &[usize]) -> Diagnostic {
        // Name the cycle from its first step in file order, in the direction of `needs`.
        let first = cycle.iter().enumerate().min_by_key(|(_, &s)| s).map_or(0, |(i, _)| i);
        let mut order: Vec<String> =
            cycle[first..].iter().chain(&cycle[..first]).map(|&s| self.steps[s].id.value.clone()).collect();
        order.push(order[0].clone());
        // A long circle is named by its ends: the message stays one line.
        if order.len() > MAX_NAMED_IN_CYCLE {
            let left_out = order.len() - MAX_NAMED_IN_CYCLE;
            order.splice(6..order.len() - 6, [format!("… {left_out} more …")]);
        }
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
    let here = step.section.key();
    format!("`{need}` is not in `{here}`; a step needs only steps of its own list (each list has ended before the next starts)")
}
