//! `sagaflow validate PATH... [--format human|json|github] [--deny-warnings]`

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{usage_error, Format};
use crate::validate::render::{self, Totals};
use crate::validate::{check_files, collect_files};

#[derive(clap::Args)]
pub struct Args {
    /// Workflow files, or directories to search for `*.yaml`/`*.yml` (test files `*.test.yaml` are left out).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// How to print the report.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
}

pub fn run(args: Args) -> ExitCode {
    let files = match collect_files(&args.paths) {
        Ok(files) => files,
        Err(e) => return usage_error(&e.0),
    };
    let reports = check_files(&files, crate::config::registry::builtin());
    let totals = Totals::of(&reports);
    match args.format {
        Format::Human => print!(
            "{}",
            render::human(&reports, std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        ),
        Format::Json => println!("{}", render::json(&reports)),
        Format::Github => print!("{}", render::github(&reports)),
    }
    if totals.errors > 0 || (args.deny_warnings && totals.warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
