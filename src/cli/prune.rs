//! `sagaflow store prune --before TIME [--export FILE]`: removes the runs that
//! finished before TIME, their journals and index rows, and the events no
//! unfinished run can wait for; with `--export`, each batch is written (and
//! made durable) as export lines before it leaves the store.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{usage_error, RunFormat};
use crate::store::backup::{Record, EXPORT_FORMAT};
use crate::store::retention::{run_records, Prune, Pruned};
use crate::store::{Commit, Store};

#[derive(clap::Args)]
pub(super) struct PruneArgs {
    /// Runs that finished before this leave: a time (2026-11-01, 2026-11-01T09:00:00Z,
    /// milliseconds) or a duration ago (30d).
    #[arg(long, value_name = "TIME")]
    before: String,
    /// First write what leaves to FILE as export lines (`sagaflow store import` reads them); FILE must be new.
    #[arg(long, value_name = "FILE")]
    export: Option<PathBuf>,
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    joining: super::Joining,
    #[command(flatten)]
    output: super::Output,
}

/// `--before`: a duration is that long before now.
fn before(text: &str, now: u64) -> Result<u64, String> {
    if let Ok(ago) = text.parse::<crate::dsl::duration::Duration>() {
        return Ok(now.saturating_sub(ago.millis()));
    }
    crate::engine::bulk::parse_time(text).map_err(|e| format!("--before: {e}, or a duration like 30d"))
}

pub(super) fn prune(args: PruneArgs, setup: &super::setup::Setup) -> ExitCode {
    let before = match before(&args.before, crate::base::clock::now_ms()) {
        Ok(before) => before,
        Err(e) => return usage_error(&e),
    };
    let store = match setup.write(&args.data, &args.joining, "prune") {
        Ok(store) => store,
        Err(e) => return usage_error(&e),
    };
    let mut export = match args.export.as_deref().map(Export::create).transpose() {
        Ok(export) => export,
        Err(e) => return usage_error(&e),
    };
    match remove(store.as_ref(), before, export.as_mut()) {
        Ok(pruned) => {
            match args.output.format {
                RunFormat::Json => println!("{}", serde_json::json!({ "before": before, "removed": pruned })),
                RunFormat::Human => println!(
                    "removed {} finished run(s) and {} event(s) from {}",
                    pruned.runs,
                    pruned.events,
                    args.data.path.display()
                ),
            }
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}

/// The whole pass; each batch exported (when asked) before its commit removes it.
fn remove(store: &dyn Store, before: u64, mut export: Option<&mut Export>) -> Result<Pruned, String> {
    let mut prune = Prune::new(before);
    let mut removed = Pruned::default();
    while let Some(runs) = prune.next_runs(store).map_err(|e| e.message)? {
        if let Some(export) = export.as_deref_mut() {
            let mut records = Vec::new();
            for meta in &runs {
                records.extend(export.definition(store, &meta.hash)?);
                records.extend(run_records(store, meta).map_err(|e| e.message)?);
            }
            export.write(&records)?;
        }
        removed.runs += runs.len();
        store.commit(&Commit { forget: runs, ..Commit::default() }).map_err(|e| e.message)?;
    }
    while let Some(events) = prune.next_events(store).map_err(|e| e.message)? {
        if let Some(export) = export.as_deref_mut() {
            export.write(&events.iter().map(|e| Record::Event { event: e.clone() }).collect::<Vec<_>>())?;
        }
        removed.events += events.len();
        store.commit(&Commit { forget_events: events, ..Commit::default() }).map_err(|e| e.message)?;
    }
    Ok(removed)
}

/// The `--export` file: a new file, its header first; durable after each
/// write. It holds the workflow version of each run it holds, so it imports
/// into a new data directory whole.
struct Export {
    file: std::fs::File,
    shown: String,
    versions: std::collections::HashSet<String>,
}

impl Export {
    fn create(path: &std::path::Path) -> Result<Export, String> {
        let shown = path.display().to_string();
        let file = std::fs::File::options()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| format!("--export {shown}: cannot create it ({e}); name a new file"))?;
        let mut export = Export { file, shown, versions: Default::default() };
        export.write(&[Record::Header { format: EXPORT_FORMAT.into() }])?;
        Ok(export)
    }

    /// The version's record, the first time a run of it is exported.
    fn definition(&mut self, store: &dyn Store, hash: &str) -> Result<Option<Record>, String> {
        if !self.versions.insert(hash.to_owned()) {
            return Ok(None);
        }
        let source = store.definition(hash).map_err(|e| e.message)?;
        Ok(source.map(|source| Record::Definition { hash: hash.to_owned(), source }))
    }

    fn write(&mut self, records: &[Record]) -> Result<(), String> {
        let mut out = std::io::BufWriter::new(&self.file);
        let fail = |e: std::io::Error| format!("--export {}: cannot write ({e}); nothing more was removed", self.shown);
        for record in records {
            serde_json::to_writer(&mut out, record).map_err(|e| fail(e.into()))?;
            out.write_all(b"\n").map_err(fail)?;
        }
        out.flush().map_err(fail)?;
        drop(out);
        self.file.sync_data().map_err(fail)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn before_is_a_time_or_a_duration_ago() {
        assert_eq!(super::before("30s", 100_000), Ok(70_000));
        assert_eq!(super::before("1970-01-02", 0), Ok(86_400_000));
        assert_eq!(super::before("1500", 0), Ok(1500));
        let e = super::before("last week", 0).err().unwrap_or_default();
        assert!(e.starts_with("--before: `last week` is not a time"), "{e}");
    }
}
