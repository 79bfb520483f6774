//! `sagaflow bench run`: N runs of a `mock` workflow, C in flight, on sled with
//! durable checkpoints (or the memory store); prints runs/s, steps/s, step
//! latency percentiles and peak RSS. `--waiting` instead parks N runs in a retry
//! backoff and prints the memory they hold.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{runtime, usage_error};
use crate::actions::Registry;
use crate::engine::compiled::CompiledWorkflow;
use crate::engine::driver::{Engine, EngineOptions};
use crate::engine::metrics::Metrics;
use crate::store::memory::MemoryStore;
use crate::store::postgres::PgStore;
use crate::store::sled::SledStore;
use crate::store::Store;

#[derive(clap::Args)]
pub(super) struct Args {
    /// How many runs in all.
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
    /// How many runs in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Steps per run.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// `sled` (durable, in a temporary folder unless --data), `memory`, or a
    /// PostgreSQL URL (`postgres://USER@HOST:PORT/DB`; `mock` steps only).
    #[arg(long, default_value = "sled")]
    store: String,
    #[arg(long)]
    data: Option<PathBuf>,
    /// Park the runs in a 10-minute retry backoff and measure the memory they hold.
    #[arg(long)]
    waiting: bool,
    /// With --waiting: park them in a 10-minute `sleep` instead.
    #[arg(long, requires = "waiting")]
    sleep: bool,
    /// With --waiting: park them in an `event.wait` (10-minute timeout) instead.
    #[arg(long, requires = "waiting", conflicts_with = "sleep")]
    event: bool,
    /// What each step runs: `mock`, or `sandbox` (inventory.reserve on the sandbox,
    /// in the same sled database: a transaction and an idempotency record a step).
    #[arg(long, default_value = "mock")]
    action: String,
    /// With --waiting: park them between two rounds of a `repeat` (10 minutes apart) instead.
    #[arg(long, requires = "waiting", conflicts_with_all = ["sleep", "event"])]
    repeat: bool,
    /// Each run runs this many child runs (`workflow.run`) of --steps steps each,
    /// one after the other, instead of --steps steps of its own.
    #[arg(long, default_value_t = 0, conflicts_with = "waiting")]
    children: usize,
    /// With --waiting: then stop, and measure a new process that resumes the parked runs.
    #[arg(long, requires = "waiting")]
    restart: bool,
    /// The second half of --restart: resume the runs parked in --data and measure.
    #[arg(long, hide = true, requires = "data")]
    resume_parked: bool,
    /// Run this many processes at once on the same PostgreSQL store, each
    /// with --runs runs, and print their steps/s together (a cluster of workers).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16),
          conflicts_with_all = ["waiting", "restart", "children", "data"])]
    workers: u16,
}

/// The step's action and input.
fn step_action(action: &str, i: usize) -> String {
    match action {
        "sandbox" => "action: inventory.reserve\n    with: { sku: BENCH-1, quantity: 1 }".to_owned(),
        _ => format!("action: mock\n    with: {{ output: {{ n: {i} }} }}"),
    }
}

/// The registry: built-ins for `mock`; the sandbox in the run store's database,
/// seeded with one product of unbounded stock, for `sandbox`.
fn registry(action: &str, store: Option<&SledStore>) -> Result<Arc<Registry>, String> {
    if action != "sandbox" {
        return Ok(crate::config::registry::builtin_shared().clone());
    }
    let seed = crate::services::sandbox::Seed::parse(
        std::path::Path::new("bench-seed.yaml"),
        "products:\n  - { sku: BENCH-1, name: bench, price_cents: 1, stock: 1000000000000 }\n",
    )?;
    crate::config::Backends::with_seed(&crate::config::Config::default(), store, seed)
        .map(|b| b.registry)
        .map_err(|e| e.0)
}

/// The parked step of `--waiting`, by how it parks.
struct Parking {
    waiting: bool,
    sleep: bool,
    event: bool,
    repeat: bool,
}

fn workflow(name: &str, action: &str, steps: usize, parking: &Parking) -> String {
    let Parking { waiting, sleep, event, repeat } = *parking;
    let mut y = format!("name: {name}\nsteps:\n");
    for i in 0..steps {
        y.push_str(&format!("  - id: s{i}\n    {}\n", step_action(action, i)));
    }
    if repeat {
        y.push_str("  - id: parked\n    action: mock\n    with: { output: { n: '{{iteration}}' } }\n    repeat: { until: '{{gt output.n 2}}', every: 10m, max: 3 }\n");
    } else if event {
        y.push_str("  - id: parked\n    action: event.wait\n    with: { type: bench.never, key: '{{run.id}}' }\n    timeout: 10m\n");
    } else if sleep {
        y.push_str("  - id: parked\n    action: sleep\n    with: { for: 10m }\n");
    } else if waiting {
        y.push_str("  - id: parked\n    action: mock\n    with: { fail_attempts: 1 }\n    retry: { max_attempts: 2, delay: 10m }\n");
    }
    y
}

