//! The checks across files of `workflow.run` steps (DSL.md B1): the workflow a
//! step names exists in the directory ("did you mean"), the `input` it gives
//! meets the child's `input:`, and no workflow calls itself, directly or
//! through others (the circle is named, as a cycle of steps is).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value as Json;

use crate::actions::{Effect, Registry};
use crate::base::suggest::did_you_mean;
use crate::dsl::diagnostic::{Code, Diagnostic, FileReport};
use crate::dsl::model::{Section, Step, Workflow};
use crate::dsl::node::Node;
use crate::dsl::span::Spanned;
use crate::dsl::template::is_template;

/// A `workflow.run` step that names its workflow as written (not a template).
#[derive(Debug, Clone)]
pub(crate) struct CallSite {
    pub step: String,
    pub workflow: Spanned<String>,
    pub input: Option<Node>,
    /// The step has a `when`: it may not run.
    pub conditional: bool,
    /// The forward steps sure to run after it that can be undone (their ids).
    pub undoable_after: Vec<Spanned<String>>,
}

/// What the checks across files keep of a workflow: its name, `input:`,
/// calls, and the first step sure to run that cannot be undone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Callable {
    pub name: Option<Spanned<String>>,
    pub input: Option<Json>,
    pub calls: Vec<CallSite>,
    /// `(step, action)` of a step with no `when` whose change cannot be taken back.
    pub no_return: Option<(String, String)>,
}

impl Callable {
    pub(crate) fn of(workflow: &Workflow, registry: &Registry) -> Callable {
        let forward = |s: &&Step| s.section == Section::Steps;
        let irreversible = |s: &&Step| {
            s.when.is_none()
                && !super::saga::is_message(&s.action.value)
                && registry.get(&s.action.value).is_some_and(|a| a.spec.effect == Effect::Irreversible)
        };
        let no_return = workflow
            .steps
            .iter()
            .filter(forward)
            .find(irreversible)
            .map(|s| (s.id.value.clone(), s.action.value.clone()));
        let calling = workflow.all_steps().any(|s| s.action.value == crate::actions::CHILD_ACTION);
        let name = Some(workflow.name.clone());
        let input = workflow.input.as_ref().map(Node::to_json);
        if !calling {
            return Callable { name, input, calls: Vec::new(), no_return };
        }
        let graph = super::graph::Graph::build(workflow, &mut Vec::new());
        let calls = workflow
            .all_steps()
            .filter(|s| s.action.value == crate::actions::CHILD_ACTION)
            .filter_map(|s| {
                let with = s.with.as_ref()?;
                let name = with.get("workflow")?;
                let text = name.as_str().filter(|t| !is_template(t))?;
                Some(CallSite {
                    step: s.id.value.clone(),
                    workflow: Spanned::new(text.to_owned(), name.span),
                    input: with.get("input").cloned(),
                    conditional: s.when.is_some(),
                    undoable_after: undoable_after(&graph, &s.id.value),
                })
            })
            .collect();
        Callable { name, input, calls, no_return }
    }
}

/// The forward steps with a `compensate` that surely run after step `id`.
fn undoable_after(graph: &super::graph::Graph, id: &str) -> Vec<Spanned<String>> {
    let Some(at) = graph.position(id) else { return Vec::new() };
    if graph.has_cycle {
        return Vec::new();
    }
    (0..graph.steps.len())
        .filter(|&j| graph.steps[j].section == Section::Steps && graph.steps[j].compensate.is_some())
        .filter(|&j| graph.is_ancestor(j, at))
        .map(|j| graph.steps[j].id.clone())
        .collect()
}

/// Checks every call of the checked files; `reports[i]` is the report of `callables[i]`.
/// Workflows beside the checked files (in their folders) count as callable too.
pub(crate) fn check_calls(files: &[PathBuf], callables: &[Callable], reports: &mut [FileReport], registry: &Registry) {
    if callables.iter().all(|c| c.calls.is_empty()) {
        return;
    }
    let mut known: BTreeMap<String, &Callable> = BTreeMap::new();
    for c in callables {
        if let Some(name) = &c.name {
            known.entry(name.value.clone()).or_insert(c);
        }
    }
    let neighbours = neighbours(files, registry);
    for n in &neighbours {
        if let Some(name) = &n.name {
            known.entry(name.value.clone()).or_insert(n);
        }
    }
    for (c, report) in callables.iter().zip(reports.iter_mut()) {
        let before = report.diagnostics.len();
        for call in &c.calls {
            match known.get(&call.workflow.value) {
                None => report.diagnostics.push(unknown(call, &known)),
                Some(child) => {
                    report.diagnostics.extend(check_input(call, child));
                    match c.name.as_ref().and_then(|n| circle(&n.value, &call.workflow.value, &known)) {
                        Some(circle) => report.diagnostics.push(cycle(call, &circle)),
                        None => report.diagnostics.extend(past_no_return(call, &known)),
                    }
                }
            }
        }
        if report.diagnostics.len() > before {
            report.normalize();
        }
    }
}

