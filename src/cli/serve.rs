//! `sagaflow serve [--workflows DIR] [--data DIR] [--listen ADDR] [--config F]`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{runtime, usage_error};
use crate::server::{self, ServeOptions};

#[derive(clap::Args)]
pub(super) struct Args {
    /// The workflows directory: watched, reloaded as files change.
    #[arg(long, default_value = "workflows")]
    workflows: PathBuf,
    #[command(flatten)]
    data: super::DataDir,
    #[command(flatten)]
    joining: super::Joining,
    /// Where to listen. Anything but loopback needs SAGAFLOW_API_TOKEN set.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// How long attempts in flight get to end when the server is stopped (ctrl-c, SIGTERM).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    grace: Duration,
    /// The most event streams (`GET /v1/runs/{id}/events`) and `?wait` requests open at once; more get 503.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_streams: u32,
    /// The most connections open at once (within the open-file limit); one more is answered 503 and closed.
    /// Each has 10 s to send a request's headers (idle ones are closed after 10 s) and 30 s for its body.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let d: crate::dsl::duration::Duration = text.parse().map_err(|e| format!("{e}"))?;
    Ok(Duration::from_millis(d.millis()))
}

/// The token the API asks for, from the environment (empty counts as none).
pub(super) fn token_from_env() -> Option<String> {
    std::env::var("SAGAFLOW_API_TOKEN").ok().filter(|t| !t.trim().is_empty())
}

pub(super) fn run(args: Args, setup: &super::setup::Setup) -> ExitCode {
    let (store, backends) = match setup.open(&args.data, &args.joining, "serve") {
        Ok(opened) => opened,
        Err(e) => return usage_error(&e),
    };
    let retention = match setup.config().and_then(|c| c.retention().map_err(|e| e.0)) {
        Ok(retention) => retention,
        Err(e) => return usage_error(&e),
    };
    let options = ServeOptions {
        workflows: args.workflows,
        listen: args.listen,
        token: token_from_env(),
        grace: args.grace,
        max_streams: args.max_streams as usize,
        max_connections: args.max_connections as usize,
        retention,
    };
    let result: Result<(), String> = runtime().block_on(async move {
        let running = server::start(options, store, &backends).await.map_err(|e| e.to_string())?;
        println!("sagaflow serve: listening on http://{}", running.addr);
        let _ = std::io::stdout().flush();
        let fenced = running.app.fenced.clone();
        let taken_over = tokio::select! {
            _ = server::stop_signal() => false,
            _ = fenced.cancelled() => true,
        };
        eprintln!("sagaflow serve: stopping (no new runs; attempts in flight get the grace period)");
        running.stop().await;
        match taken_over {
            true => {
                Err("another worker took this one's runs over (its lease ran out); start it again to rejoin".into())
            }
            false => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage_error(&e),
    }
}
