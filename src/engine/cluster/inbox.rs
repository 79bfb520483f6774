//! In a store several workers share, a cancel or an operator's act on a run
//! another worker owns is left in that worker's inbox (the receiving worker
//! judged it on the run's journal and answered). As soon as the store says a
//! letter came (and every second regardless) each worker takes the letters
//! to the runs it owns and acts on them; the commit
//! that journals an act removes its letter, so each is acted on once, and a
//! letter to a worker that died goes to whoever takes its runs over.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::call_store;
use crate::base::clock::now_ms;
use crate::engine::driver::Engine;
use crate::store::wakeups::Wakeups;
use crate::store::{Change, Store};

/// How often the inbox is read, told of letters or not.
const HEARD: Duration = Duration::from_secs(1);
const UNHEARD: Duration = Duration::from_millis(250);
/// The most letters one read takes.
const LIMIT: usize = 64;
/// A letter that could not be judged this long (its run never came up here) is dropped.
const GIVE_UP_MS: u64 = 5 * 60_000;

pub(super) fn spawn(engine: Engine, store: Arc<dyn Store>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut wakeups = Wakeups::new(store.as_ref(), Change::Letters, HEARD, UNHEARD);
        loop {
            tokio::select! {
                _ = wakeups.next() => {}
                _ = stop.cancelled() => return,
            }
            if store.is_fenced() {
                continue;
            }
            let Some(letters) = call_store(&store, "could not read this worker's inbox", |s| s.letters(LIMIT)).await
            else {
                continue;
            };
            for letter in letters {
                let done = engine.take_letter(&letter).await;
                let stale = now_ms().saturating_sub(letter.at) > GIVE_UP_MS;
                if !done && stale {
                    tracing::warn!(run_id = %letter.run_id, "a request to this worker could not be acted on for 5 minutes; it is dropped");
                }
                if !done && !stale {
                    continue;
                }
                // Acted on: its commit removed it already, and this removes nothing.
                let id = letter.id;
                let _ = call_store(&store, "could not remove a request", move |s| s.drop_letter(id)).await;
            }
        }
    });
}
