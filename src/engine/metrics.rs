//! Engine metrics: lock-free latency histograms (the server's `/metrics` and the
//! benchmarks read them).

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets of 1/16 of a power of two, from 1 µs to about 68 s.
const SUB: usize = 16;
const OCTAVES: usize = 26;

/// A histogram of durations in microseconds, good to about 6%.
pub(crate) struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: (0..SUB * OCTAVES).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
        }
    }
}

fn bucket_of(micros: u64) -> usize {
    let v = micros.max(1);
    let octave = 63 - v.leading_zeros() as usize;
    let sub = if octave >= 4 { ((v >> (octave - 4)) & 0xf) as usize } else { ((v << (4 - octave)) & 0xf) as usize };
    (octave * SUB + sub).min(SUB * OCTAVES - 1)
}

fn bucket_low(bucket: usize) -> u64 {
    let (octave, sub) = (bucket / SUB, (bucket % SUB) as u64);
    if octave >= 4 {
        (16 + sub) << (octave - 4)
    } else {
        (16 + sub) >> (4 - octave)
    }
}

impl Histogram {
    pub(crate) fn record(&self, micros: u64) {
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn sum_micros(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// The value under which `q` (0..=1) of the recorded values fall.
    pub(crate) fn quantile(&self, q: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let target = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= target {
                return bucket_low(i + 1);
            }
        }
        bucket_low(self.buckets.len())
    }
}

/// What the engine measures.
#[derive(Default)]
pub(crate) struct Metrics {
    /// Runs by (workflow, status): moved as each run's status changes.
    runs: std::sync::Mutex<std::collections::BTreeMap<(String, String), i64>>,
    /// Attempts launched and not yet ended, waiting for a permit or running.
    pub in_flight: AtomicU64,
    /// Attempts waiting for a permit (the concurrency bound is reached).
    pub queued: AtomicU64,
    /// From a step attempt being decided to its end being durable.
    pub step_latency: Histogram,
    /// One group commit: write, flush, fdatasync.
    pub commit_latency: Histogram,
    pub attempts: AtomicU64,
    /// Journal entries committed.
    pub entries: AtomicU64,
    pub retries: AtomicU64,
    pub compensations: AtomicU64,
    pub runs_finished: AtomicU64,
    /// Finished runs retention removed from the store.
    pub runs_pruned: AtomicU64,
    /// Spans the OTLP exporter dropped (its queue full, the collector away).
    pub spans_dropped: std::sync::Arc<AtomicU64>,
    /// Whether the store takes writes, and why not.
    pub storage: StorageHealth,
}

/// Whether the store takes writes: after a failed group commit the engine
/// tries the same commit again until it is written; meanwhile this holds the
/// error, for `/healthz`, `/metrics` and the API's `503 storage_unavailable`.
#[derive(Default)]
pub(crate) struct StorageHealth {
    error: std::sync::Mutex<Option<String>>,
    /// Group commits that failed, since the start.
    pub failures: AtomicU64,
}

impl StorageHealth {
    /// The error that stops writes now; none when the store takes them.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn failed(&self, error: String) {
        self.failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error);
    }

    pub(crate) fn recovered(&self) {
        *self.error.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl Metrics {
    /// A run of `workflow` went from status `from` (`""`: it is new) to `to`.
    pub(crate) fn run_moved(&self, workflow: &str, from: &str, to: &str) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        if !from.is_empty() {
            *runs.entry((workflow.to_owned(), from.to_owned())).or_default() -= 1;
        }
        *runs.entry((workflow.to_owned(), to.to_owned())).or_default() += 1;
    }

    /// Runs found in the store at start.
    pub(crate) fn runs_counted(&self, workflow: &str, status: &str, n: u64) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        *runs.entry((workflow.to_owned(), status.to_owned())).or_default() += n as i64;
    }

    /// A run left the store (retention).
    pub(crate) fn run_left(&self, workflow: &str, status: &str) {
        let mut runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        *runs.entry((workflow.to_owned(), status.to_owned())).or_default() -= 1;
        self.runs_pruned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many runs there are of each workflow in each status.
    pub(crate) fn runs_by_status(&self) -> Vec<((String, String), i64)> {
        let runs = self.runs.lock().unwrap_or_else(|p| p.into_inner());
        runs.iter().filter(|(_, n)| **n != 0).map(|(k, n)| (k.clone(), *n)).collect()
    }

    /// The histogram's buckets as Prometheus wants them: (upper bound in
    /// seconds, count of values at or under it), cumulative, at these bounds.
    pub(crate) fn cumulative(h: &Histogram, bounds_seconds: &[f64]) -> Vec<(f64, u64)> {
        let mut out = Vec::with_capacity(bounds_seconds.len());
        let mut seen = 0u64;
        let mut bucket = 0usize;
        for &bound in bounds_seconds {
            let limit = (bound * 1_000_000.0) as u64;
            while bucket < h.buckets.len() && bucket_low(bucket + 1) <= limit {
                seen += h.buckets[bucket].load(Ordering::Relaxed);
                bucket += 1;
            }
            out.push((bound, seen));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_close() {
        let h = Histogram::default();
        for v in 1..=10_000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5) as f64;
        let p99 = h.quantile(0.99) as f64;
        assert!((p50 - 5000.0).abs() / 5000.0 < 0.1, "{p50}");
        assert!((p99 - 9900.0).abs() / 9900.0 < 0.1, "{p99}");
        assert_eq!(h.count(), 10_000);
    }

    #[test]
    fn cumulative_buckets_grow_and_end_at_the_count_below_the_top() {
        let h = Histogram::default();
        for v in [500u64, 5_000, 50_000, 500_000] {
            h.record(v);
        }
        let b = Metrics::cumulative(&h, &[0.001, 0.01, 0.1, 1.0]);
        assert_eq!(b.iter().map(|(_, n)| *n).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    }

    #[test]
    fn runs_move_between_statuses() {
        let m = Metrics::default();
        m.run_moved("a", "", "running");
        m.run_moved("a", "running", "succeeded");
        m.run_moved("a", "", "running");
        assert_eq!(
            m.runs_by_status(),
            vec![(("a".into(), "running".into()), 1), (("a".into(), "succeeded".into()), 1)]
        );
    }
}
