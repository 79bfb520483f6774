//! The command line: clap definitions and dispatch. Each subcommand lives in its own file.

mod actions;
mod bench;
mod bench_cluster;
mod bench_run;
mod bench_serve;
mod bench_takeover;
mod bulk;
mod client;
mod contract;
mod explore;
mod operate;
mod outbox;
mod output;
mod prune;
mod run;
mod runs;
mod sandbox;
mod serve;
mod setup;
mod store;
mod test;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sagaflow: business workflows as YAML step graphs, run as durable sagas.
#[derive(Parser)]
#[command(name = "sagaflow", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// How log lines (on stderr) look. Their level comes from SAGAFLOW_LOG (default `warn`).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The config file (default: ./sagaflow.toml if it exists; without one every service runs on its sandbox).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// `quiet`: only errors unless SAGAFLOW_LOG says otherwise (for `explore` and
/// `test`, whose runs fail on purpose).
fn init_logs(format: LogFormat, quiet: bool) {
    let default = if quiet { "error" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SAGAFLOW_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Every log line passes the secrets' mask (DSL.md A6).
    let writer = || crate::base::secrets::Masked(std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(false).try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A command whose output is piped into one that stops reading (`| head`)
/// ends quietly, as command-line tools do, instead of panicking on the
/// closed pipe (Rust ignores SIGPIPE). Not for `serve`, which writes to
/// sockets and must outlive any one of them.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default action of one signal at start, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The tokio runtime for commands that run workflows.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_start(crate::store::postgres::mark_worker)
        .build()
        .unwrap_or_else(|e| panic!("cannot start the async runtime: {e}"))
}

/// Output formats of run records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RunFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check workflow files and report problems with file:line:column.
    Validate(validate::Args),
    /// Print the JSON Schema of the workflow language (for editors and tools).
    Schema,
    /// List the actions a step can run, with their input and output schemas.
    Actions(actions::Args),
    /// Run a workflow to its end and print the run record.
    Run(run::Args),
    /// Run a workflow once per failure point (each step, each compensation, --crash) and report leaks.
    Explore(explore::Args),
    /// Run test files (`*.test.yaml`): input, injected failures, expected status, steps, compensations, sandbox.
    Test(test::Args),
    /// Continue every unfinished run in the data directory (after a crash).
    Resume(runs::ResumeArgs),
    /// Print one run's record.
    Show(runs::ShowArgs),
    /// Retry a paused run's step (optionally with a new `with`); it goes on counting its attempts.
    Retry(operate::RetryArgs),
    /// Skip a paused run's step, giving the output it should have had.
    Skip(operate::SkipArgs),
    /// Abort a paused, running or waiting run: it rolls back as its failure would have made it.
    Abort(operate::AbortArgs),
    /// Run a run again: a new run of its workflow with the same (or an edited) input, linked both ways.
    Rerun(operate::RerunArgs),
    /// Retry, skip, abort or rerun every run a filter chooses; --dry-run says what each would do.
    Bulk(bulk::Args),
    /// List runs.
    Runs(runs::RunsArgs),
    /// List event deliveries still pending (webhooks, triggered workflows) and dead letters.
    Outbox(outbox::Args),
    /// Measure sagaflow's speed and print the figures.
    Bench(bench::Args),
    /// Run the server: HTTP API, hot reload of the workflows directory, triggers, web console.
    Serve(serve::Args),
    /// Look at or reset the sandbox services' state.
    #[command(subcommand)]
    Sandbox(sandbox::Command),
    /// Check a data directory, export it as JSON lines, or import such an export.
    #[command(subcommand)]
    Store(store::Command),
}

/// Runs the command line; the exit code follows DSL.md (0 ok, 1 problems, 2 bad usage).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        quiet_on_closed_pipe();
    }
    init_logs(cli.log_format, matches!(cli.command, Command::Explore(_) | Command::Test(_)));
    let setup = setup::Setup { config_path: cli.config };
    match cli.command {
        Command::Validate(args) => validate::run(args, &setup),
        Command::Schema => {
            print!("{}", crate::validate::structure::WORKFLOW_SCHEMA);
            ExitCode::SUCCESS
        }
        Command::Actions(args) => actions::run(args),
        Command::Run(args) => run::run(args, &setup),
        Command::Explore(args) => explore::run(args, &setup),
        Command::Test(args) => test::run(args, &setup),
        Command::Resume(args) => runs::resume(args, &setup),
        Command::Show(args) => runs::show(args, &setup),
        Command::Retry(args) => operate::retry(args, &setup),
        Command::Skip(args) => operate::skip(args, &setup),
        Command::Abort(args) => operate::abort(args, &setup),
        Command::Rerun(args) => operate::rerun(args, &setup),
        Command::Bulk(args) => bulk::run(args, &setup),
        Command::Runs(args) => runs::runs(args, &setup),
        Command::Outbox(args) => outbox::run(args, &setup),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args, &setup),
        Command::Sandbox(command) => sandbox::run(command, &setup),
        Command::Store(command) => store::run(command, &setup),
    }
}

/// Output formats shared by the subcommands that print reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Human,
    Json,
    Github,
}

/// Exit code 2: the command was used wrongly.
pub(crate) fn usage_error(message: &(impl std::fmt::Display + ?Sized)) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// `--data DIR` or `--store URL`: where the runs are, shared by every command that opens a store.
#[derive(clap::Args)]
pub(crate) struct DataDir {
    /// The data directory (the sled store).
    #[arg(long = "data", value_name = "DIR", default_value = ".sagaflow")]
    pub path: std::path::PathBuf,
    /// The store instead: `sled:DIR`, or `postgres://USER@HOST:PORT/DB` (a database several
    /// workers share); default: `[store] url` in sagaflow.toml, else --data.
    #[arg(long = "store", value_name = "URL")]
    pub store: Option<String>,
}

/// How a command that moves runs joins a store several workers share (the
/// commands that only read join as nothing, and have no such flags).
#[derive(clap::Args)]
pub(crate) struct Joining {
    /// In a shared store, this process's worker id (default: what it is, its host and
    /// pid). A live worker's id is refused.
    #[arg(long = "worker-id", value_name = "ID")]
    pub worker_id: Option<String>,
    /// In a shared store, how long this worker's lease runs: silent that long, it is taken
    /// for dead and its runs move to the others.
    #[arg(long = "lease", value_name = "DURATION", default_value = "3s", value_parser = parse_lease)]
    pub lease: std::time::Duration,
}

/// A lease: long enough to renew it in, short enough to take a dead worker's runs over soon.
fn parse_lease(text: &str) -> Result<std::time::Duration, String> {
    let d: crate::dsl::duration::Duration = text.parse().map_err(|e| format!("{e}"))?;
    let lease = std::time::Duration::from_millis(d.millis());
    if !(std::time::Duration::from_secs(1)..=std::time::Duration::from_secs(600)).contains(&lease) {
        return Err("a lease runs from 1s to 10m".to_owned());
    }
    Ok(lease)
}

/// `--server URL`: a running `sagaflow serve` to ask instead of the data directory.
#[derive(clap::Args)]
pub(crate) struct Server {
    /// Ask a running `sagaflow serve` (its base URL) instead of the data directory.
    #[arg(long = "server", value_name = "URL")]
    pub url: Option<String>,
}

/// `--format`, how a command that prints runs prints them.
#[derive(clap::Args)]
pub(crate) struct Output {
    /// `human` to read, `json` for scripts.
    #[arg(long, value_enum, default_value = "human")]
    pub format: RunFormat,
}
