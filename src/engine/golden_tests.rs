//! Golden journals: runs recorded by an earlier build (`tests/journals/*.json`:
//! the exact definition, every entry as the store wrote it, and the run
//! record that run gave). Each is replayed through today's machine, whole and
//! entry by entry, and must give the same record: the on-disk entry format and
//! the fold do not change silently.

use std::path::Path;

use serde_json::Value as Json;

use super::compiled::CompiledWorkflow;
use super::machine::RunState;
use super::record::RunRecord;
use crate::journal::entry::Entry;

fn golden_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/journals");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_golden_journal_replays_to_the_record_it_gave() {
    let files = golden_files();
    assert!(files.len() >= 5, "the golden journals are in tests/journals");
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        let golden: Json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let source = golden["definition"].as_str().unwrap_or_default();
        let wf = CompiledWorkflow::compile(&file, source, crate::config::registry::builtin())
            .unwrap_or_else(|e| panic!("{}: {:?}", file.display(), e.0.diagnostics));
        let entries: Vec<Entry> = serde_json::from_value(golden["entries"].clone())
            .unwrap_or_else(|e| panic!("{}: an entry this build cannot read: {e}", file.display()));
        let run_id = golden["run_id"].as_str().unwrap_or_default();
        let whole = RunState::replayed(run_id, wf.clone(), &entries);
        let record = serde_json::to_value(RunRecord::of(&whole)).unwrap_or_default();
        assert_eq!(record, golden["record"], "{}: the replayed record differs", file.display());
        let mut stepwise = RunState::new(run_id, wf);
        for entry in &entries {
            stepwise.apply(entry);
        }
        let again = serde_json::to_value(RunRecord::of(&stepwise)).unwrap_or_default();
        assert_eq!(again, record, "{}: entry by entry differs from whole", file.display());
        // Each entry reads back as it was written.
        let rewritten = serde_json::to_value(&entries).unwrap_or_default();
        assert_eq!(rewritten, golden["entries"], "{}: an entry writes differently", file.display());
    }
}
