//! Static analysis of workflow files: loader → structure (JSON Schema) → parser →
//! semantic checks, each stage reporting diagnostics with exact positions.

pub(crate) mod calls;
pub(crate) mod comparisons;
pub(crate) mod graph;
pub(crate) mod instance;
pub(crate) mod render;
pub(crate) mod saga;
pub(crate) mod schema_refs;
pub(crate) mod steps;
pub(crate) mod structure;
pub(crate) mod templates;
pub(crate) mod timing;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::actions::Registry;
use crate::dsl::diagnostic::{Code, Diagnostic, FileReport, Related};
use crate::dsl::loader::{load_bytes, load_path, Loaded};
use crate::dsl::model::Workflow;
use crate::dsl::parser::parse_workflow;
use graph::Graph;
use structure::WorkflowSchema;
use templates::TemplateChecker;

/// A checked file: its report, and its model when it parsed.
pub struct Checked {
    pub report: FileReport,
    pub workflow: Option<Workflow>,
}

impl Checked {
    pub fn has_errors(&self) -> bool {
        self.report.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Checks one workflow given as text (the API's `POST /v1/validate` and tests).
pub fn check_text(path: &Path, text: &[u8], registry: &Registry) -> Checked {
    check_loaded(load_bytes(path, text), registry)
}

/// Checks one file on disk.
pub(crate) fn check_file(path: &Path, registry: &Registry) -> Checked {
    check_loaded(load_path(path), registry)
}

fn check_loaded(loaded: Loaded, registry: &Registry) -> Checked {
    let Loaded { file, root } = loaded;
    let mut diagnostics = Vec::new();
    let workflow = match root {
        Err(d) => {
            diagnostics.push(d);
            None
        }
        Ok(root) => {
            // Structure first; the semantic checks still run on what could be read,
            // so one pass shows every problem (repeats at one place are merged).
            diagnostics = WorkflowSchema::get().check(&root);
            let (workflow, found) = parse_workflow(root);
            diagnostics.extend(found);
            if let Some(w) = &workflow {
                analyze(&file, w, registry, &mut diagnostics);
            }
            workflow
        }
    };
    let mut report = FileReport { file, diagnostics };
    report.normalize();
    Checked { report, workflow }
}

/// The semantic checks of a structurally valid workflow.
fn analyze(file: &crate::dsl::span::SourceFile, workflow: &Workflow, registry: &Registry, out: &mut Vec<Diagnostic>) {
    let graph = Graph::build(workflow, out);
    steps::check_steps(workflow, registry, out);
    steps::check_triggers(workflow, out);
    steps::check_input_schema(workflow, out);
    timing::check_timing(workflow, out);
    saga::check_saga(&graph, registry, out);
    TemplateChecker::new(file, workflow, &graph, registry, out).check();
}

/// A path given on the command line that cannot be checked.
#[derive(Debug)]
pub(crate) struct UsageError(pub String);

/// The workflow files under the given paths: files as given, directories
/// recursively (`*.yaml`/`*.yml`, test files `*.test.yaml` and hidden folders left out).
pub(crate) fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, UsageError> {
    collect_files_named(paths, is_workflow_file)
}

/// The files under the given paths: files as given, directories recursively
/// (hidden folders left out, links not followed), those whose name `keep` takes.
pub(crate) fn collect_files_named(paths: &[PathBuf], keep: fn(&str) -> bool) -> Result<Vec<PathBuf>, UsageError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| UsageError(format!("cannot read `{}`: {e}", path.display())))?;
        if meta.is_dir() {
            walk(path, &mut files, keep);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

const MAX_WALK_DEPTH: usize = 32;

/// The files under `dir` that `keep` takes by name, in name order, depth
/// first; hidden entries (and what is under them) are left out, links are not
/// followed into, and nothing deeper than [`MAX_WALK_DEPTH`] is read.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, keep: fn(&str) -> bool) {
    let hidden = |e: &walkdir::DirEntry| e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
    let walker = walkdir::WalkDir::new(dir).max_depth(MAX_WALK_DEPTH + 1).sort_by_file_name();
    for entry in walker.into_iter().filter_entry(|e| !hidden(e)).filter_map(Result::ok) {
        let name = entry.file_name().to_str().unwrap_or_default();
        if !entry.file_type().is_dir() && keep(name) {
            files.push(entry.into_path());
        }
    }
}

/// `*.yaml` or `*.yml`, but not a test file (`*.test.yaml`).
pub(crate) fn is_workflow_file(name: &str) -> bool {
    let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
    yaml && !is_test_file(name)
}

/// A test file of `sagaflow test`: `*.test.yaml` or `*.test.yml`.
pub(crate) fn is_test_file(name: &str) -> bool {
    name.ends_with(".test.yaml") || name.ends_with(".test.yml")
}

/// What is kept of a checked file once its model is no longer needed.
struct Summary {
    report: FileReport,
    name: Option<crate::dsl::span::Spanned<String>>,
    callable: calls::Callable,
}

/// Checks many files on all cores, then the rules across files (unique names).
/// Each file's model is dropped as soon as it is checked, so memory stays flat.
pub(crate) fn check_files(files: &[PathBuf], registry: &Registry) -> Vec<FileReport> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(files.len()).max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, Summary)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = files.get(i) else { break };
                        let check = std::panic::AssertUnwindSafe(|| check_file(path, registry));
                        if let Ok(c) = std::panic::catch_unwind(check) {
                            let callable =
                                c.workflow.as_ref().map(|w| calls::Callable::of(w, registry)).unwrap_or_default();
                            let name = c.workflow.map(|w| w.name);
                            done.push((i, Summary { report: c.report, name, callable }));
                        }
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().unwrap_or_default()).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut results = results.into_iter().peekable();
    // A file whose check panicked (a bug) is reported, never silently dropped.
    let mut summaries: Vec<Summary> = Vec::with_capacity(files.len());
    for (i, path) in files.iter().enumerate() {
        match results.next_if(|(j, _)| *j == i) {
            Some((_, s)) => summaries.push(s),
            None => summaries.push(internal_error(path)),
        }
    }
    check_unique_names(&mut summaries);
    let (callables, mut reports): (Vec<_>, Vec<_>) = summaries.into_iter().map(|s| (s.callable, s.report)).unzip();
    calls::check_calls(files, &callables, &mut reports, registry);
    reports
}

