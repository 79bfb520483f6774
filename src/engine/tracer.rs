//! The tracer: follows the runs' committed transitions and hands each span
//! to the exporter as it ends ([`RunSpans`]). A run it meets mid-journal (one
//! resumed after a restart, reopened by an operator, or missed while the
//! tracer lagged behind) is read back from the store first, silently, so its
//! spans keep their start times and ids.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::driver::{Engine, Transition};
use super::spans::RunSpans;
use crate::adapters::otlp::{Exporter, SpanData};
use crate::journal::entry::Entry;
use crate::store::Store;

/// One run followed: its spans so far, and the next entry expected.
struct Followed {
    spans: RunSpans,
    next: u32,
}

/// The tracer's handle: spans go to the exporter as runs move.
pub(crate) struct Tracer {
    flushes: mpsc::Sender<(std::time::Duration, oneshot::Sender<()>)>,
}

impl Tracer {
    /// Follows the engine's runs until it stops; spans go to `exporter`.
    pub(crate) fn start(engine: &Engine, store: Arc<dyn Store>, exporter: Arc<Exporter>) -> Tracer {
        let (flushes, asked) = mpsc::channel(16);
        tokio::spawn(follow_all(engine.transitions(), asked, store, exporter));
        Tracer { flushes }
    }

    /// Sends the spans of every transition committed so far; answers once
    /// they went out, or after `within`.
    pub(crate) async fn flush(&self, within: std::time::Duration) {
        let (reply, done) = oneshot::channel();
        if self.flushes.send((within, reply)).await.is_ok() {
            let _ = tokio::time::timeout(within, done).await;
        }
    }
}

async fn follow_all(
    mut transitions: broadcast::Receiver<Arc<Transition>>,
    mut flushes: mpsc::Receiver<(std::time::Duration, oneshot::Sender<()>)>,
    store: Arc<dyn Store>,
    exporter: Arc<Exporter>,
) {
    let mut runs: HashMap<String, Followed> = HashMap::new();
    loop {
        tokio::select! {
            next = transitions.recv() => match next {
                Ok(t) => exporter.send(follow(&mut runs, &store, &t).await),
                Err(RecvError::Lagged(missed)) => lagged(&mut runs, missed),
                Err(RecvError::Closed) => return,
            },
            Some((within, reply)) = flushes.recv() => {
                loop {
                    match transitions.try_recv() {
                        Ok(t) => exporter.send(follow(&mut runs, &store, &t).await),
                        Err(TryRecvError::Lagged(missed)) => lagged(&mut runs, missed),
                        Err(_) => break,
                    }
                }
                exporter.flush(within).await;
                let _ = reply.send(());
            }
        }
    }
}

/// Each run is read back from the store when it next moves.
fn lagged(runs: &mut HashMap<String, Followed>, missed: u64) {
    tracing::warn!(missed, "the tracer fell behind the engine; it reads its runs back");
    runs.clear();
}

/// The spans one transition ends.
async fn follow(runs: &mut HashMap<String, Followed>, store: &Arc<dyn Store>, t: &Transition) -> Vec<SpanData> {
    if runs.get(&t.run_id).is_none_or(|f| f.next != t.seq) {
        let mut spans = RunSpans::new(&t.run_id, &t.wf);
        if t.seq > 0 {
            let (store, run_id) = (store.clone(), t.run_id.clone());
            let earlier = tokio::task::spawn_blocking(move || store.entries(&run_id)).await;
            let earlier = earlier.ok().and_then(Result::ok).unwrap_or_default();
            for entry in earlier.iter().take(t.seq as usize) {
                spans.apply(entry);
            }
        }
        runs.insert(t.run_id.clone(), Followed { spans, next: t.seq });
    }
    let Some(followed) = runs.get_mut(&t.run_id) else { return Vec::new() };
    followed.next += 1;
    let ended = followed.spans.apply(&t.entry);
    if matches!(t.entry, Entry::RunFinished { .. }) {
        runs.remove(&t.run_id);
    }
    ended
}
