//! The workflows a server runs: every file of its directory, compiled, with
//! the active version of each workflow name.
//!
//! Invariants: a reload builds a whole new [`Snapshot`] and swaps it in at once
//! (nothing is reloaded half-way); a file that does not validate keeps the
//! version it had active; a deleted file's workflow takes no new runs; a run
//! keeps the version it started on (the engine holds it, the store has a copy).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use serde::Serialize;
use serde_json::Value as Json;

use crate::actions::Registry;
use crate::base::clock::now_ms;
use crate::base::ids::content_hash;
use crate::dsl::diagnostic::{Code, Diagnostic, FileReport};
use crate::dsl::loader;
use crate::dsl::span::{SourceFile, Span};
use crate::engine::compiled::{CompiledWorkflow, NotRunnable};
use crate::validate::render;

/// One file of the directory as last read.
#[derive(Clone)]
pub(crate) struct FileState {
    pub file: PathBuf,
    /// The `name:` it declares, when it could be read.
    pub name: Option<String>,
    /// The hash of the text last read, to skip files that did not change.
    source_hash: String,
    /// The version new runs of this workflow get: the last one that validated.
    pub active: Option<Arc<CompiledWorkflow>>,
    /// The `--format json` report of the last read, when it had errors.
    pub diagnostics: Option<Json>,
    /// When the file was last read (milliseconds since the epoch).
    pub loaded_at: u64,
}

impl FileState {
    pub(crate) fn is_valid(&self) -> bool {
        self.diagnostics.is_none()
    }

    /// The name to show: the declared one, or the file's stem.
    pub(crate) fn display_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default())
    }
}

/// Everything the server knows of its workflows at one moment.
#[derive(Clone, Default)]
pub(crate) struct Snapshot {
    pub files: BTreeMap<PathBuf, FileState>,
    /// Workflow name → the file whose active version runs under it.
    by_name: BTreeMap<String, PathBuf>,
    /// Counts reloads; 0 before the first.
    pub generation: u64,
}

impl Snapshot {
    /// The active version of a workflow, by name.
    pub(crate) fn active(&self, name: &str) -> Option<Arc<CompiledWorkflow>> {
        self.files.get(self.by_name.get(name)?)?.active.clone()
    }

    /// The file state behind a name: the active one, else a file that declares it.
    pub(crate) fn file_of(&self, name: &str) -> Option<&FileState> {
        match self.by_name.get(name) {
            Some(path) => self.files.get(path),
            None => self.files.values().find(|f| f.display_name() == name),
        }
    }

    /// Every active version.
    pub(crate) fn all_active(&self) -> Vec<Arc<CompiledWorkflow>> {
        self.by_name.values().filter_map(|p| self.files.get(p)?.active.clone()).collect()
    }

    pub(crate) fn names(&self) -> impl Iterator<Item = &String> {
        self.by_name.keys()
    }

    /// "there is no workflow `x`", with "did you mean" when a name is close.
    pub(crate) fn no_workflow(&self, name: &str) -> String {
        let hint = crate::base::suggest::hint(name, self.names().map(String::as_str));
        format!("there is no workflow `{name}`{hint}")
    }
}

/// The engine starts a `workflow.run` step's child on the version active now.
impl crate::engine::library::Library for Catalog {
    fn active(&self, name: &str) -> Result<Arc<CompiledWorkflow>, String> {
        let snapshot = self.snapshot();
        snapshot.active(name).ok_or_else(|| snapshot.no_workflow(name))
    }
}

/// What one reload changed, per workflow name.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub(crate) enum Change {
    Added {
        workflow: String,
        version: String,
    },
    Updated {
        workflow: String,
        from: String,
        to: String,
    },
    Removed {
        workflow: String,
        version: String,
    },
    /// The file validates again with the content of the version still
    /// active (its last good content restored): its diagnostics are gone.
    Restored {
        workflow: String,
        file: String,
        version: String,
    },
    /// The file does not validate; `active` is the version still serving, if any.
    Invalid {
        workflow: String,
        file: String,
        active: Option<String>,
        errors: u64,
    },
}

impl Change {
    pub(crate) fn workflow(&self) -> &str {
        match self {
            Change::Added { workflow, .. }
            | Change::Updated { workflow, .. }
            | Change::Removed { workflow, .. }
            | Change::Restored { workflow, .. }
            | Change::Invalid { workflow, .. } => workflow,
        }
    }
}

