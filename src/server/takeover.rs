//! In a store several workers share: four times a second, the workers whose lease
//! ran out are declared dead, and their runs (and those of workers that left)
//! are claimed and resumed here; at once when the store says a worker left. Alone on its store, a process owns every
//! run from the start and this finds nothing.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::engine::cluster::call_store;
use crate::store::wakeups::Wakeups;
use crate::store::{Change, RunMeta};

/// How often the others' leases are looked at: a dead worker's runs move
/// again at most this long after its lease ran out (and the claim's replay).
const EVERY: Duration = Duration::from_millis(250);
/// Runs claimed at once.
const BATCH: usize = 1024;

pub(crate) fn spawn(app: Arc<App>) {
    // Alone on its store, every run is this process's from the start.
    if !app.store.is_shared() {
        return;
    }
    tokio::spawn(async move {
        let mut wakeups = Wakeups::new(app.store.as_ref(), Change::Orphans, EVERY, EVERY);
        loop {
            tokio::select! {
                _ = wakeups.next() => {}
                _ = app.shutdown.cancelled() => return,
            }
            if app.is_draining() {
                return;
            }
            if app.store.is_fenced() {
                tracing::error!("another worker took this one's runs over (its lease ran out): it stops");
                app.fenced.cancel();
                return;
            }
            // A full batch: there may be more, taken at once (a dead worker's thousands of runs).
            while let Some(n) = take_over(&app).await {
                if n > 0 {
                    tracing::info!(runs = n, "took over runs no live worker owns");
                }
                if n < BATCH || app.shutdown.is_cancelled() {
                    break;
                }
            }
        }
    });
}

/// Declares the silent workers dead, then claims and resumes orphaned runs;
/// answers how many (none: it failed, and was warned of).
async fn take_over(app: &App) -> Option<usize> {
    let claimed: Vec<RunMeta> = call_store(&app.store, "could not take runs over", |store| {
        for worker in store.expire_workers()? {
            tracing::warn!(worker = %worker, "a worker's lease ran out: its runs are taken over");
        }
        store.claim(BATCH)
    })
    .await?;
    let resumed = crate::engine::resume_runs(&app.engine, app.store.as_ref(), app.engine.registry(), &claimed).await;
    if let Err(e) = resumed {
        tracing::warn!(error = %e, "could not take runs over; tried again");
        return None;
    }
    Some(claimed.len())
}
