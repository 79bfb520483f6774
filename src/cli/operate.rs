//! `sagaflow retry|skip|abort RUN_ID`: an operator acts on a run (DSL.md C1,
//! C2), journaled as `cli`. Locally this process takes the run up from the
//! data directory, acts, and follows it to its end or its next pause; with
//! `--server URL` the server acts (and journals who its token says).

use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::{json, Value as Json};

use super::{output, runtime, usage_error};
use crate::engine::operator::Ask;

#[derive(clap::Args)]
pub(super) struct Common {
    /// The run to act on.
    run_id: String,
    /// Which paused step (the first when left out).
    #[arg(long)]
    step: Option<String>,
    /// Say what the act would do, and do nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    place: Place,
}

/// Where an operator's command acts: a data directory (with the workflows its
/// runs may need) taken up by this process, or a server.
#[derive(clap::Args)]
pub(super) struct Place {
    #[command(flatten)]
    pub(super) data: super::DataDir,
    #[command(flatten)]
    pub(super) joining: super::Joining,
    /// Workflows: their `event` triggers and `workflow.run` children (and, for
    /// `rerun`, the version active now; the old run's when it is not there).
    #[arg(long, default_value = "workflows")]
    pub(super) workflows: PathBuf,
    #[command(flatten)]
    pub(super) output: super::Output,
    #[command(flatten)]
    pub(super) server: super::Server,
}

#[derive(clap::Args)]
pub(super) struct RetryArgs {
    #[command(flatten)]
    common: Common,
    /// A new input for the step (JSON or @FILE), replacing its `with`.
    #[arg(long = "with", value_name = "JSON|@FILE")]
    with: Option<String>,
}

#[derive(clap::Args)]
pub(super) struct SkipArgs {
    #[command(flatten)]
    common: Common,
    /// The output the step should have had (JSON or @FILE), checked against its action's output schema.
    #[arg(long, value_name = "JSON|@FILE")]
    output: String,
}

#[derive(clap::Args)]
pub(super) struct AbortArgs {
    #[command(flatten)]
    common: Common,
}

pub(super) fn retry(args: RetryArgs, setup: &super::setup::Setup) -> ExitCode {
    let with = match args.with.as_deref().map(crate::base::input::read_input).transpose() {
        Ok(with) => with,
        Err(e) => return usage_error(&e),
    };
    let ask = Ask::Retry { step: args.common.step.clone(), with };
    act(args.common, ask, setup)
}

pub(super) fn skip(args: SkipArgs, setup: &super::setup::Setup) -> ExitCode {
    let output = match crate::base::input::read_input(&args.output) {
        Ok(output) => output,
        Err(e) => return usage_error(&e),
    };
    let ask = Ask::Skip { step: args.common.step.clone(), output };
    act(args.common, ask, setup)
}

pub(super) fn abort(args: AbortArgs, setup: &super::setup::Setup) -> ExitCode {
    act(args.common, Ask::Abort, setup)
}

fn act(common: Common, ask: Ask, setup: &super::setup::Setup) -> ExitCode {
    if common.dry_run {
        return dry_run(&common, &ask, setup);
    }
    if let Some(server) = &common.place.server.url {
        return super::client::operate(server, &common.run_id, &ask, common.place.output.format);
    }
    let (store, backends) = match setup.open(&common.place.data, &common.place.joining, "cli") {
        Ok(opened) => opened,
        Err(e) => return usage_error(&e),
    };
    let run_id = common.run_id.clone();
    let record = runtime().block_on(async move {
        let started = super::setup::start(store.clone(), &backends, &common.place.workflows, &common.place.workflows);
        let engine = started.engine.clone();
        let result = async {
            engine.take_up(&run_id).await.map_err(|e| e.to_string())?;
            if let Ok(state) = engine.replay(&run_id) {
                if let Some(why) = state.misfit_output(&ask, engine.registry()) {
                    return Err(why);
                }
            }
            let name = ask.name();
            engine.operate(&run_id, ask, "cli").await.map_err(|r| format!("run {run_id}: cannot {name}: {r}"))?;
            engine.wait(&run_id).await.ok_or_else(|| format!("the engine stopped before run {run_id} went on"))
        }
        .await;
        started.finish().await;
        result
    });
    match record {
        Ok(record) => output::print_run(&record, common.place.output.format),
        Err(e) => usage_error(&e),
    }
}

