//! The command line: clap definitions and dispatch. Each subcommand lives in its own file.

mod actions;
mod bench;
mod validate;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// sagaflow: business workflows as YAML step graphs, run as durable sagas.
#[derive(Parser)]
#[command(name = "sagaflow", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check workflow files and report problems with file:line:column.
    Validate(validate::Args),
    /// Print the JSON Schema of the workflow language (for editors and tools).
    Schema,
    /// List the actions a step can run, with their input and output schemas.
    Actions(actions::Args),
    /// Measure sagaflow's speed and print the figures.
    Bench(bench::Args),
}

/// Runs the command line; the exit code follows DSL.md (0 ok, 1 problems, 2 bad usage).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Schema => {
            print!("{}", crate::validate::structure::WORKFLOW_SCHEMA);
            ExitCode::SUCCESS
        }
        Command::Actions(args) => actions::run(args),
        Command::Bench(args) => bench::run(args),
    }
}

/// Output formats shared by the subcommands that print reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Github,
}

/// Exit code 2: the command was used wrongly.
pub fn usage_error(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}
