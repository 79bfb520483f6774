//! In a store several workers share, an event one worker commits must wake
//! the waits of runs another owns. As soon as the store says events came
//! (and every second regardless; four times a second on a store that cannot
//! say) each worker reads the events of the last few seconds and hands the
//! new ones to its engine (a wait that began later finds its event in the
//! store by itself).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::call_store;
use crate::base::clock::now_ms;
use crate::engine::driver::Engine;
use crate::store::wakeups::Wakeups;
use crate::store::{Change, Store};

/// How often the store is read for others' events, told of them or not.
const HEARD: Duration = Duration::from_secs(1);
const UNHEARD: Duration = Duration::from_millis(250);
/// How far back each read looks: an event committed late, or stamped by a
/// worker whose clock is behind, is still found.
const OVERLAP_MS: u64 = 5_000;
/// The most events one read takes.
const LIMIT: usize = 10_000;

pub(super) fn spawn(engine: Engine, store: Arc<dyn Store>, stop: CancellationToken) {
    tokio::spawn(async move {
        // Event ids already handed over, with their time, for the overlap.
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut wakeups = Wakeups::new(store.as_ref(), Change::Events, HEARD, UNHEARD);
        loop {
            tokio::select! {
                _ = wakeups.next() => {}
                _ = stop.cancelled() => return,
            }
            let since = now_ms().saturating_sub(OVERLAP_MS);
            let read =
                call_store(&store, "could not read other workers' events", move |s| s.events_since(since, LIMIT));
            let Some(events) = read.await else { continue };
            seen.retain(|_, at| *at >= since);
            let new: Vec<_> = events.into_iter().filter(|e| seen.insert(e.id.clone(), e.at).is_none()).collect();
            if !new.is_empty() {
                engine.arrived(new);
            }
        }
    });
}