/// `--dry-run`: what the act would do to the run as it stands; nothing is written.
fn dry_run(common: &Common, ask: &Ask, setup: &super::setup::Setup) -> ExitCode {
    let does = match &common.place.server.url {
        Some(server) => super::client::dry_run(server, &common.run_id, ask),
        None => would_do_here(common, ask, setup),
    };
    match does {
        Ok(does) => {
            match common.place.output.format {
                super::RunFormat::Json => println!(
                    "{}",
                    json!({ "run_id": common.run_id, "action": ask.name(), "dry_run": true, "does": does })
                ),
                super::RunFormat::Human => println!("run {}: would {does} (dry run: nothing done)", common.run_id),
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}

fn would_do_here(common: &Common, ask: &Ask, setup: &super::setup::Setup) -> Result<String, String> {
    let (store, backends) = setup.open(&common.place.data, &common.place.joining, "cli")?;
    let mut versions = crate::engine::Versions::default();
    let state = crate::engine::replay(store.as_ref(), &mut versions, &common.run_id, &backends.registry)
        .map_err(|e| e.to_string())?;
    if let Some(why) = state.misfit_output(ask, &backends.registry) {
        return Err(why);
    }
    let name = ask.name();
    crate::engine::bulk::would_do(&state, ask).map_err(|r| format!("run {}: cannot {name}: {r}", common.run_id))
}

#[derive(clap::Args)]
pub(super) struct RerunArgs {
    /// The run to run again.
    run_id: String,
    /// An edited input (JSON or @FILE); the old run's when left out.
    #[arg(long, value_name = "JSON|@FILE")]
    input: Option<String>,
    #[command(flatten)]
    place: Place,
}

/// `sagaflow rerun RUN_ID [--input JSON]`: a new run, linked both ways, followed to its end or pause.
pub(super) fn rerun(args: RerunArgs, setup: &super::setup::Setup) -> ExitCode {
    let input = match args.input.as_deref().map(crate::base::input::read_input).transpose() {
        Ok(input) => input,
        Err(e) => return usage_error(&e),
    };
    if let Some(server) = &args.place.server.url {
        return super::client::rerun(server, &args.run_id, input, args.place.output.format);
    }
    let (store, backends) = match setup.open(&args.place.data, &args.place.joining, "cli") {
        Ok(opened) => opened,
        Err(e) => return usage_error(&e),
    };
    let record = runtime().block_on(async move {
        let started = super::setup::start(store.clone(), &backends, &args.place.workflows, &args.place.workflows);
        let engine = started.engine.clone();
        let result = async {
            let meta = engine.replay(&args.run_id).map_err(|e| e.to_string())?;
            let library =
                crate::engine::library::Directory::new(args.place.workflows.clone(), backends.registry.clone());
            let wf = crate::engine::library::Library::active(&library, &meta.wf.name).ok();
            let new = engine.rerun(&args.run_id, wf, input, "cli").await.map_err(|e| e.to_string())?;
            engine.wait(&new).await.ok_or_else(|| format!("the engine stopped before run {new} ended"))
        }
        .await;
        started.finish().await;
        result
    });
    match record {
        Ok(record) => output::print_run(&record, args.place.output.format),
        Err(e) => usage_error(&e),
    }
}

/// The body of an ask, as the API takes it.
pub(super) fn body(ask: &Ask) -> Json {
    match ask {
        Ask::Retry { step, with } => json!({ "step": step, "with": with }),
        Ask::Skip { step, output } => json!({ "step": step, "output": output }),
        Ask::Abort | Ask::Rerun { .. } => json!({}),
    }
}
