//! `show`, `runs` and `resume`: reading and continuing what the store holds.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{output, runtime, usage_error, RunFormat};
use crate::actions::Registry;
use crate::engine::driver::{Engine, EngineOptions};
use crate::engine::record::RunRecord;
use crate::engine::{replay, Versions};
use crate::store::sled::SledStore;
use crate::store::ReadRuns;

#[derive(clap::Args)]
pub struct ShowArgs {
    run_id: String,
    #[arg(long, default_value = ".sagaflow")]
    data: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    format: RunFormat,
}

pub fn show(args: ShowArgs) -> ExitCode {
    let store = match SledStore::open(&args.data) {
        Ok(store) => store,
        Err(e) => return usage_error(&e.0),
    };
    match replay(&store, &mut Versions::default(), &args.run_id, Registry::builtin()) {
        Ok(state) => output::print_run(&RunRecord::of(&state), args.format),
        Err(e) => usage_error(&e),
    }
}

#[derive(clap::Args)]
pub struct RunsArgs {
    /// Only runs with this status.
    #[arg(long)]
    status: Option<String>,
    /// Only runs of this workflow.
    #[arg(long)]
    workflow: Option<String>,
    #[arg(long, default_value = ".sagaflow")]
    data: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    format: RunFormat,
}

pub fn runs(args: RunsArgs) -> ExitCode {
    let store = match SledStore::open(&args.data) {
        Ok(store) => store,
        Err(e) => return usage_error(&e.0),
    };
    let runs = match store.runs() {
        Ok(runs) => runs,
        Err(e) => return usage_error(&e.0),
    };
    let runs: Vec<_> = runs
        .into_iter()
        .filter(|r| args.status.as_ref().is_none_or(|s| &r.status == s))
        .filter(|r| args.workflow.as_ref().is_none_or(|w| &r.workflow == w))
        .collect();
    match args.format {
        RunFormat::Json => println!("{}", serde_json::to_string(&runs).unwrap_or_default()),
        RunFormat::Human => {
            println!("{:20}  {:24}  {:20}", "run", "workflow", "status");
            for r in &runs {
                println!("{:20}  {:24}  {:20}", r.run_id, r.workflow, r.status);
            }
        }
    }
    ExitCode::SUCCESS
}

#[derive(clap::Args)]
pub struct ResumeArgs {
    #[arg(long, default_value = ".sagaflow")]
    data: PathBuf,
    #[arg(long, value_enum, default_value = "human")]
    format: RunFormat,
}

pub fn resume(args: ResumeArgs) -> ExitCode {
    let (store, backends) = match super::setup::open(&args.data) {
        Ok(opened) => opened,
        Err(e) => return usage_error(&e),
    };
    let unfinished = match store.runs() {
        Ok(runs) => runs.into_iter().filter(|r| !r.is_finished()).collect::<Vec<_>>(),
        Err(e) => return usage_error(&e.0),
    };
    let registry = backends.registry;
    let records: Result<Vec<RunRecord>, String> = runtime().block_on(async move {
        let engine = Engine::start(store.clone(), registry, EngineOptions::default());
        let mut versions = Versions::default();
        for meta in &unfinished {
            let wf = versions.get(store.as_ref(), &meta.hash, registry)?;
            let entries = store.entries(&meta.run_id).map_err(|e| e.0)?;
            engine.resume(meta.run_id.clone(), wf, entries).await;
        }
        let mut records = Vec::new();
        for meta in &unfinished {
            let record = engine
                .wait(&meta.run_id)
                .await
                .ok_or_else(|| format!("the engine stopped before run {} ended", meta.run_id))?;
            records.push(record);
        }
        Ok(records)
    });
    let records = match records {
        Ok(records) => records,
        Err(e) => return usage_error(&e),
    };
    match args.format {
        RunFormat::Json => println!("{}", serde_json::to_string(&records).unwrap_or_default()),
        RunFormat::Human => {
            if records.is_empty() {
                println!("no unfinished runs");
            }
            for r in &records {
                print!("{}", output::human(r));
            }
        }
    }
    if records.iter().all(|r| r.status == "succeeded") {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
