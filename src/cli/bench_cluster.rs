//! `sagaflow bench run --workers N --store postgres://...`: N `bench run`
//! processes at once on one database, each a worker with its own runs, and
//! their durable steps/s together (all their steps over the longest one's time).

use std::process::{Command, Stdio};

/// Runs the workers; prints each one's line and the total.
pub(super) fn run(store: &str, workers: u16, runs: usize, concurrency: usize, steps: usize) -> Result<(), String> {
    if !store.starts_with("postgres://") && !store.starts_with("postgresql://") {
        return Err("--workers needs a store they share: --store postgres://...".into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let (r, c, s) = (runs.to_string(), concurrency.to_string(), steps.to_string());
    let args = ["bench", "run", "--store", store, "--runs", &r, "--concurrency", &c, "--steps", &s];
    let children = (0..workers)
        .map(|_| Command::new(&exe).args(args).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot start a worker: {e}"))?;
    let mut longest = 0f64;
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout);
        let line =
            text.lines().find(|l| l.contains("steps/s")).ok_or_else(|| format!("worker {} said: {text}", i + 1))?;
        println!("  worker {}: {}", i + 1, line.trim());
        longest = longest.max(seconds(line).ok_or_else(|| format!("no time in `{line}`"))?);
    }
    let total = (usize::from(workers) * runs * steps) as f64;
    println!(
        "bench run: {workers} workers on {} together: {:.0} steps/s ({} steps in {longest:.2} s, the longest worker's time)",
        crate::store::postgres::without_password(store),
        total / longest.max(f64::EPSILON),
        total
    );
    Ok(())
}

/// The time at the end of a `bench run` line: `... (1.41 s)`.
fn seconds(line: &str) -> Option<f64> {
    line.rsplit('(').next()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_workers_time_is_read_from_its_line() {
        assert_eq!(super::seconds("  2128 runs/s, 21284 steps/s (1.41 s)"), Some(1.41));
        assert_eq!(super::seconds("no time"), None);
    }
}
