//! `sagaflow validate PATH... [--format human|json|github] [--deny-warnings]`,
//! and `sagaflow validate --explain [CODE]`: the table of checks.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{usage_error, Format};
use crate::validate::render::{self, Totals};
use crate::validate::{check_files, collect_files};

#[derive(clap::Args)]
pub(super) struct Args {
    /// Workflow files, or directories to search for `*.yaml`/`*.yml` (test files `*.test.yaml` are left out).
    #[arg(required_unless_present = "explain")]
    paths: Vec<PathBuf>,
    /// Instead: print every check (its code, severity and what it finds), or only CODE's.
    #[arg(long, value_name = "CODE", num_args = 0..=1, default_missing_value = "")]
    explain: Option<String>,
    /// How to print the report.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Fail (exit 1) on warnings too.
    #[arg(long)]
    deny_warnings: bool,
}

pub(super) fn run(args: Args, setup: &super::setup::Setup) -> ExitCode {
    if let Some(code) = &args.explain {
        return explain(code);
    }
    let files = match collect_files(&args.paths) {
        Ok(files) => files,
        Err(e) => return usage_error(&e.0),
    };
    // The config's templates file adds template names `notify.send` may use.
    let registry = match setup.config().and_then(|c| crate::config::registry::for_config(&c).map_err(|e| e.0)) {
        Ok(registry) => registry,
        Err(e) => return usage_error(&e),
    };
    let reports = check_files(&files, &registry);
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

/// The table of checks, or one code's line.
fn explain(only: &str) -> ExitCode {
    use crate::dsl::diagnostic::Code;
    let codes: Vec<Code> = Code::ALL.iter().copied().filter(|c| only.is_empty() || c.as_str() == only).collect();
    if codes.is_empty() {
        let hint = crate::base::suggest::hint(only, Code::ALL.iter().map(|c| c.as_str()));
        return usage_error(&format!("there is no check `{only}`{hint}"));
    }
    let width = codes.iter().map(|c| c.as_str().len()).max().unwrap_or(0);
    for code in codes {
        println!("{:width$}  {:7}  {}", code.as_str(), code.severity().as_str(), code.explain());
    }
    ExitCode::SUCCESS
}
