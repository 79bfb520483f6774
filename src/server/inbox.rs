//! In a store several workers share, a cancel or an operator's act on a run
//! another worker owns is left in that worker's inbox (the receiving worker
//! judged it on the run's journal and answered). As soon as the store says a
//! letter came (and every second regardless) each worker takes the letters
//! to the runs it owns and acts on them; the commit
//! that journals an act removes its letter, so each is acted on once, and a
//! letter to a worker that died goes to whoever takes its runs over.

use std::sync::Arc;
use std::time::Duration;

use super::App;
use crate::base::clock::now_ms;
use crate::store::wakeups::Wakeups;
use crate::store::Change;

/// How often the inbox is read, told of letters or not.
const HEARD: Duration = Duration::from_secs(1);
const UNHEARD: Duration = Duration::from_millis(250);
/// The most letters one read takes.
const LIMIT: usize = 64;
/// A letter that could not be judged this long (its run never came up here) is dropped.
const GIVE_UP_MS: u64 = 5 * 60_000;

pub(crate) fn spawn(app: Arc<App>) {
    if !app.store.is_shared() {
        return;
    }
    tokio::spawn(async move {
        let mut wakeups = Wakeups::new(app.store.as_ref(), Change::Letters, HEARD, UNHEARD);
        loop {
            tokio::select! {
                _ = wakeups.next() => {}
                _ = app.shutdown.cancelled() => return,
            }
            if app.is_draining() || app.store.is_fenced() {
                continue;
            }
            let store = app.store.clone();
            let letters = match tokio::task::spawn_blocking(move || store.letters(LIMIT)).await {
                Ok(Ok(letters)) => letters,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not read this worker's inbox; tried again");
                    continue;
                }
                Err(_) => continue,
            };
            for letter in letters {
                let done = app.engine.take_letter(&letter).await;
                let stale = now_ms().saturating_sub(letter.at) > GIVE_UP_MS;
                if !done && stale {
                    tracing::warn!(run_id = %letter.run_id, "a request to this worker could not be acted on for 5 minutes; it is dropped");
                }
                if !done && !stale {
                    continue;
                }
                let (store, id) = (app.store.clone(), letter.id);
                // Acted on: its commit removed it already, and this removes nothing.
                let _ = tokio::task::spawn_blocking(move || store.drop_letter(id)).await;
            }
        }
    });
}
