//! Hot reload: the workflows directory is watched (inotify through `notify`);
//! a burst of file events becomes one reload once it has been quiet for
//! [`DEBOUNCE`]. Where the directory cannot be watched, it is read every [`POLL`].

use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;

use super::App;

/// Quiet time after the last file event before a reload.
pub(crate) const DEBOUNCE: Duration = Duration::from_millis(150);
/// How often the directory is read when it cannot be watched.
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// Starts the watcher and the reload task.
pub(crate) fn spawn(app: Arc<App>) {
    let dirty = Arc::new(Notify::new());
    let watcher = start_watcher(&app, dirty.clone());
    let polling = watcher.is_none();
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            tokio::select! {
                _ = dirty.notified() => settle(&dirty).await,
                _ = tokio::time::sleep(POLL), if polling => {}
                _ = app.shutdown.cancelled() => return,
            }
            reload(&app).await;
        }
    });
}

/// Waits until no file event came for [`DEBOUNCE`].
async fn settle(dirty: &Notify) {
    loop {
        tokio::select! {
            _ = dirty.notified() => continue,
            _ = tokio::time::sleep(DEBOUNCE) => return,
        }
    }
}

/// Reloads the catalog; a change goes to the engine's triggers at once, then
/// the reload report is written.
pub(crate) async fn reload(app: &Arc<App>) {
    let app = app.clone();
    let done = tokio::task::spawn_blocking(move || {
        let changes = app.catalog.reload();
        if changes.is_empty() {
            return;
        }
        app.catalog_changed();
        let snapshot = app.catalog.snapshot();
        app.reports.write(&changes, &snapshot, app.store.as_ref(), app.engine.registry());
    })
    .await;
    if let Err(e) = done {
        tracing::error!(error = %e, "a reload failed; the workflows before it stay active");
    }
}

fn start_watcher(app: &App, dirty: Arc<Notify>) -> Option<notify::RecommendedWatcher> {
    let dir = app.catalog.dir().to_owned();
    let handler = move |event: notify::Result<notify::Event>| match event {
        Ok(e) if matches!(e.kind, EventKind::Access(_)) => {}
        _ => dirty.notify_one(),
    };
    let watched = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(&dir, RecursiveMode::Recursive)?;
        Ok(w)
    });
    match watched {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the workflows directory; reading it every {}s instead", POLL.as_secs());
            None
        }
    }
}