/// The benchmark's workflow, and the library its `workflow.run` steps find
/// their child in (with `--children`: a parent of that many child steps).
fn workflows(
    args: &Args,
    parking: &Parking,
    registry: &Registry,
) -> Result<(Arc<CompiledWorkflow>, Arc<dyn crate::engine::library::Library>), String> {
    let compile = |name: &str, source: &str| {
        CompiledWorkflow::compile(std::path::Path::new(&format!("{name}.yaml")), source, registry)
            .map_err(|_| format!("the benchmark workflow `{name}` does not compile"))
    };
    if args.children == 0 {
        let wf = compile("bench_run", &workflow("bench_run", &args.action, args.steps, parking))?;
        return Ok((wf, Arc::new(crate::engine::library::NoLibrary)));
    }
    let child = compile("bench_child", &workflow("bench_child", &args.action, args.steps, parking))?;
    let mut parent = String::from("name: bench_run\nsteps:\n");
    for i in 0..args.children {
        parent.push_str(&format!("  - id: c{i}\n    action: workflow.run\n    with: {{ workflow: bench_child }}\n"));
    }
    let wf = compile("bench_run", &parent)?;
    Ok((wf, Arc::new(crate::engine::library::Shelf::of([child]))))
}

/// The process's peak and current resident memory, in MiB (Linux).
fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A new process's half of `--restart`: every parked run resumed, then its memory.
fn resume_parked(data: &std::path::Path) -> ExitCode {
    let store = match SledStore::open(data) {
        Ok(s) => Arc::new(s),
        Err(e) => return usage_error(&e.message),
    };
    let resumed = runtime().block_on(async move {
        let engine =
            Engine::start(store.clone(), crate::config::registry::builtin_shared().clone(), EngineOptions::default());
        let start = Instant::now();
        let ids = crate::engine::resume_unfinished(&engine, store.as_ref(), crate::config::registry::builtin()).await?;
        Ok::<_, String>((ids.len(), start.elapsed()))
    });
    let (count, elapsed) = match resumed {
        Ok(done) => done,
        Err(e) => return usage_error(&e),
    };
    let (peak, now) = rss_mib();
    println!("  after a restart: {count} runs resumed and parked again in {:.2} s", elapsed.as_secs_f64());
    println!("  resident memory {now:.1} MiB, peak {peak:.1} MiB");
    ExitCode::SUCCESS
}

