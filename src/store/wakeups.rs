//! When a task that looks at a shared store looks again: at its poll, or
//! sooner, as soon as the store says what it cares for changed.

use std::time::Duration;

use tokio::sync::broadcast::{error::RecvError, Receiver};

use super::{Change, Store};

/// A task's wake-ups: `wanted` heard from the store, or `every` passed.
pub(crate) struct Wakeups {
    changes: Option<Receiver<Change>>,
    wanted: Change,
    every: Duration,
}

impl Wakeups {
    /// Polls every `heard` when the store tells its changes, else every `unheard`.
    pub(crate) fn new(store: &dyn Store, wanted: Change, heard: Duration, unheard: Duration) -> Wakeups {
        let changes = store.changes();
        let every = if changes.is_some() { heard } else { unheard };
        Wakeups { changes, wanted, every }
    }

    /// Returns at the next poll, or once the change wanted is heard.
    pub(crate) async fn next(&mut self) {
        let sleep = tokio::time::sleep(self.every);
        tokio::pin!(sleep);
        loop {
            let Some(changes) = self.changes.as_mut() else { return sleep.await };
            tokio::select! {
                _ = &mut sleep => return,
                heard = changes.recv() => match heard {
                    Ok(change) if change == self.wanted => return,
                    Ok(_) => {}
                    // Missed some: it may have been this one.
                    Err(RecvError::Lagged(_)) => return,
                    Err(RecvError::Closed) => self.changes = None,
                },
            }
        }
    }
}
