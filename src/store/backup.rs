//! A store as JSON lines, one record a line: what `sagaflow store export`
//! writes, `import` reads and `check` verifies. The records are the store's
//! meaning (runs, journals, definitions, events, outbox, schedules, sandbox
//! state), not one database's keys, so a backup moves between stores.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{DeadLetter, Delivery, EventRecord, RunMeta};
use crate::journal::entry::Entry;

/// The first line of an export, naming its format.
pub(crate) const EXPORT_FORMAT: &str = "sagaflow-export-1";

/// One line of an export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Record {
    Header {
        format: String,
    },
    Definition {
        hash: String,
        source: String,
    },
    Run {
        run: RunMeta,
    },
    Entry {
        run_id: String,
        seq: u32,
        entry: Entry,
    },
    Event {
        event: EventRecord,
    },
    Delivery {
        delivery: Delivery,
    },
    DeadLetter {
        dead_letter: DeadLetter,
    },
    Schedule {
        schedule: String,
        last_tick: u64,
    },
    /// A record of a sandbox service's state (`tree` is e.g. `sandbox.inventory`).
    Sandbox {
        tree: String,
        key: String,
        value: Json,
    },
}

impl Record {
    /// The record's kind, as written in its line.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Record::Header { .. } => "header",
            Record::Definition { .. } => "definition",
            Record::Run { .. } => "run",
            Record::Entry { .. } => "entry",
            Record::Event { .. } => "event",
            Record::Delivery { .. } => "delivery",
            Record::DeadLetter { .. } => "dead_letter",
            Record::Schedule { .. } => "schedule",
            Record::Sandbox { .. } => "sandbox",
        }
    }
}

/// Something in a store that cannot be read: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Damage {
    pub place: String,
    pub problem: String,
}

/// What `check` found: how many records of each kind were read, and the damage.
#[derive(Debug, Default, Serialize)]
pub(crate) struct CheckReport {
    pub records: BTreeMap<&'static str, u64>,
    pub damage: Vec<Damage>,
}

/// Reads records one by one and finds what a damaged store shows beyond
/// records that do not decode: gaps in a journal, runs without a journal or
/// without their definition, journals without a run.
#[derive(Default)]
pub(crate) struct Checker {
    report: CheckReport,
    runs: BTreeMap<String, String>,
    journals: BTreeMap<String, Vec<u32>>,
    definitions: BTreeSet<String>,
}

impl Checker {
    pub(crate) fn record(&mut self, record: Result<Record, Damage>) {
        let record = match record {
            Ok(record) => record,
            Err(damage) => return self.report.damage.push(damage),
        };
        *self.report.records.entry(record.kind()).or_default() += 1;
        match record {
            Record::Run { run } => {
                self.runs.insert(run.run_id, run.hash);
            }
            Record::Entry { run_id, seq, .. } => self.journals.entry(run_id).or_default().push(seq),
            Record::Definition { hash, .. } => {
                self.definitions.insert(hash);
            }
            _ => {}
        }
    }

    pub(crate) fn finish(mut self) -> CheckReport {
        for (run, hash) in &self.runs {
            let damage = |problem: String| Damage { place: format!("run {run}"), problem };
            match self.journals.get(run) {
                None => self.report.damage.push(damage("it is in the run index but has no journal".into())),
                Some(seqs) => {
                    if let Some(gap) = first_gap(seqs) {
                        self.report.damage.push(damage(format!("its journal misses entry {gap}")));
                    }
                }
            }
            if !self.definitions.contains(hash) {
                self.report.damage.push(damage(format!("its workflow definition {hash} is missing")));
            }
        }
        for run in self.journals.keys().filter(|r| !self.runs.contains_key(*r)) {
            let problem = "it has a journal but no row in the run index".into();
            self.report.damage.push(Damage { place: format!("run {run}"), problem });
        }
        self.report
    }
}

/// The first sequence number missing from a journal (numbered from 0).
fn first_gap(seqs: &[u32]) -> Option<u32> {
    let mut sorted = seqs.to_vec();
    sorted.sort_unstable();
    sorted.iter().enumerate().find(|(i, &s)| s != *i as u32).map(|(i, _)| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_a_missing_definition_and_an_orphan_journal_are_damage() {
        let run = |id: &str| RunMeta {
            run_id: id.into(),
            workflow: "w".into(),
            hash: "h1".into(),
            status: crate::journal::status::RunStatus::Running,
            started_at: 1,
            updated_at: 1,
            parent: None,
            error: None,
        };
        let entry = |run_id: &str, seq: u32| Record::Entry {
            run_id: run_id.into(),
            seq,
            entry: Entry::CancelRequested { at: 1 },
        };
        let mut checker = Checker::default();
        for record in
            [Record::Run { run: run("a") }, entry("a", 0), entry("a", 2), Record::Run { run: run("b") }, entry("c", 0)]
        {
            checker.record(Ok(record));
        }
        checker.record(Err(Damage { place: "key j/x".into(), problem: "not JSON".into() }));
        let report = checker.finish();
        let said: Vec<String> = report.damage.iter().map(|d| format!("{}: {}", d.place, d.problem)).collect();
        assert_eq!(
            said,
            [
                "key j/x: not JSON",
                "run a: its journal misses entry 1",
                "run a: its workflow definition h1 is missing",
                "run b: it is in the run index but has no journal",
                "run b: its workflow definition h1 is missing",
                "run c: it has a journal but no row in the run index",
            ]
        );
        assert_eq!(report.records.get("entry"), Some(&3));
    }
}
