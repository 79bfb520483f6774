//! Printing run records: the JSON contract of DSL.md, or a table for people.

use std::process::ExitCode;

use crate::engine::record::RunRecord;

use super::RunFormat;

/// Prints a run; exit 0 when it succeeded, 1 otherwise.
pub(super) fn print_run(record: &RunRecord, format: RunFormat) -> ExitCode {
    match format {
        RunFormat::Json => println!("{}", serde_json::to_string(record).unwrap_or_default()),
        RunFormat::Human => print!("{}", human(record)),
    }
    if record.status == "succeeded" {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A run as a person reads it: a header, a table of steps, errors in words.
pub(super) fn human(r: &RunRecord) -> String {
    let mut out = format!("run {}  workflow {}  status {}\n", r.run_id, r.workflow, r.status);
    if !r.injected.is_empty() {
        let injected: Vec<String> = r.injected.iter().map(|i| i.to_string()).collect();
        out.push_str(&format!("  injected failures: {}\n", injected.join(", ")));
    }
    let width = r.steps.iter().map(|s| s.id.len()).max().unwrap_or(4).max(4);
    out.push_str(&format!("  {:width$}  {:20}  {:>8}  {:>9}\n", "step", "status", "attempts", "time"));
    for s in &r.steps {
        let time = s.duration_ms.map_or(String::new(), |ms| format!("{ms} ms"));
        out.push_str(&format!("  {:width$}  {:20}  {:>8}  {:>9}\n", s.id, s.status, s.attempts, time));
        if let Some(e) = &s.error {
            out.push_str(&format!("  {:width$}    {}: {}\n", "", e.code, e.message));
        }
    }
    if !r.compensations.is_empty() {
        out.push_str("  compensations, in the order they ran:\n");
        for c in &r.compensations {
            let item = c.item.map_or(String::new(), |i| format!(" item {i}"));
            out.push_str(&format!(
                "    {}{item}: {} ({} attempt{})\n",
                c.step,
                c.status,
                c.attempts,
                if c.attempts == 1 { "" } else { "s" }
            ));
        }
    }
    if let Some(e) = &r.error {
        let at = e.step.as_ref().map_or(String::new(), |s| format!(" at step {s}"));
        out.push_str(&format!("  error{at}: {} ({})\n", e.message, e.code));
    }
    if !r.output.is_null() {
        out.push_str(&format!("  output: {}\n", r.output));
    }
    out
}
