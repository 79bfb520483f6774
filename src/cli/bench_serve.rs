//! `sagaflow bench serve`: a `sagaflow serve` process on loopback (or W of
//! them on one shared store), and C clients posting runs of a 5-step `mock`
//! workflow for S seconds, spread over the workers. Prints runs accepted per
//! second (each durable when accepted), accept latency percentiles, how soon
//! a changed workflow file reaches new runs under that load, and how long the
//! accepted runs took to finish.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(clap::Args)]
pub(super) struct Args {
    /// How long the clients post.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent clients (HTTP/1.1 connections, each one request at a time).
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Steps of the mock workflow.
    #[arg(long, default_value_t = 5)]
    steps: usize,
    /// At most this many runs a second across all clients (default: as fast as they go).
    #[arg(long)]
    rate: Option<u32>,
    /// The server keeps finished runs this long (`[retention] finished`).
    #[arg(long, value_name = "DURATION")]
    retention: Option<String>,
    /// Print the data directory's size, and the runs the store holds, every N seconds.
    #[arg(long, value_name = "N")]
    size_every: Option<u64>,
    /// The store the servers use (default: a sled directory of their own).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// `serve` processes on that store (more than one needs a shared store), the clients spread over them.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    workers: u16,
}

pub(super) fn run(args: Args) -> ExitCode {
    super::bench::exit(super::runtime().block_on(bench(args)))
}

fn workflow(steps: usize, mark: &str) -> String {
    let mut y = String::from(
        "name: bench\ninput: { type: object, required: [n], properties: { n: { type: integer } } }\nsteps:\n",
    );
    for i in 0..steps {
        y.push_str(&format!("  - {{ id: s{i}, action: mock, with: {{ output: {{ step: {i}, n: \"{{{{input.n}}}}\", mark: {mark} }} }} }}\n"));
    }
    y
}

pub(super) struct Server {
    pub(super) child: Child,
    pub(super) url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
            let _ = self.child.wait();
        }
    }
}

/// Starts `sagaflow serve` in `dir`, on `store` as worker `id` (none: on
/// `dir/data`), its log to `log` (none: this process's stderr).
pub(super) fn start_server(dir: &Path, store: Option<&str>, id: &str, log: Option<&Path>) -> Result<Server, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut command = Command::new(exe);
    command.args(["serve", "--listen", "127.0.0.1:0", "--workflows", "workflows"]);
    match store {
        Some(url) => command.args(["--store", url, "--worker-id", id]),
        None => command.args(["--data", "data"]),
    };
    // A log kept to be read says what the server does (`info`).
    let stderr = match log {
        Some(path) => {
            command.env("SAGAFLOW_LOG", "info");
            Stdio::from(std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => Stdio::inherit(),
    };
    let mut child = command
        .current_dir(dir)
        .env_remove("SAGAFLOW_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start sagaflow serve: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).map_err(|e| format!("sagaflow serve did not start: {e}"))?;
    let url = line.trim().rsplit(' ').next().unwrap_or_default().to_owned();
    if !url.starts_with("http://") {
        return Err(format!("sagaflow serve did not say where it listens: {line}"));
    }
    Ok(Server { child, url })
}

async fn bench(args: Args) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    std::fs::create_dir_all(dir.path().join("workflows")).map_err(|e| e.to_string())?;
    let file = dir.path().join("workflows/bench.yaml");
    std::fs::write(&file, workflow(args.steps, "1")).map_err(|e| e.to_string())?;
    if let Some(period) = &args.retention {
        let config = format!("[retention]\nfinished = {}\n", json!(period));
        std::fs::write(dir.path().join("sagaflow.toml"), config).map_err(|e| e.to_string())?;
    }
    if args.workers > 1 && args.store.is_none() {
        return Err("--workers above 1 needs a store they share: --store postgres://...".into());
    }
    let servers = (0..args.workers)
        .map(|w| start_server(dir.path(), args.store.as_deref(), &format!("bench-w{}", w + 1), None))
        .collect::<Result<Vec<_>, _>>()?;
    let server = &servers[0];
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build().map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    // Each client waits this long between its posts' starts, so all together keep to the rate.
    let pace = args.rate.map(|r| Duration::from_secs_f64(args.clients as f64 / f64::from(r.max(1))));
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let url = format!("{}/v1/workflows/bench/runs", servers[c % servers.len()].url);
            tokio::spawn(client(http.clone(), url, stop.clone(), c, pace))
        })
        .collect();
    let started = Instant::now();
    if let Some(every) = args.size_every {
        tokio::spawn(report_sizes(
            http.clone(),
            server.url.clone(),
            dir.path().join("data"),
            every.max(1),
            stop.clone(),
        ));
    }
    tokio::time::sleep(Duration::from_secs(args.seconds) / 2).await;
    let visible = reload_under_load(&http, &server.url, &file, args.steps).await?;
    tokio::time::sleep((Duration::from_secs(args.seconds)).saturating_sub(started.elapsed())).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    let mut failed = 0usize;
    for c in clients {
        let (l, f) = c.await.map_err(|e| e.to_string())?;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = latencies.len();
    let bases: Vec<&str> = servers.iter().map(|s| s.url.as_str()).collect();
    let drained = finish_all(&http, &bases, accepted).await?;
    latencies.sort_unstable();
    let q =
        |p: f64| latencies.get(((accepted as f64 * p) as usize).min(accepted.saturating_sub(1))).copied().unwrap_or(0);
    println!(
        "bench serve: POST /v1/workflows/bench/runs ({}-step mock workflow), {} clients, {} worker(s) on {}, {elapsed:.1} s",
        args.steps,
        args.clients,
        args.workers,
        args.store.as_deref().map_or_else(|| "sled".to_owned(), crate::store::postgres::without_password)
    );
    println!(
        "  accepted   {accepted} runs, {:.0} runs/s (202, durable), {failed} refused or failed",
        accepted as f64 / elapsed
    );
    println!(
        "  latency    p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        q(0.50) as f64 / 1e3,
        q(0.90) as f64 / 1e3,
        q(0.99) as f64 / 1e3,
        latencies.last().copied().unwrap_or(0) as f64 / 1e3
    );
    println!(
        "  reload     a changed file reached new runs {:.0} ms after the write, under this load",
        visible.as_secs_f64() * 1e3
    );
    println!("  finished   all {accepted} runs succeeded {:.1} s after the clients stopped", drained.as_secs_f64());
    Ok(())
}