/// The workflows directory and its current snapshot.
pub(crate) struct Catalog {
    dir: PathBuf,
    registry: Arc<Registry>,
    current: RwLock<Arc<Snapshot>>,
    /// One reload at a time.
    reloading: Mutex<()>,
    /// Tells the scheduler and others that a new snapshot is in.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Catalog {
    pub(crate) fn new(dir: &Path, registry: Arc<Registry>) -> Catalog {
        Catalog {
            dir: dir.to_owned(),
            registry,
            current: RwLock::default(),
            reloading: Mutex::new(()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Woken after every reload that changed something.
    pub(crate) fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Reads the directory again: changed files are compiled, the rest kept.
    /// Answers what changed. Blocking (it reads files).
    pub(crate) fn reload(&self) -> Vec<Change> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.snapshot();
        let files = match crate::validate::collect_files(std::slice::from_ref(&self.dir)) {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), error = %e.0, "cannot read the workflows directory; no workflows");
                Vec::new()
            }
        };
        let mut next = Snapshot { generation: old.generation + 1, ..Snapshot::default() };
        for file in files {
            let known = old.files.get(&file);
            let state = match loader::read_bounded(&file) {
                Err(unreadable) => invalid(&file, String::new(), known, report_of(&file, "", unreadable)),
                Ok(bytes) => {
                    let source_hash = content_hash(&String::from_utf8_lossy(&bytes));
                    match known {
                        Some(known) if known.source_hash == source_hash => known.clone(),
                        _ => self.load(&file, bytes, source_hash, known),
                    }
                }
            };
            next.files.insert(file, state);
        }
        assign_names(&old, &mut next);
        let changes = changes(&old, &next);
        if changes.is_empty() && old.generation > 0 {
            return changes;
        }
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(next);
        self.changed.send_replace(old.generation + 1);
        changes
    }

    /// Compiles one file's bytes; a file that does not validate keeps the
    /// version it had (`known`).
    fn load(&self, file: &Path, bytes: Vec<u8>, source_hash: String, known: Option<&FileState>) -> FileState {
        let source = match String::from_utf8(bytes) {
            Ok(source) => source,
            Err(e) => {
                let report = crate::validate::check_text(file, e.as_bytes(), &self.registry).report;
                return invalid(file, source_hash, known, report);
            }
        };
        match CompiledWorkflow::compile(file, &source, &self.registry) {
            Ok(wf) => FileState {
                file: file.to_owned(),
                name: Some(wf.name.clone()),
                source_hash,
                active: Some(wf),
                diagnostics: None,
                loaded_at: now_ms(),
            },
            Err(NotRunnable(report)) => {
                tracing::warn!(
                    file = %file.display(),
                    "the workflow file has errors; the version before stays active:\n{}",
                    render::human(std::slice::from_ref(&report), false)
                );
                let mut state = invalid(file, source_hash, known, report);
                let declared = loader::load_bytes(file, source.as_bytes()).declared_name().map(str::to_owned);
                state.name = declared.or(state.name);
                state
            }
        }
    }
}

/// A file that does not validate: its report, and the version it had, if any.
fn invalid(file: &Path, source_hash: String, known: Option<&FileState>, report: FileReport) -> FileState {
    FileState {
        file: file.to_owned(),
        name: known.and_then(|k| k.name.clone()),
        source_hash,
        active: known.and_then(|k| k.active.clone()),
        diagnostics: Some(render::json(std::slice::from_ref(&report))),
        loaded_at: now_ms(),
    }
}

/// A report of one diagnostic about a file (at its start when the text is not at hand).
fn report_of(file: &Path, text: &str, diagnostic: Diagnostic) -> FileReport {
    FileReport { file: SourceFile::new(file, text.to_owned()), diagnostics: vec![diagnostic] }
}

/// Who owns each name: the file that owned it before if it still declares it,
/// else the first file (in path order) with a valid version of it. Another file
/// declaring a taken name is invalid.
fn assign_names(old: &Snapshot, next: &mut Snapshot) {
    let mut owners: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (name, path) in &old.by_name {
        let still = next.files.get(path).is_some_and(|f| f.active.as_ref().is_some_and(|a| &a.name == name));
        if still {
            owners.insert(name.clone(), path.clone());
        }
    }
    let paths: Vec<PathBuf> = next.files.keys().cloned().collect();
    for path in paths {
        let Some(state) = next.files.get_mut(&path) else { continue };
        let Some(name) = state.active.as_ref().map(|a| a.name.clone()) else { continue };
        match owners.get(&name) {
            None => {
                owners.insert(name, path);
            }
            Some(owner) if owner == &path => {}
            Some(owner) => {
                let message = format!("the workflow name `{name}` is already used by {}", owner.display());
                let d = Diagnostic::new(Code::DuplicateWorkflow, Span::default(), message)
                    .help("workflow names are unique across a directory; rename one of them");
                let source = state.active.take().map(|a| a.source.clone()).unwrap_or_default();
                state.diagnostics = Some(render::json(&[report_of(&path, &source, d)]));
            }
        }
    }
    next.by_name = owners;
}

fn changes(old: &Snapshot, next: &Snapshot) -> Vec<Change> {
    let mut out = Vec::new();
    for name in next.by_name.keys() {
        let to = next.active(name).map(|w| w.hash.clone()).unwrap_or_default();
        match old.active(name).map(|w| w.hash.clone()) {
            None => out.push(Change::Added { workflow: name.clone(), version: to }),
            Some(from) if from != to => out.push(Change::Updated { workflow: name.clone(), from, to }),
            Some(_) => {}
        }
    }
    for name in old.by_name.keys().filter(|n| !next.by_name.contains_key(*n)) {
        let version = old.active(name).map(|w| w.hash.clone()).unwrap_or_default();
        out.push(Change::Removed { workflow: name.clone(), version });
    }
    for (path, state) in &next.files {
        let was_invalid = old.files.get(path).is_some_and(|o| !o.is_valid());
        if let (true, None, Some(active)) = (was_invalid, &state.diagnostics, &state.active) {
            let name = state.display_name();
            // A new version is `Added` or `Updated` already; the same one is restored.
            if old.active(&name).is_some_and(|w| w.hash == active.hash) {
                out.push(Change::Restored {
                    workflow: name,
                    file: path.display().to_string(),
                    version: active.hash.clone(),
                });
            }
        }
        let Some(report) = &state.diagnostics else { continue };
        let was_same = old.files.get(path).is_some_and(|o| o.source_hash == state.source_hash && !o.is_valid());
        if !was_same {
            out.push(Change::Invalid {
                workflow: state.display_name(),
                file: path.display().to_string(),
                active: state.active.as_ref().map(|a| a.hash.clone()),
                errors: report["errors"].as_u64().unwrap_or(0),
            });
        }
    }
    out
}