fn internal_error(path: &Path) -> Summary {
    let file = crate::dsl::span::SourceFile::new(path, String::new());
    let message = "sagaflow failed while checking this file; this is a bug, please report it with the file";
    let diagnostics = vec![Diagnostic::new(Code::Internal, crate::dsl::span::Span::default(), message)];
    Summary { report: FileReport { file, diagnostics }, name: None, callable: calls::Callable::default() }
}

fn check_unique_names(summaries: &mut [Summary]) {
    let mut first: HashMap<String, (Arc<crate::dsl::span::SourceFile>, crate::dsl::span::Span)> = HashMap::new();
    for s in summaries.iter_mut() {
        let Some(name) = s.name.as_ref().filter(|n| !n.value.is_empty()) else { continue };
        match first.get(&name.value) {
            None => {
                first.insert(name.value.clone(), (s.report.file.clone(), name.span));
            }
            Some((file, span)) => {
                let d = Diagnostic::new(
                    Code::DuplicateWorkflow,
                    name.span,
                    format!("the workflow name `{}` is already used by {}", name.value, file.path.display()),
                )
                .help("workflow names are unique across a directory; rename one of them")
                .related(Related {
                    file: file.clone(),
                    span: *span,
                    label: "the name is first used here".into(),
                });
                s.report.diagnostics.push(d);
                s.report.normalize();
            }
        }
    }
}
