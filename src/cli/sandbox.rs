//! `sagaflow sandbox show [SERVICE] [--format json]` and `sagaflow sandbox reset`.

use std::process::ExitCode;

use serde_json::Value as Json;

use super::{usage_error, RunFormat};
use crate::services::sandbox::SERVICES;

#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Print the sandbox state: every service, or one (`mail` is the mailbox).
    Show(ShowArgs),
    /// Empty every sandbox service and seed it again (runs are kept).
    Reset(ResetArgs),
}

#[derive(clap::Args)]
pub(super) struct ShowArgs {
    /// inventory, payments, orders, users, courses, vendor, erp, catalog, ai or mail.
    service: Option<String>,
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    output: super::Output,
}

#[derive(clap::Args)]
pub(super) struct ResetArgs {
    #[command(flatten)]
    data: super::DataDir,
}

pub(super) fn run(command: Command, setup: &super::setup::Setup) -> ExitCode {
    match command {
        Command::Show(args) => show(args, setup),
        Command::Reset(args) => reset(args, setup),
    }
}

fn show(args: ShowArgs, setup: &super::setup::Setup) -> ExitCode {
    let names: Vec<&str> = SERVICES.iter().map(|(s, _)| *s).collect();
    if let Some(service) = &args.service {
        if !names.contains(&service.as_str()) {
            let hint = crate::base::suggest::did_you_mean(service, names.iter().copied())
                .map(|h| format!("; {h}"))
                .unwrap_or_else(|| format!("; the services are {}", names.join(", ")));
            return usage_error(&format!("there is no sandbox service `{service}`{hint}"));
        }
    }
    let state =
        match setup.open_sandbox(&args.data).and_then(|(_, sandbox, _)| Ok(sandbox.show(args.service.as_deref())?)) {
            Ok(state) => state,
            Err(e) => return usage_error(&e),
        };
    match args.output.format {
        RunFormat::Json => println!("{}", serde_json::to_string_pretty(&state).unwrap_or_default()),
        RunFormat::Human => print!("{}", human(&state)),
    }
    ExitCode::SUCCESS
}

/// Each service, each kind with its count, then a record a line.
fn human(state: &Json) -> String {
    let mut out = String::new();
    for (service, kinds) in state.as_object().into_iter().flatten() {
        out.push_str(&format!("{service}\n"));
        for (kind, records) in kinds.as_object().into_iter().flatten() {
            let records = records.as_array().map(Vec::as_slice).unwrap_or_default();
            out.push_str(&format!("  {kind} ({})\n", records.len()));
            for r in records {
                out.push_str(&format!("    {}\n", serde_json::to_string(r).unwrap_or_default()));
            }
        }
    }
    out
}

fn reset(args: ResetArgs, setup: &super::setup::Setup) -> ExitCode {
    let done = setup.open_sandbox(&args.data).and_then(|(_, sandbox, seed)| Ok(sandbox.reset(&seed)?));
    match done {
        Ok(()) => {
            println!("the sandbox in {} is back to its seed", args.data.path.display());
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}
