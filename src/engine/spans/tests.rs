//! Spans from golden journals: the tree a run's journal gives, whole and when
//! the tracer meets the run mid-journal (after a restart); and the span an
//! attempt sends is the span exported for it.

use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::journal::entry::Entry;

fn golden(name: &str) -> (String, Arc<CompiledWorkflow>, Vec<Entry>) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/journals").join(name);
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    let wf = CompiledWorkflow::compile(
        &file,
        golden["definition"].as_str().unwrap_or_default(),
        crate::config::registry::builtin(),
    )
    .unwrap_or_else(|e| panic!("{:?}", e.0.diagnostics));
    let entries = serde_json::from_value(golden["entries"].clone()).unwrap_or_else(|e| panic!("{e}"));
    (golden["run_id"].as_str().unwrap_or_default().to_owned(), wf, entries)
}

use std::sync::Arc;

/// The spans of a whole journal, by name.
fn whole(run_id: &str, wf: &CompiledWorkflow, entries: &[Entry]) -> Vec<SpanData> {
    let mut spans = RunSpans::new(run_id, wf);
    entries.iter().flat_map(|e| spans.apply(e)).collect()
}

#[test]
fn a_declined_orders_spans_form_one_tree_with_its_compensations_under_their_steps() {
    let (run_id, wf, entries) = golden("order_declined.json");
    let spans = whole(&run_id, &wf, &entries);
    let by_id: HashMap<[u8; 8], &SpanData> = spans.iter().map(|s| (s.span_id, s)).collect();
    assert_eq!(by_id.len(), spans.len(), "each span once");
    let root: Vec<&SpanData> = spans.iter().filter(|s| s.parent.is_none()).collect();
    assert_eq!(root.len(), 1, "one root: the run");
    assert_eq!(root[0].name, format!("run {}", wf.name));
    assert!(root[0].error.is_some(), "a declined order did not succeed");
    for span in spans.iter().filter(|s| s.parent.is_some()) {
        let parent =
            by_id.get(&span.parent.unwrap_or_default()).unwrap_or_else(|| panic!("{}'s parent is exported", span.name));
        let expected = if span.name.starts_with("step ") { "run " } else { "step " };
        assert!(parent.name.starts_with(expected), "{} hangs under {}", span.name, parent.name);
        assert!(parent.start_ms <= span.start_ms && span.end_ms <= parent.end_ms.max(span.end_ms), "{}", span.name);
        assert_eq!(span.trace_id, trace_of(&run_id));
    }
    let undo = spans.iter().filter(|s| s.name.starts_with("undo ")).count();
    assert!(undo > 0, "its compensations are spans: {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>());
    assert!(spans.iter().any(|s| s.error.as_deref().is_some_and(|e| e.starts_with("card_declined: "))));
}

#[test]
fn met_mid_journal_a_run_gives_the_same_spans_as_followed_from_its_start() {
    for name in ["order_placement.json", "order_declined.json", "payment_refund.json"] {
        let (run_id, wf, entries) = golden(name);
        let all = whole(&run_id, &wf, &entries);
        for cut in 0..entries.len() {
            let mut met = RunSpans::new(&run_id, &wf);
            let mut before = RunSpans::new(&run_id, &wf);
            let earlier: Vec<SpanData> = entries[..cut].iter().flat_map(|e| before.apply(e)).collect();
            entries[..cut].iter().for_each(|e| drop(met.apply(e)));
            let later: Vec<SpanData> = entries[cut..].iter().flat_map(|e| met.apply(e)).collect();
            assert_eq!([earlier, later].concat(), all, "{name}, met at entry {cut}");
        }
    }
}

#[test]
fn the_span_an_attempt_sends_is_the_span_exported_for_it() {
    let (run_id, wf, entries) = golden("order_placement.json");
    let mut state = RunState::new(run_id.clone(), wf.clone());
    let mut spans = RunSpans::new(&run_id, &wf);
    let mut sent = Vec::new();
    for entry in &entries {
        state.apply(entry);
        if let Some((key, _)) = AttemptKey::started_by(entry) {
            sent.push(attempt_parent(&state, &key).expect("a started attempt has a span").span_id);
        }
        for span in spans.apply(entry) {
            if span.name.contains(" #") {
                assert!(sent.contains(&span.span_id), "{} was sent before it was exported", span.name);
            }
        }
    }
    assert!(!sent.is_empty());
}
