//! `GET /metrics`: the engine's counters and histograms in Prometheus' text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::App;
use crate::engine::metrics::{Histogram, Metrics};

/// Latency bucket bounds, in seconds.
const BOUNDS: [f64; 14] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

pub(crate) fn render(app: &App) -> String {
    let m = app.engine.metrics();
    let mut out = String::new();
    out.push_str("# HELP sagaflow_runs Runs by workflow and status.\n# TYPE sagaflow_runs gauge\n");
    for ((workflow, status), n) in m.runs_by_status() {
        let _ = writeln!(out, "sagaflow_runs{{workflow=\"{}\",status=\"{}\"}} {n}", escape(&workflow), escape(&status));
    }
    counter(&mut out, "sagaflow_step_attempts_total", "Step attempts started.", m.attempts.load(Ordering::Relaxed));
    counter(&mut out, "sagaflow_retries_total", "Retries scheduled.", m.retries.load(Ordering::Relaxed));
    counter(
        &mut out,
        "sagaflow_compensations_total",
        "Compensations started.",
        m.compensations.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "sagaflow_runs_finished_total",
        "Runs that ended in this process.",
        m.runs_finished.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "sagaflow_runs_pruned_total",
        "Finished runs that retention removed from the store in this process.",
        m.runs_pruned.load(Ordering::Relaxed),
    );
    counter(
        &mut out,
        "sagaflow_spans_dropped_total",
        "Spans the OTLP exporter dropped: its queue was full or the collector did not take them.",
        m.spans_dropped.load(Ordering::Relaxed),
    );
    gauge(&mut out, "sagaflow_queue_depth", "Attempts waiting for a free slot.", m.queued.load(Ordering::Relaxed));
    gauge(&mut out, "sagaflow_attempts_in_flight", "Attempts running or queued.", m.in_flight.load(Ordering::Relaxed));
    gauge(&mut out, "sagaflow_long_requests_open", "Event streams and ?wait requests open.", app.long_requests_open());
    let storage = &app.engine.metrics().storage;
    gauge(
        &mut out,
        "sagaflow_storage_available",
        "1 when the store takes writes, 0 while it cannot (a full disk).",
        u64::from(app.storage_error().is_none()),
    );
    let failures = storage.failures.load(std::sync::atomic::Ordering::Relaxed);
    counter(
        &mut out,
        "sagaflow_storage_failures_total",
        "Group commits the store refused (each is tried again).",
        failures,
    );
    gauge(&mut out, "sagaflow_connections_open", "HTTP connections open.", app.connections.held());
    histogram(
        &mut out,
        "sagaflow_step_latency_seconds",
        "From an attempt being decided to its end being durable.",
        &m.step_latency,
    );
    histogram(&mut out, "sagaflow_commit_latency_seconds", "One group commit to the store.", &m.commit_latency);
    let snapshot = app.catalog.snapshot();
    let invalid = snapshot.files.values().filter(|f| !f.is_valid()).count();
    out.push_str("# HELP sagaflow_workflows Workflow files by state.\n# TYPE sagaflow_workflows gauge\n");
    let _ = writeln!(out, "sagaflow_workflows{{state=\"active\"}} {}", snapshot.names().count());
    let _ = writeln!(out, "sagaflow_workflows{{state=\"invalid\"}} {invalid}");
    out
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n");
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n");
}

fn histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} histogram\n");
    for (bound, n) in Metrics::cumulative(h, &BOUNDS) {
        let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(out, "{name}_sum {}", h.sum_micros() as f64 / 1_000_000.0);
    let _ = writeln!(out, "{name}_count {}", h.count());
}

fn escape(label: &str) -> String {
    label.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
