//! `sagaflow run FILE|NAME [--input JSON|@FILE] [--data DIR] [--format human|json]`

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{output, runtime, usage_error};
use crate::engine::compiled::{CompiledWorkflow, NotRunnable};
use crate::engine::driver::NewRun;
use crate::explore::harness::{self, World};
use crate::validate::render;

#[derive(clap::Args)]
pub(super) struct Args {
    /// A workflow file, or the name of a workflow in the workflows directory.
    workflow: String,
    /// The run input: JSON text, or @FILE to read it from a file.
    #[arg(long, default_value = "{}")]
    input: String,
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    joining: super::Joining,
    /// Where to look for a workflow given by name.
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,
    #[command(flatten)]
    output: super::Output,
    /// Fail a step's attempts at dispatch: STEP[=CODE][xN], or STEP.compensate[=CODE][xN]
    /// for its compensation (CODE defaults to `unavailable`; xN: only the first N attempts).
    #[arg(long = "fail", value_name = "STEP[=CODE][xN]")]
    fail: Vec<String>,
    /// Answer every `event.wait` at once with an event of data `{}` (recorded as
    /// sent): to try a flow that waits for a person without waiting.
    #[arg(long)]
    answer_waits: bool,
    #[command(flatten)]
    server: super::Server,
}

pub(super) fn run(args: Args, setup: &super::setup::Setup) -> ExitCode {
    if let Some(server) = &args.server.url {
        return run_on_server(server, &args);
    }
    let (path, source) = match find_workflow(&args.workflow, &args.workflows) {
        Ok(found) => found,
        Err(e) => return usage_error(&e),
    };
    let (store, backends) = match setup.open(&args.data, &args.joining, "run") {
        Ok(opened) => opened,
        Err(e) => return usage_error(&e),
    };
    let registry = backends.registry.clone();
    let wf = match CompiledWorkflow::compile(&path, &source, &registry) {
        Ok(wf) => wf,
        Err(NotRunnable(report)) => {
            eprint!("{}", render::human(std::slice::from_ref(&report), false));
            return usage_error(&format!("{} has errors; it cannot run", path.display()));
        }
    };
    let input = match crate::base::input::read_input(&args.input) {
        Ok(input) => input,
        Err(e) => return usage_error(&e),
    };
    // A file's children come from its own folder; a name's from the workflows directory.
    let children = match Path::new(&args.workflow).is_file() {
        true => path.parent().map_or_else(PathBuf::new, Path::to_path_buf),
        false => args.workflows.clone(),
    };
    let library = crate::engine::library::Directory::new(children.clone(), registry.clone());
    let parsed = args.fail.iter().map(|f| crate::engine::inject::parse(f, &wf, &library));
    let inject = match parsed.collect::<Result<Vec<_>, _>>() {
        Ok(inject) => inject,
        Err(e) => return usage_error(&e),
    };
    let record = runtime().block_on(async move {
        let started = super::setup::start(store.clone(), &backends, &args.workflows, &children);
        let engine = started.engine.clone();
        let seen = engine.transitions();
        let run = NewRun { inject, ..NewRun::of(wf.clone(), input) };
        let run_id = engine.start_new(run).await.map_err(|e| e.message)?.run_id;
        let ended = match args.answer_waits {
            // Waits are answered as they begin; time is the system's.
            true => harness::follow(&engine, &run_id, &World::default(), seen).await,
            false => engine.wait(&run_id).await,
        };
        let record = ended.ok_or_else(|| match engine.metrics().storage.error() {
            Some(e) => {
                format!("the store could not write ({e}); run {run_id} goes on with `sagaflow resume` once it can")
            }
            None => format!("the engine stopped before run {run_id} ended"),
        });
        started.finish().await;
        record
    });
    match record {
        Ok(record) => output::print_run(&record, args.output.format),
        Err(e) => usage_error(&e),
    }
}

/// A path to a file, or a workflow name looked up in a directory.
pub(super) fn find_workflow(given: &str, dir: &Path) -> Result<(PathBuf, String), String> {
    let path = Path::new(given);
    if path.is_file() {
        let source = read_workflow_text(path)?;
        return Ok((path.to_owned(), source));
    }
    let files = crate::validate::collect_files(&[dir.to_owned()]).map_err(|_| {
        format!("there is no file `{given}`, and no workflows directory {} to find it by name", dir.display())
    })?;
    let mut names = Vec::new();
    for file in files {
        let loaded = crate::dsl::loader::load_path(&file);
        match loaded.declared_name() {
            Some(name) if name == given => return Ok((file, loaded.file.text.clone())),
            Some(name) => names.push(name.to_owned()),
            None => {}
        }
    }
    let hint = crate::base::suggest::hint(given, names.iter().map(String::as_str));
    Err(format!("there is no file `{given}` and no workflow named `{given}` in {}{hint}", dir.display()))
}

/// `run NAME --server URL`: the server runs its own workflow of that name.
fn run_on_server(server: &str, args: &Args) -> ExitCode {
    if !args.fail.is_empty() || args.answer_waits {
        return usage_error("--fail and --answer-waits are for local runs; leave them out with --server");
    }
    let name = match Path::new(&args.workflow).is_file() {
        true => match crate::dsl::loader::load_path(Path::new(&args.workflow)).declared_name() {
            Some(name) => name.to_owned(),
            None => {
                return usage_error(&format!("{} has no `name:`; the server runs workflows by name", args.workflow))
            }
        },
        false => args.workflow.clone(),
    };
    match crate::base::input::read_input(&args.input) {
        Ok(input) => super::client::run(server, &name, input, args.output.format),
        Err(e) => usage_error(&e),
    }
}

/// A workflow file's text: a regular file within the loader's bound.
fn read_workflow_text(path: &Path) -> Result<String, String> {
    crate::base::file::read_regular_text(path, crate::dsl::loader::MAX_FILE_BYTES as u64)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}
