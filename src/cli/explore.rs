//! `sagaflow explore WORKFLOW [--input JSON|@FILE] [--crash] [--format human|json]`:
//! every failure point of a workflow, each on a fresh sandbox; exit 1 when a
//! point leaks, doubles an effect, or ends in a status a clean flow does not.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{runtime, usage_error, RunFormat};
use crate::engine::compiled::{CompiledWorkflow, NotRunnable};
use crate::engine::library::Directory;
use crate::explore::{explore, summary, Ground, Point};
use crate::validate::render;
use std::sync::Arc;

#[derive(clap::Args)]
pub(super) struct Args {
    /// A workflow file, or the name of a workflow in the workflows directory.
    workflow: String,
    /// The run input: JSON text or @FILE (default: workflows/examples/<name>/happy.json, else the first example there, else `{}`).
    #[arg(long)]
    input: Option<String>,
    /// Where to look for a workflow given by name, and its examples.
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,
    /// Also crash after every step's effect, before its checkpoint, and resume.
    #[arg(long)]
    crash: bool,
    /// Run each point on a database of its own on this PostgreSQL server (created, then
    /// dropped) instead of a fresh sled folder: the store production uses.
    #[arg(long, value_name = "postgres://...")]
    store: Option<String>,
    #[command(flatten)]
    output: super::Output,
}

pub(super) fn run(args: Args, setup: &super::setup::Setup) -> ExitCode {
    let (path, source) = match super::run::find_workflow(&args.workflow, &args.workflows) {
        Ok(found) => found,
        Err(e) => return usage_error(&e),
    };
    let (config, seed) = match setup.config().and_then(|c| Ok((c.seed().map_err(|e| e.0)?, c))) {
        Ok((seed, config)) => (Arc::new(config), seed),
        Err(e) => return usage_error(&e),
    };
    // Checked against the config's templates, as `validate` does.
    let registry = match crate::config::registry::for_config(&config) {
        Ok(registry) => registry,
        Err(e) => return usage_error(&e.0),
    };
    let wf = match CompiledWorkflow::compile(&path, &source, &registry) {
        Ok(wf) => wf,
        Err(NotRunnable(report)) => {
            eprint!("{}", render::human(std::slice::from_ref(&report), false));
            return usage_error(&format!("{} has errors; it cannot be explored", path.display()));
        }
    };
    let given = args.input.clone().or_else(|| first_example(&args.workflows, &wf.name));
    let input = match crate::base::input::read_input(given.as_deref().unwrap_or("{}")) {
        Ok(input) => input,
        Err(e) => return usage_error(&e),
    };
    if let Some(e) = wf.check_input(&input) {
        return usage_error(&format!("{} ({})", e.message, given.as_deref().unwrap_or("{}")));
    }
    let started = std::time::Instant::now();
    // The children it starts come from its own folder.
    let dir = path.parent().map_or_else(PathBuf::new, Path::to_path_buf);
    let scratch = match setup.scratch(args.store.as_deref()) {
        Ok(scratch) => scratch,
        Err(e) => return usage_error(&e),
    };
    let ground = Ground { seed, library: Arc::new(Directory::new(dir, registry)), config, scratch };
    let points = match runtime().block_on(explore(wf.clone(), input, ground, args.crash)) {
        Ok(points) => points,
        Err(e) => return usage_error(&e),
    };
    match args.output.format {
        RunFormat::Json => println!("{}", serde_json::to_string(&points).unwrap_or_default()),
        RunFormat::Human => print!("{}", table(&wf.name, given.as_deref(), &points, started.elapsed())),
    }
    match points.iter().all(|p| p.problems.is_empty()) {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    }
}

/// `workflows/examples/<name>/happy.json`, else the first `*.json` there by name, as `@FILE`.
fn first_example(workflows: &Path, name: &str) -> Option<String> {
    let dir = workflows.join("examples").join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort_by_key(|f| (f.file_name().is_none_or(|n| n != "happy.json"), f.clone()));
    files.first().map(|f| format!("@{}", f.display()))
}

fn table(name: &str, input: Option<&str>, points: &[Point], took: std::time::Duration) -> String {
    let width = points.iter().map(|p| p.point.len()).max().unwrap_or(5).max(11);
    let mut out = format!("explore {name} with input {}\n\n", input.unwrap_or("{}"));
    out.push_str(&format!("  {:width$}  {:20}  {:36}  leaks\n", "failure at", "status", "compensations run"));
    for p in points {
        let comps = if p.compensations.is_empty() { "-".to_owned() } else { p.compensations.join(", ") };
        let leaks = if p.leaks.is_empty() { "-".to_owned() } else { p.leaks.join("; ") };
        match &p.not_reached {
            Some(why) => out.push_str(&format!("  {:width$}  not reached: {why}\n", p.point)),
            None => out.push_str(&format!("  {:width$}  {:20}  {:36}  {leaks}\n", p.point, p.status, comps)),
        }
        for problem in &p.problems {
            out.push_str(&format!("  {:width$}  ^ problem: {problem}\n", ""));
        }
    }
    let counts = summary(points);
    let parts: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    out.push_str(&format!("\n{} points: {} ({:.2} s)\n", points.len(), parts.join(", "), took.as_secs_f64()));
    out
}