/// Runs `bench run --resume-parked` on `data` in a new process, its output passed on.
fn restart(data: &std::path::Path) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return usage_error(&format!("cannot find this program to start it again: {e}")),
    };
    let status = std::process::Command::new(exe).args(["bench", "run", "--resume-parked", "--data"]).arg(data).status();
    match status {
        Ok(s) if s.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => usage_error(&format!("cannot start the resuming process: {e}")),
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

pub(super) fn run(args: Args) -> ExitCode {
    if args.workers > 1 {
        let (runs, concurrency, steps) = (args.runs, args.concurrency, args.steps);
        return super::bench::exit(super::bench_cluster::run(&args.store, args.workers, runs, concurrency, steps));
    }
    if let (true, Some(data)) = (args.resume_parked, &args.data) {
        return resume_parked(data);
    }
    if args.restart && (args.store != "sled" || args.action != "mock") {
        return usage_error("--restart needs the sled store and `mock` steps");
    }
    if !matches!(args.action.as_str(), "mock" | "sandbox") {
        return usage_error(&format!("--action is `mock` or `sandbox`, not `{}`", args.action));
    }
    let temp = std::env::temp_dir().join(format!("sagaflow-bench-run-{}", std::process::id()));
    let (sled, shared): (Option<Arc<SledStore>>, Option<Arc<dyn Store>>) = match args.store.as_str() {
        "memory" => (None, None),
        "sled" => match SledStore::open(args.data.as_ref().unwrap_or(&temp)) {
            Ok(s) => (Some(Arc::new(s)), None),
            Err(e) => return usage_error(&e.message),
        },
        url if is_postgres(url) && args.action == "mock" => {
            match PgStore::open(url, Some(&format!("bench-{}", std::process::id()))) {
                Ok(s) => (None, Some(Arc::new(s))),
                Err(e) => return usage_error(&e.message),
            }
        }
        url if is_postgres(url) => return usage_error("--store postgres://... runs `mock` steps only"),
        other => return usage_error(&format!("--store is `sled`, `memory` or a postgres:// URL, not `{other}`")),
    };
    let registry = match registry(&args.action, sled.as_deref()) {
        Ok(r) => r,
        Err(e) => return usage_error(&e),
    };
    let store: Arc<dyn Store> = match (sled, shared) {
        (Some(s), _) => s,
        (None, Some(s)) => s,
        (None, None) => Arc::new(MemoryStore::default()),
    };
    let parking = Parking { waiting: args.waiting, sleep: args.sleep, event: args.event, repeat: args.repeat };
    let (wf, library) = match workflows(&args, &parking, &registry) {
        Ok(found) => found,
        Err(e) => return usage_error(&e),
    };
    let metrics = Arc::new(Metrics::default());
    let options = EngineOptions { metrics: metrics.clone(), library, ..EngineOptions::default() };
    let (runs, concurrency, steps, waiting) = (args.runs, args.concurrency.max(1), args.steps, args.waiting);
    // Sleeps, event waits and repeats are parked once their (first) attempt has started.
    let sleep = args.sleep || args.event || args.repeat;
    let observed = metrics.clone();
    let elapsed = runtime().block_on(async move {
        let engine = Engine::start(store, registry, options);
        let start = Instant::now();
        if waiting {
            for _ in 0..runs {
                let _ = engine.start_run(wf.clone(), serde_json::json!({})).await;
            }
            let parked = |m: &Metrics| {
                if sleep {
                    m.attempts.load(Ordering::Relaxed)
                } else {
                    m.retries.load(Ordering::Relaxed)
                }
            };
            while parked(&metrics) < (if sleep { runs * (steps + 1) } else { runs }) as u64 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            return start.elapsed();
        }
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let clients: Vec<_> = (0..concurrency)
            .map(|_| {
                let (engine, wf, next) = (engine.clone(), wf.clone(), next.clone());
                tokio::spawn(async move {
                    while next.fetch_add(1, Ordering::Relaxed) < runs {
                        if let Ok(id) = engine.start_run(wf.clone(), serde_json::json!({})).await {
                            engine.wait(&id).await;
                        }
                    }
                })
            })
            .collect();
        for c in clients {
            let _ = c.await;
        }
        start.elapsed()
    });
    let (peak, now) = rss_mib();
    let secs = elapsed.as_secs_f64();
    if waiting {
        let how = if args.event {
            "an event.wait"
        } else if args.repeat {
            "a repeat, between rounds 10 minutes apart"
        } else if sleep {
            "a 10-minute sleep"
        } else {
            "a retry backoff"
        };
        println!("bench run --waiting: {runs} runs parked in {how} ({} store)", args.store);
        println!("  parked in {:.2} s; resident memory {now:.1} MiB, peak {peak:.1} MiB", secs);
        let code = match args.restart {
            true => restart(args.data.as_ref().unwrap_or(&temp)),
            false => ExitCode::SUCCESS,
        };
        let _ = std::fs::remove_dir_all(&temp);
        return code;
    }
    let _ = std::fs::remove_dir_all(&temp);
    let h = &observed.step_latency;
    let what = if args.action == "sandbox" { "sandbox (inventory.reserve)" } else { "mock" };
    let steps = steps * args.children.max(1);
    match args.children {
        0 => println!("bench run: {runs} runs x {steps} {what} steps, {concurrency} in flight, {} store", args.store),
        n => println!(
            "bench run: {runs} runs x {n} child runs of {} {what} steps ({steps} in all), {concurrency} in flight, {} store",
            args.steps, args.store
        ),
    }
    println!("  {:.0} runs/s, {:.0} steps/s ({:.2} s)", runs as f64 / secs, (runs * steps) as f64 / secs, secs);
    println!("  journal entries: {:.1} a run", observed.entries.load(Ordering::Relaxed) as f64 / runs.max(1) as f64);
    println!(
        "  step latency (decided -> durably finished): p50 {:.3} ms, p99 {:.3} ms",
        h.quantile(0.5) as f64 / 1000.0,
        h.quantile(0.99) as f64 / 1000.0
    );
    let c = &observed.commit_latency;
    println!(
        "  group commits: {} ({:.1} entries each), p50 {:.3} ms, p99 {:.3} ms",
        c.count(),
        (observed.attempts.load(Ordering::Relaxed) * 2) as f64 / c.count().max(1) as f64,
        c.quantile(0.5) as f64 / 1000.0,
        c.quantile(0.99) as f64 / 1000.0
    );
    println!("  peak resident memory {peak:.1} MiB");
    ExitCode::SUCCESS
}
