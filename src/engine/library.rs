//! Where the engine finds the workflow a `workflow.run` step names (DSL.md
//! B1): the version active when the child starts. `serve` answers from its
//! catalog (hot reloads included); the commands that run a file answer from
//! the file's directory, read once when a child first asks.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::compiled::CompiledWorkflow;
use crate::actions::Registry;

/// The workflows a run's children are started from.
pub(crate) trait Library: Send + Sync {
    /// The version of workflow `name` active now. The error says why there is
    /// none in words a person can act on ("did you mean").
    fn active(&self, name: &str) -> Result<Arc<CompiledWorkflow>, String>;
}

/// No workflows: every child fails to start, saying so.
pub(crate) struct NoLibrary;

impl Library for NoLibrary {
    fn active(&self, name: &str) -> Result<Arc<CompiledWorkflow>, String> {
        Err(format!("there is no workflow `{name}`: no workflows directory is loaded here"))
    }
}

/// A fixed set of workflows, by name (benchmarks and tests).
pub(crate) struct Shelf(pub BTreeMap<String, Arc<CompiledWorkflow>>);

impl Shelf {
    pub(crate) fn of(workflows: impl IntoIterator<Item = Arc<CompiledWorkflow>>) -> Shelf {
        Shelf(workflows.into_iter().map(|wf| (wf.name.clone(), wf)).collect())
    }
}

impl Library for Shelf {
    fn active(&self, name: &str) -> Result<Arc<CompiledWorkflow>, String> {
        let hint = || crate::base::suggest::hint(name, self.0.keys().map(String::as_str));
        self.0.get(name).cloned().ok_or_else(|| format!("there is no workflow `{name}`{}", hint()))
    }
}

/// The workflows of a directory, compiled when a child first asks.
pub(crate) struct Directory {
    dir: PathBuf,
    registry: Arc<Registry>,
    /// Name → the compiled version, or why the file that declares it cannot run.
    loaded: OnceLock<BTreeMap<String, Result<Arc<CompiledWorkflow>, String>>>,
}

impl Directory {
    /// The workflows of `dir` (the current one when empty: a bare file's folder).
    pub(crate) fn new(dir: PathBuf, registry: Arc<Registry>) -> Directory {
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir };
        Directory { dir, registry, loaded: OnceLock::new() }
    }

    fn load(&self) -> BTreeMap<String, Result<Arc<CompiledWorkflow>, String>> {
        let mut out = BTreeMap::new();
        let Ok(files) = crate::validate::collect_files(std::slice::from_ref(&self.dir)) else { return out };
        for file in files {
            let loaded = crate::dsl::loader::load_path(&file);
            let Some(name) = loaded.declared_name().map(str::to_owned) else { continue };
            let compiled = CompiledWorkflow::compile(&file, &loaded.file.text, &self.registry).map_err(|_| {
                format!("the workflow `{name}` ({}) has errors; `sagaflow validate` says which", file.display())
            });
            out.entry(name).or_insert(compiled);
        }
        out
    }
}

impl Library for Directory {
    fn active(&self, name: &str) -> Result<Arc<CompiledWorkflow>, String> {
        let loaded = self.loaded.get_or_init(|| self.load());
        match loaded.get(name) {
            Some(found) => found.clone(),
            None => {
                let hint = crate::base::suggest::hint(name, loaded.keys().map(String::as_str));
                Err(format!("there is no workflow `{name}` in {}{hint}", self.dir.display()))
            }
        }
    }
}
