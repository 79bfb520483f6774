//! `sagaflow bench takeover --store postgres://...`: one `serve` worker parks
//! N runs (each sleeps an hour), a second worker stands by, and the first is
//! SIGKILLed. Prints how long after the kill the dead worker was declared
//! so, its runs claimed, and all of them running again (replayed, their
//! timers armed) on the survivor.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::bench_serve::start_server;
use crate::store::postgres::PgStore;
use crate::store::{ReadRuns, RunStatus};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The store the two workers share.
    #[arg(long, value_name = "URL")]
    store: String,
    /// Runs the first worker parks before it is killed.
    #[arg(long, default_value_t = 10_000)]
    runs: usize,
}

const PARKED: &str = "name: parked
steps:
  - id: nap
    action: sleep
    with: { for: 1h }
";

pub(super) fn run(args: Args) -> ExitCode {
    super::bench::exit(super::runtime().block_on(bench(args)))
}

async fn bench(args: Args) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary folder: {e}"))?;
    std::fs::create_dir_all(dir.path().join("workflows")).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("workflows/parked.yaml"), PARKED).map_err(|e| e.to_string())?;
    let reader = Arc::new(PgStore::open(&args.store, None).map_err(|e| e.message)?);
    let mut first = start_server(dir.path(), Some(&args.store), "bench-first", None)?;
    park(&first.url, args.runs).await?;
    let parked = Instant::now();
    while waiting(&reader)? < args.runs {
        if parked.elapsed() > Duration::from_secs(300) {
            return Err("the runs never all parked".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = dir.path().join("survivor.log");
    let survivor = start_server(dir.path(), Some(&args.store), "bench-survivor", Some(&log))?;
    let killed = Instant::now();
    let _ = first.child.kill();
    let _ = first.child.wait();
    let (mut declared, mut claimed) = (None, None);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if declared.is_none() && text.contains("lease ran out") {
            declared = Some(killed.elapsed());
        }
        if claimed.is_none() && reader.owned_by("bench-survivor").map_err(|e| e.message)? >= args.runs {
            claimed = Some(killed.elapsed());
        }
        if taken_over(&text) >= args.runs {
            break;
        }
        if killed.elapsed() > Duration::from_secs(60) {
            return Err(format!("only {} runs were taken over in a minute", taken_over(&text)));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed = killed.elapsed();
    let ms = |d: Option<Duration>| d.map_or_else(|| "-".to_owned(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3));
    println!("bench takeover: {} parked runs of a SIGKILLed worker (lease 3 s), on {}", args.runs, shown(&args.store));
    println!("  declared dead  {} after the kill", ms(declared));
    println!("  all claimed    {} after the kill", ms(claimed));
    println!("  all running    {} after the kill (replayed, timers armed)", ms(Some(resumed)));
    drop(survivor);
    Ok(())
}

fn shown(url: &str) -> String {
    crate::store::postgres::without_password(url)
}

/// Posts `runs` runs to the worker at `base`, 32 at a time.
async fn park(base: &str, runs: usize) -> Result<(), String> {
    let http = reqwest::Client::new();
    let url = format!("{base}/v1/workflows/parked/runs");
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let (http, url, next) = (http.clone(), url.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < runs {
                let sent = http.post(&url).json(&json!({})).send().await.map_err(|e| e.to_string())?;
                if sent.status().as_u16() != 202 {
                    return Err(format!("POST {url}: {}", sent.status()));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for client in clients {
        client.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

fn waiting(store: &PgStore) -> Result<usize, String> {
    let counts = store.status_counts().map_err(|e| e.message)?;
    Ok(counts.iter().filter(|(w, s, _)| w == "parked" && *s == RunStatus::Waiting).map(|(.., n)| *n as usize).sum())
}

/// The runs the survivor's log says it took over (and resumed).
fn taken_over(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("took over runs"))
        .filter_map(|l| l.split("runs=").nth(1)?.split_whitespace().next()?.parse::<usize>().ok())
        .sum()
}