/// The saga lint through a child (`compensable-after-irreversible`): a step
/// that can be undone surely runs after a call whose child (or a workflow it
/// runs) surely makes a change that cannot be taken back.
fn past_no_return(call: &CallSite, known: &BTreeMap<String, &Callable>) -> Vec<Diagnostic> {
    if call.conditional || call.undoable_after.is_empty() {
        return Vec::new();
    }
    let Some((path, step, action)) = no_return_in(&call.workflow.value, known, &mut BTreeSet::new()) else {
        return Vec::new();
    };
    call.undoable_after
        .iter()
        .map(|later| {
            Diagnostic::new(
                Code::CompensableAfterIrreversible,
                later.span,
                format!(
                    "step `{}` can be undone but runs after `{}`, whose child run of {path} does `{step}` (`{action}`), which cannot be undone: a roll-back from here leaves that change in place",
                    later.value, call.step
                ),
            )
            .help(format!("move `{}` before `{}`: the point of no return should come last", later.value, call.step))
        })
        .collect()
}

/// Where a workflow (or one it surely runs) first surely makes a change that
/// cannot be undone: (the workflows' path, step, action).
fn no_return_in(
    name: &str,
    known: &BTreeMap<String, &Callable>,
    seen: &mut BTreeSet<String>,
) -> Option<(String, String, String)> {
    if !seen.insert(name.to_owned()) {
        return None;
    }
    let c = known.get(name)?;
    if let Some((step, action)) = &c.no_return {
        return Some((format!("`{name}`"), step.clone(), action.clone()));
    }
    c.calls.iter().filter(|call| !call.conditional).find_map(|call| {
        let (path, step, action) = no_return_in(&call.workflow.value, known, seen)?;
        Some((format!("`{name}` → {path}"), step, action))
    })
}

fn unknown(call: &CallSite, known: &BTreeMap<String, &Callable>) -> Diagnostic {
    let name = &call.workflow.value;
    Diagnostic::new(Code::UnknownWorkflow, call.workflow.span, format!("there is no workflow `{name}` to run"))
        .maybe_help(did_you_mean(name, known.keys().map(String::as_str)))
        .help_if_none("`workflow.run` runs a workflow of the same directory, by its `name:`")
}

/// The call's `input` against the child's `input:`.
fn check_input(call: &CallSite, child: &Callable) -> Vec<Diagnostic> {
    let Some(schema) = &child.input else { return Vec::new() };
    let Ok(validator) = jsonschema::draft202012::new(schema) else { return Vec::new() };
    let empty = Node { value: crate::dsl::node::Value::Map(Vec::new()), span: call.workflow.span };
    let input = call.input.as_ref().unwrap_or(&empty);
    if input.as_str().is_some_and(is_template) {
        return Vec::new();
    }
    let whose = format!("the input of workflow `{}`", call.workflow.value);
    super::steps::check_instance(input, &validator, schema, "input", &whose)
}

/// The circle a call closes, if the callee leads back to the caller: `[a, b, a]`.
fn circle(caller: &str, callee: &str, known: &BTreeMap<String, &Callable>) -> Option<Vec<String>> {
    let mut path = vec![caller.to_owned()];
    let mut seen = BTreeSet::new();
    if leads_to(callee, caller, known, &mut seen, &mut path) {
        return Some(path);
    }
    None
}

/// Depth first from `from` to `to`; `path` holds the way when found.
fn leads_to(
    from: &str,
    to: &str,
    known: &BTreeMap<String, &Callable>,
    seen: &mut BTreeSet<String>,
    path: &mut Vec<String>,
) -> bool {
    path.push(from.to_owned());
    if from == to {
        return true;
    }
    if seen.insert(from.to_owned()) {
        for call in known.get(from).map(|c| c.calls.as_slice()).unwrap_or_default() {
            if leads_to(&call.workflow.value, to, known, seen, path) {
                return true;
            }
        }
    }
    path.pop();
    false
}

fn cycle(call: &CallSite, circle: &[String]) -> Diagnostic {
    let shown = circle.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" → ");
    let message = match circle.len() {
        2 => format!("workflow `{}` runs itself, so its runs would never end", circle[0]),
        _ => format!("these workflows run each other in a circle, so their runs would never end: {shown}"),
    };
    Diagnostic::new(Code::WorkflowCycle, call.workflow.span, message)
        .help("a workflow may run others, but none may lead back to itself; repeat a step with `repeat:` instead")
}

/// The workflows in the folders of the checked files that were not checked
/// (read only when some checked file has a call).
fn neighbours(files: &[PathBuf], registry: &Registry) -> Vec<Callable> {
    let checked: BTreeSet<&Path> = files.iter().map(PathBuf::as_path).collect();
    let dirs: BTreeSet<PathBuf> =
        files.iter().map(|f| f.parent().map_or_else(|| PathBuf::from("."), Path::to_path_buf)).collect();
    let mut out = Vec::new();
    for dir in dirs {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        let Ok(found) = super::collect_files(std::slice::from_ref(&dir)) else { continue };
        for file in found.iter().filter(|f| !checked.contains(f.as_path())) {
            let loaded = crate::dsl::loader::load_path(file);
            if let Ok(root) = loaded.root {
                if let (Some(w), _) = crate::dsl::parser::parse_workflow(root) {
                    out.push(Callable::of(&w, registry));
                }
            }
        }
    }
    out
}
