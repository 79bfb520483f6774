//! `[retention] finished`: a pass every minute (more often for a period under
//! ten minutes) removes the runs that finished longer ago than the period,
//! then the events no run can wait for any more. Runs leave through the
//! engine's loop ([`crate::engine::driver::Engine::forget`]); a pass that
//! fails is logged and the next one takes up what is left.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::base::clock::now_ms;
use crate::store::retention::{Prune, Pruned};
use crate::store::{Commit, Store, StoreError};

/// How often retention looks: every minute, or a tenth of a short period (at least a second).
pub(crate) fn interval(period: Duration) -> Duration {
    (period / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

pub(crate) fn spawn(app: Arc<App>, period: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval(period)) => {}
                _ = app.shutdown.cancelled() => return,
            }
            if app.is_draining() {
                return;
            }
            let before = now_ms().saturating_sub(period.as_millis() as u64);
            match pass(&app, before).await {
                Ok(p) if p != Pruned::default() => {
                    tracing::info!(runs = p.runs, events = p.events, "retention removed finished runs and old events")
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention could not finish its pass; the next one goes on"),
            }
        }
    });
}

/// One pass: the runs first (through the engine), then the events.
async fn pass(app: &App, before: u64) -> Result<Pruned, StoreError> {
    let mut prune = Prune::new(before);
    let mut removed = Pruned::default();
    loop {
        let (back, runs) = blocking(app, prune, |p, store| p.next_runs(store)).await?;
        prune = back;
        let Some(runs) = runs? else { break };
        removed.runs += app.engine.forget(runs).await?;
    }
    loop {
        let (back, events) = blocking(app, prune, |p, store| p.next_events(store)).await?;
        prune = back;
        let Some(events) = events? else { break };
        removed.events += events.len();
        let store = app.store.clone();
        let commit = Commit { forget_events: events, ..Commit::default() };
        tokio::task::spawn_blocking(move || store.commit(&commit)).await.map_err(joined)??;
    }
    Ok(removed)
}

/// Runs a step of the pass where reading the store may block.
async fn blocking<T: Send + 'static>(
    app: &App,
    mut prune: Prune,
    step: impl FnOnce(&mut Prune, &dyn Store) -> T + Send + 'static,
) -> Result<(Prune, T), StoreError> {
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || {
        let out = step(&mut prune, store.as_ref());
        (prune, out)
    })
    .await
    .map_err(joined)
}

fn joined(e: tokio::task::JoinError) -> StoreError {
    StoreError::other(format!("retention stopped: {e}"))
}
