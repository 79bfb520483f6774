//! `sagaflow store check|export|import|prune`: verify a data directory, back it up
//! as JSON lines, rebuild one from such a backup, and remove old finished runs.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use super::{usage_error, RunFormat};
use crate::store::backup::{CheckReport, Checker, Record};
use crate::store::StoreError;

#[derive(clap::Subcommand)]
pub(super) enum Command {
    /// Read every run, journal, definition, event, delivery, schedule and sandbox record, and report what cannot be read.
    Check(CheckArgs),
    /// Write the whole store as JSON lines (to FILE, or standard output), for a backup or a move.
    Export(ExportArgs),
    /// Rebuild a store from an export, into a new (empty) data directory.
    Import(ImportArgs),
    /// Remove the runs that finished before a time, their journals and index rows, and events no run waits for.
    Prune(super::prune::PruneArgs),
}

#[derive(clap::Args)]
pub(super) struct CheckArgs {
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    output: super::Output,
}

#[derive(clap::Args)]
pub(super) struct ExportArgs {
    /// Where to write (default: standard output).
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    data: super::DataDir,
}

#[derive(clap::Args)]
pub(super) struct ImportArgs {
    /// An export (`-` for standard input).
    file: PathBuf,
    #[command(flatten)]
    data: super::DataDir,
}

pub(super) fn run(command: Command, setup: &super::setup::Setup) -> ExitCode {
    match command {
        Command::Check(args) => check(args, setup),
        Command::Export(args) => export(args, setup),
        Command::Import(args) => import(args, setup),
        Command::Prune(args) => super::prune::prune(args, setup),
    }
}

fn check(args: CheckArgs, setup: &super::setup::Setup) -> ExitCode {
    let store = match setup.backup(&args.data) {
        Ok(store) => store,
        Err(e) => return usage_error(&e),
    };
    let mut checker = Checker::default();
    let _ = store.records(|record| {
        checker.record(record);
        Ok::<_, ()>(())
    });
    let report = checker.finish();
    match args.output.format {
        RunFormat::Json => println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default()),
        RunFormat::Human => print!("{}", human(&args.data.path, &report)),
    }
    if report.damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn human(data: &std::path::Path, report: &CheckReport) -> String {
    let mut out = String::new();
    for d in &report.damage {
        out.push_str(&format!("damaged: {}: {}\n", d.place, d.problem));
    }
    let counts: Vec<String> = report.records.iter().map(|(kind, n)| format!("{n} {kind}")).collect();
    let verdict = match report.damage.len() {
        0 => "every record reads".to_owned(),
        n => format!("{n} problem{}", if n == 1 { "" } else { "s" }),
    };
    out.push_str(&format!("checked {}: {} ({verdict})\n", data.display(), counts.join(", ")));
    out
}

fn export(args: ExportArgs, setup: &super::setup::Setup) -> ExitCode {
    let store = match setup.backup(&args.data) {
        Ok(store) => store,
        Err(e) => return usage_error(&e),
    };
    let file = match args.output.as_ref().map(std::fs::File::create).transpose() {
        Ok(file) => file,
        Err(e) => return usage_error(&format!("cannot write the export: {e}")),
    };
    let sink: Box<dyn Write + '_> = match &file {
        Some(file) => Box::new(file),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(sink);
    let (mut written, mut damaged) = (0u64, 0u64);
    let result = store.records(|record| match record {
        Ok(record) => {
            written += 1;
            serde_json::to_writer(&mut out, &record).map_err(std::io::Error::from)?;
            out.write_all(b"\n")
        }
        Err(d) => {
            damaged += 1;
            eprintln!("damaged, left out: {}: {}", d.place, d.problem);
            Ok(())
        }
    });
    if let Err(e) = result.and_then(|()| out.flush()) {
        return usage_error(&format!("the export could not be written: {e}"));
    }
    drop(out);
    if let Err(e) = file.as_ref().map_or(Ok(()), std::fs::File::sync_all) {
        return usage_error(&format!("the export could not be made durable: {e}"));
    }
    eprintln!(
        "exported {written} records{}",
        if damaged > 0 { format!("; {damaged} damaged, left out") } else { String::new() }
    );
    if damaged > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn import(args: ImportArgs, setup: &super::setup::Setup) -> ExitCode {
    let reader: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(&args.file) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(e) => return usage_error(&format!("cannot read {}: {e}", args.file.display())),
        }
    };
    let store = match setup.backup(&args.data) {
        Ok(store) => store,
        Err(e) => return usage_error(&e),
    };
    let shown = args.file.display().to_string();
    let records = reader.lines().enumerate().filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty())).map(
        |(n, line)| {
            let line = line.map_err(|e| StoreError::other(format!("{shown}:{}: cannot read: {e}", n + 1)))?;
            serde_json::from_str::<Record>(&line).map_err(|e| {
                StoreError::other(format!("{shown}:{}:{}: not a record of an export: {e}", n + 1, e.column()))
            })
        },
    );
    let was_empty = store.is_empty();
    match store.import(records) {
        Ok(count) => {
            eprintln!("imported {count} records into {}", args.data.path.display());
            ExitCode::SUCCESS
        }
        Err(e) if !was_empty || store.is_empty() => usage_error(&e.message),
        Err(e) => usage_error(&format!(
            "{}; {} now holds part of the export: remove it and import again",
            e.message,
            args.data.path.display()
        )),
    }
}
