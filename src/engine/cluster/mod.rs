//! What a worker on a store several workers share hears of the others, in
//! tasks of its own beside its engine: the events they commit (to wake the
//! waits here) and the letters they leave it (cancels and operators' acts on
//! the runs it owns). Every process that moves runs on such a store starts
//! them, `serve` and `run` alike; alone on its store there is nothing to hear.

mod feed;
mod inbox;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::driver::Engine;
use crate::store::{Store, StoreError};

/// Starts hearing the other workers for `engine`, until `stop` is cancelled.
pub(crate) fn spawn(engine: &Engine, store: &Arc<dyn Store>, stop: &CancellationToken) {
    if !store.is_shared() {
        return;
    }
    feed::spawn(engine.clone(), store.clone(), stop.clone());
    inbox::spawn(engine.clone(), store.clone(), stop.clone());
}

/// Calls the store on a thread that may block (its calls wait on the
/// network); a failure is warned of (`failed` says what could not be done)
/// and answers none: the caller tries again at its next turn.
pub(crate) async fn call_store<T: Send + 'static>(
    store: &Arc<dyn Store>,
    failed: &'static str,
    call: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Option<T> {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || call(store.as_ref())).await {
        Ok(Ok(value)) => Some(value),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "{failed}; tried again");
            None
        }
        Err(_) => None,
    }
}
