//! Wake-ups between workers: commits that write events, deliveries, letters
//! or orphans `NOTIFY` a channel; each worker `LISTEN`s on all of them on a
//! connection of its own and tells its tasks ([`Change`]) at once instead of
//! at their next poll. Polling stays as the fallback (a pooler in
//! transaction mode, a lost connection): after a reconnect every task is
//! told everything changed.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio_postgres::AsyncMessage;

use super::ownership::Lease;
use super::Dial;
use crate::store::Change;

/// Each change's channel.
pub(super) fn channel(change: Change) -> &'static str {
    match change {
        Change::Events => "sagaflow_events",
        Change::Outbox => "sagaflow_outbox",
        Change::Letters => "sagaflow_inbox",
        Change::Orphans => "sagaflow_orphans",
    }
}

/// `SELECT pg_notify(...)` for a change, to send in the transaction that
/// makes it (written out: a commit sends it, and a test checks the channel).
pub(super) fn notify(change: Change) -> &'static str {
    match change {
        Change::Events => "SELECT pg_notify('sagaflow_events', '')",
        Change::Outbox => "SELECT pg_notify('sagaflow_outbox', '')",
        Change::Letters => "SELECT pg_notify('sagaflow_inbox', '')",
        Change::Orphans => "SELECT pg_notify('sagaflow_orphans', '')",
    }
}

/// Listens until the worker leaves, reconnecting a second after a loss.
pub(super) async fn listen(dial: Arc<Dial>, changes: broadcast::Sender<Change>, lease: Arc<Lease>) {
    loop {
        if let Err(e) = listen_once(&dial, &changes).await {
            tracing::warn!(store = %dial.shown, error = %e, "lost the connection that hears other workers; polling meanwhile");
        }
        if lease.left.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        // Whatever was said while no one listened: look at everything.
        for change in Change::ALL {
            let _ = changes.send(change);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(dial: &Dial, changes: &broadcast::Sender<Change>) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = dial.open().await?;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let sql: String = Change::ALL.iter().map(|c| format!("LISTEN {};", channel(*c))).collect();
    let listening = client.batch_execute(&sql);
    tokio::pin!(listening);
    // The LISTENs go out on the connection this loop drives.
    let mut listened = false;
    loop {
        tokio::select! {
            done = &mut listening, if !listened => { done?; listened = true; }
            message = messages.next() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(change) = Change::ALL.into_iter().find(|c| channel(*c) == n.channel()) {
                        let _ = changes.send(change);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_change_is_notified_on_the_channel_it_is_heard_on() {
        for change in crate::store::Change::ALL {
            assert!(super::notify(change).contains(&format!("'{}'", super::channel(change))), "{change:?}");
        }
    }
}