/// One client: posts runs one after another; answers the accept latencies (µs) and failures.
async fn client(
    http: reqwest::Client,
    url: String,
    stop: Arc<AtomicBool>,
    c: usize,
    pace: Option<Duration>,
) -> (Vec<u64>, usize) {
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut n = c as u64;
    let mut next = tokio::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(pace) = pace {
            tokio::time::sleep_until(next).await;
            next += pace;
        }
        let began = Instant::now();
        let sent = http.post(&url).json(&json!({ "input": { "n": n } })).send().await;
        match sent {
            Ok(r) if r.status().as_u16() == 202 => latencies.push(began.elapsed().as_micros() as u64),
            _ => failed += 1,
        }
        n += 1000;
    }
    (latencies, failed)
}

/// Rewrites the workflow; answers how long until the API gives new runs the new version.
async fn reload_under_load(http: &reqwest::Client, base: &str, file: &Path, steps: usize) -> Result<Duration, String> {
    let before = version(http, base).await?;
    let written = Instant::now();
    std::fs::write(file, workflow(steps, "2")).map_err(|e| e.to_string())?;
    loop {
        if version(http, base).await? != before {
            return Ok(written.elapsed());
        }
        if written.elapsed() > Duration::from_secs(30) {
            return Err("the changed workflow never became active".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn version(http: &reqwest::Client, base: &str) -> Result<String, String> {
    let w: Value = get(http, &format!("{base}/v1/workflows/bench")).await?;
    Ok(w["version"].as_str().unwrap_or_default().to_owned())
}

async fn get(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let r = http.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?;
    r.json().await.map_err(|e| format!("GET {url}: {e}"))
}

/// Every `every` seconds until stopped: the data directory's size on disk, and
/// the runs the store holds and retention removed (from `/metrics`).
async fn report_sizes(
    http: reqwest::Client,
    base: String,
    data: std::path::PathBuf,
    every: u64,
    stop: Arc<AtomicBool>,
) {
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_secs(every)).await;
        let metrics = metrics(&http, &base).await.unwrap_or_default();
        let held: u64 = sum(&metrics, "sagaflow_runs{");
        let pruned: u64 = sum(&metrics, "sagaflow_runs_pruned_total ");
        println!(
            "  size       at {:>5} s: data directory {:.1} MiB, {held} runs in the store, {pruned} removed",
            started.elapsed().as_secs(),
            dir_bytes(&data) as f64 / 1048576.0
        );
    }
}

/// Bytes the files under `dir` take on disk.
fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

async fn metrics(http: &reqwest::Client, base: &str) -> Result<String, String> {
    let response = http.get(format!("{base}/metrics")).send().await.map_err(|e| e.to_string())?;
    response.text().await.map_err(|e| e.to_string())
}

/// The sum of the values of the metric lines that start with `prefix`.
fn sum(metrics: &str, prefix: &str) -> u64 {
    metrics.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok()).sum()
}

/// Waits until every accepted run succeeded (from the workers' `/metrics`); answers how long it took.
async fn finish_all(http: &reqwest::Client, bases: &[&str], accepted: usize) -> Result<Duration, String> {
    let began = Instant::now();
    loop {
        let mut done = 0;
        for base in bases {
            // Counted as they end (the store may have let the oldest go already).
            done += sum(&metrics(http, base).await?, "sagaflow_runs_finished_total ") as usize;
        }
        if done >= accepted {
            return Ok(began.elapsed());
        }
        if began.elapsed() > Duration::from_secs(300) {
            return Err(format!("only {done} of {accepted} runs succeeded within 5 minutes"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
