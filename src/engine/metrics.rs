//! Engine metrics: lock-free latency histograms (the server's `/metrics` and the
//! benchmarks read them).

use std::sync::atomic::{AtomicU64, Ordering};

/// Buckets of 1/16 of a power of two, from 1 µs to about 68 s.
const SUB: usize = 16;
const OCTAVES: usize = 26;

/// A histogram of durations in microseconds, good to about 6%.
pub struct Histogram {
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
    pub fn record(&self, micros: u64) {
        self.buckets[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum_micros(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }

    /// The value under which `q` (0..=1) of the recorded values fall.
    pub fn quantile(&self, q: f64) -> u64 {
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
pub struct Metrics {
    /// From a step attempt being decided to its end being durable.
    pub step_latency: Histogram,
    /// One group commit: write, flush, fdatasync.
    pub commit_latency: Histogram,
    pub attempts: AtomicU64,
    pub retries: AtomicU64,
    pub compensations: AtomicU64,
    pub runs_finished: AtomicU64,
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
}
