//! `sagaflow bulk retry|skip|abort|rerun --workflow W --status S ... [--dry-run]`:
//! an operator's act on every run a filter chooses (DSL.md C2), locally or
//! on a server (`--server URL`). Prints each run and what it does (or would).

use std::process::ExitCode;

use super::{runtime, usage_error};
use crate::engine::bulk::{Choice, Page, Request, MAX_RUNS};
use crate::engine::operator::Ask;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Action {
    Retry,
    Skip,
    Abort,
    Rerun,
}

#[derive(clap::Args)]
pub(super) struct Args {
    /// What to do to each run chosen.
    action: Action,
    /// Only runs of this workflow.
    #[arg(long)]
    workflow: Option<String>,
    /// Only runs with this status.
    #[arg(long)]
    status: Option<crate::journal::status::RunStatus>,
    /// Only runs started at or after this time (RFC 3339, or milliseconds since the epoch).
    #[arg(long)]
    since: Option<String>,
    /// Only runs started before this time.
    #[arg(long)]
    until: Option<String>,
    /// Only runs whose error (or paused step's) has this code.
    #[arg(long)]
    error_code: Option<String>,
    /// Say what each run would do, and do nothing.
    #[arg(long)]
    dry_run: bool,
    /// For `retry`: a new input for each paused step (JSON or @FILE).
    #[arg(long = "with")]
    with: Option<String>,
    /// For `skip`: each paused step's output (JSON or @FILE).
    #[arg(long)]
    output: Option<String>,
    /// Go on from where the last call stopped (its `next`).
    #[arg(long)]
    cursor: Option<String>,
    #[command(flatten)]
    place: super::operate::Place,
}

pub(super) fn run(args: Args, setup: &super::setup::Setup) -> ExitCode {
    let request = match request(&args) {
        Ok(r) => r,
        Err(e) => return usage_error(&e),
    };
    if let Some(server) = &args.place.server.url {
        return match super::client::bulk(server, &request) {
            Ok(page) => print(&page, args.place.output.format),
            Err(e) => usage_error(&e),
        };
    }
    let (store, backends) = match setup.open(&args.place.data, &args.place.joining, "bulk") {
        Ok(opened) => opened,
        Err(e) => return usage_error(&e),
    };
    let page = runtime().block_on(async move {
        let started = super::setup::start(store.clone(), &backends, &args.place.workflows, &args.place.workflows);
        let engine = started.engine.clone();
        // The runs chosen are taken up here, so those acted on go on in this process.
        let _ = crate::engine::resume_unfinished(&engine, store.as_ref(), &backends.registry).await;
        let page = crate::engine::bulk::act(&engine, store.as_ref(), &request).await;
        // Each run acted on goes on to its end (or next pause) before this process stops.
        for r in page.iter().flat_map(|p| &p.runs).filter(|r| !request.dry_run && r.does.is_some()) {
            let _ = engine.wait(&r.run_id).await;
        }
        started.finish().await;
        page
    });
    match page {
        Ok(page) => print(&page, args.place.output.format),
        Err(e) => usage_error(&e),
    }
}

fn request(args: &Args) -> Result<Request, String> {
    let read = |t: &Option<String>| t.as_deref().map(crate::base::input::read_input).transpose();
    let ask = match args.action {
        Action::Retry => Ask::Retry { step: None, with: read(&args.with)? },
        Action::Skip => Ask::Skip { step: None, output: read(&args.output)?.ok_or("`bulk skip` needs --output")? },
        Action::Abort => Ask::Abort,
        Action::Rerun => Ask::Rerun { run_id: String::new() },
    };
    let time = |t: &Option<String>| t.as_deref().map(crate::engine::bulk::parse_time).transpose();
    let choice = Choice {
        workflow: args.workflow.clone(),
        status: args.status,
        started_after: time(&args.since)?,
        started_before: time(&args.until)?,
        error_code: args.error_code.clone(),
    };
    if choice.is_empty() {
        return Err(
            "an empty filter would act on every run; give --workflow, --status, --since, --until or --error-code"
                .into(),
        );
    }
    Ok(Request { choice, ask, dry_run: args.dry_run, cursor: args.cursor.clone(), limit: MAX_RUNS, by: "cli".into() })
}

fn print(page: &Page, format: super::RunFormat) -> ExitCode {
    match format {
        super::RunFormat::Json => println!("{}", serde_json::to_string(page).unwrap_or_default()),
        super::RunFormat::Human => {
            let verb = if page.dry_run { "would" } else { "did" };
            for r in &page.runs {
                match (&r.does, &r.refused) {
                    (Some(does), _) => println!("{}  {:24}  {:20}  {verb}: {does}", r.run_id, r.workflow, r.status),
                    (_, Some(why)) => println!("{}  {:24}  {:20}  not taken: {why}", r.run_id, r.workflow, r.status),
                    _ => {}
                }
            }
            println!(
                "{} runs{}",
                page.runs.len(),
                page.next.as_ref().map_or(String::new(), |n| format!("; more with --cursor {n}"))
            );
        }
    }
    ExitCode::SUCCESS
}
