//! `sagaflow bench validate`: validates generated workflow files through the
//! `sagaflow validate DIR` command itself and prints files per second.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

#[derive(clap::Args)]
pub(super) struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Run N runs of a mock workflow, C at a time, and print runs/s, steps/s, step latency and peak RSS.
    Run(super::bench_run::Args),
    /// Start `sagaflow serve` and post runs of a 5-step mock workflow from C clients; print runs/s and latency.
    Serve(super::bench_serve::Args),
    /// Park N runs on one `serve` worker of a shared store, SIGKILL it, and time another taking them over.
    Takeover(super::bench_takeover::Args),
    /// Validate N generated workflow files of S steps each, R times, with `sagaflow validate DIR`.
    Validate {
        #[arg(long, default_value_t = 1000)]
        files: usize,
        #[arg(long, default_value_t = 20)]
        steps: usize,
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Write the generated files here and keep them (default: a temporary folder, removed after).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Instead: one file whose N steps form one chain of `needs` (the largest graph a 1 MiB file holds
        /// is about 20,000 steps); prints the time and the validator's peak memory.
        #[arg(long, value_name = "N")]
        chain: Option<usize>,
    },
}

pub(super) fn run(args: Args) -> ExitCode {
    match args.what {
        What::Run(args) => super::bench_run::run(args),
        What::Serve(args) => super::bench_serve::run(args),
        What::Takeover(args) => super::bench_takeover::run(args),
        What::Validate { chain: Some(steps), runs, .. } => exit(bench_chain(steps, runs.max(1))),
        What::Validate { files, steps, runs, dir, chain: None } => exit(bench_validate(files, steps, runs.max(1), dir)),
    }
}

/// A benchmark's end: its error said, and the exit code.
pub(super) fn exit(done: Result<(), String>) -> ExitCode {
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn bench_validate(files: usize, steps: usize, runs: usize, keep: Option<PathBuf>) -> Result<(), String> {
    let dir =
        keep.clone().unwrap_or_else(|| std::env::temp_dir().join(format!("sagaflow-bench-{}", std::process::id())));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = generate(&dir, files, steps).and_then(|()| time_runs(&dir, files, runs));
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut times = result?;
    times.sort_by(f64::total_cmp);
    let best = times[0];
    let median = times[times.len() / 2];
    println!("bench validate: {files} files x {steps} steps, {runs} runs of `sagaflow validate DIR`");
    println!("  best   {:>8.1} ms  {:>9.0} files/s", best * 1e3, files as f64 / best);
    println!("  median {:>8.1} ms  {:>9.0} files/s", median * 1e3, files as f64 / median);
    Ok(())
}

/// Validates one file of a `steps`-long chain `runs` times; prints the best and
/// median time and the validating process's peak resident memory.
fn bench_chain(steps: usize, runs: usize) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("sagaflow-bench-chain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let text = crate::dsl::sample::chain(steps);
    let file = dir.join("chain.yaml");
    let written = std::fs::write(&file, &text).map_err(|e| format!("cannot write {}: {e}", file.display()));
    let result = written.and_then(|()| time_runs(&dir, 1, runs));
    let _ = std::fs::remove_dir_all(&dir);
    let mut times = result?;
    times.sort_by(f64::total_cmp);
    println!(
        "bench validate --chain: 1 file of {steps} steps ({} KB) in one chain of `needs`, {runs} runs",
        text.len() / 1000
    );
    println!("  best   {:>8.1} ms", times[0] * 1e3);
    println!("  median {:>8.1} ms", times[times.len() / 2] * 1e3);
    println!("  peak resident memory of `sagaflow validate` {:.1} MiB", children_peak_rss_mib());
    Ok(())
}

/// The largest peak resident memory of the child processes waited for (Linux).
fn children_peak_rss_mib() -> f64 {
    // SAFETY: getrusage writes only the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return 0.0;
    }
    usage.ru_maxrss as f64 / 1024.0
}

fn time_runs(dir: &Path, files: usize, runs: usize) -> Result<Vec<f64>, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let out = Command::new(&exe)
            .args(["validate", "--format", "json"])
            .arg(dir)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run validate: {e}"))?;
        times.push(start.elapsed().as_secs_f64());
        let report: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("validate printed no JSON report: {e}"))?;
        if report["files"] != files || report["errors"] != 0 || report["warnings"] != 0 {
            return Err(format!("the generated files did not validate clean: {}", report["diagnostics"][0]));
        }
    }
    Ok(times)
}

fn generate(dir: &Path, files: usize, steps: usize) -> Result<(), String> {
    for i in 0..files {
        let path: PathBuf = dir.join(format!("bench_{i:05}.yaml"));
        std::fs::write(&path, crate::dsl::sample::workflow(i, steps))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
