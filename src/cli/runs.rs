//! `show`, `runs` and `resume`: reading and continuing what the store holds.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{output, runtime, usage_error, RunFormat};
use crate::engine::record::RunRecord;
use crate::engine::{replay, resume_unfinished, Versions};
use crate::store::RunFilter;

#[derive(clap::Args)]
pub(super) struct ShowArgs {
    run_id: String,
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    output: super::Output,
    #[command(flatten)]
    server: super::Server,
}

pub(super) fn show(args: ShowArgs, setup: &super::setup::Setup) -> ExitCode {
    if let Some(server) = &args.server.url {
        return super::client::show(server, &args.run_id, args.output.format);
    }
    let store = match setup.read(&args.data) {
        Ok(store) => store,
        Err(e) => return usage_error(&e),
    };
    match replay(store.as_ref(), &mut Versions::default(), &args.run_id, crate::config::registry::builtin()) {
        Ok(state) => output::print_run(&RunRecord::of(&state), args.output.format),
        Err(e) => usage_error(&e),
    }
}

#[derive(clap::Args)]
pub(super) struct RunsArgs {
    /// Only runs with one of these statuses, comma-separated (running, waiting, paused, compensating,
    /// succeeded, failed, compensated, compensation_failed).
    #[arg(long, value_delimiter = ',')]
    status: Vec<crate::journal::status::RunStatus>,
    /// Only runs of this workflow.
    #[arg(long)]
    workflow: Option<String>,
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    output: super::Output,
    #[command(flatten)]
    server: super::Server,
}

pub(super) fn runs(args: RunsArgs, setup: &super::setup::Setup) -> ExitCode {
    let filter = RunFilter { workflow: args.workflow, statuses: args.status };
    let runs = match &args.server.url {
        Some(server) => super::client::runs(server, &filter),
        // Newest first, as the API lists them (the index is oldest first).
        None => setup
            .read(&args.data)
            .and_then(|store| store.runs().map_err(|e| e.message))
            .map(|runs| runs.into_iter().rev().filter(|r| filter.matches(r)).collect()),
    };
    let runs = match runs {
        Ok(runs) => runs,
        Err(e) => return usage_error(&e),
    };
    match args.output.format {
        RunFormat::Json => println!("{}", serde_json::to_string(&runs).unwrap_or_default()),
        RunFormat::Human => {
            println!("{:20}  {:24}  {:20}  started", "run", "workflow", "status");
            for r in &runs {
                let started = chrono::DateTime::from_timestamp_millis(r.started_at as i64).unwrap_or_default();
                let started = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                println!("{:20}  {:24}  {:20}  {started}", r.run_id, r.workflow, r.status);
            }
        }
    }
    ExitCode::SUCCESS
}

#[derive(clap::Args)]
pub(super) struct ResumeArgs {
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    joining: super::Joining,
    /// Workflows here with `event` triggers start runs when their events come.
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,
    #[command(flatten)]
    output: super::Output,
}

pub(super) fn resume(args: ResumeArgs, setup: &super::setup::Setup) -> ExitCode {
    let (store, backends) = match setup.open(&args.data, &args.joining, "resume") {
        Ok(opened) => opened,
        Err(e) => return usage_error(&e),
    };
    let records: Result<Vec<RunRecord>, String> = runtime().block_on(async move {
        let started = super::setup::start(store.clone(), &backends, &args.workflows, &args.workflows);
        let engine = started.engine.clone();
        let unfinished = resume_unfinished(&engine, store.as_ref(), &backends.registry).await?;
        let mut records = Vec::new();
        for run_id in &unfinished {
            let record =
                engine.wait(run_id).await.ok_or_else(|| format!("the engine stopped before run {run_id} ended"))?;
            records.push(record);
        }
        started.finish().await;
        Ok(records)
    });
    let records = match records {
        Ok(records) => records,
        Err(e) => return usage_error(&e),
    };
    match args.output.format {
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
