//! Time as the engine reads it: the system's, or a virtual clock that a
//! simulation moves forward (`test` and `explore` skip the sleeps of a run that
//! has nothing else to do; driver tests step through timers without waiting).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Milliseconds since the Unix epoch, by the system's clock.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A future that ends once a clock reads a given time.
pub(crate) type Due = Pin<Box<dyn Future<Output = ()> + Send>>;

/// What tells the engine the time, and wakes it when a timer is due.
///
/// Invariant: [`Clock::now_ms`] never goes back, and the future of
/// [`Clock::until`] ends no earlier than the moment `now_ms() >= due`.
pub(crate) trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Ends once the clock reads `due` or later.
    fn until(&self, due: u64) -> Due;
}

/// The system's clock: what production runs on.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    fn until(&self, due: u64) -> Due {
        let wait = Duration::from_millis(due.saturating_sub(now_ms()));
        Box::pin(tokio::time::sleep(wait))
    }
}

/// The system's time plus the time skipped so far: it runs as a real clock
/// does, and [`VirtualClock::advance_to`] jumps it forward, waking whatever
/// waits for a time it passes.
#[derive(Debug, Clone)]
pub(crate) struct VirtualClock {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    skipped: AtomicU64,
    moved: tokio::sync::watch::Sender<u64>,
}

impl Default for VirtualClock {
    fn default() -> Self {
        let (moved, _) = tokio::sync::watch::channel(0);
        VirtualClock { inner: Arc::new(Inner { skipped: AtomicU64::new(0), moved }) }
    }
}

impl VirtualClock {
    /// Moves the clock to `at`, if that is ahead of it; never back.
    pub(crate) fn advance_to(&self, at: u64) {
        let ahead = at.saturating_sub(self.now_ms());
        if ahead > 0 {
            let skipped = self.inner.skipped.fetch_add(ahead, Ordering::SeqCst) + ahead;
            self.inner.moved.send_replace(skipped);
        }
    }
}

impl Clock for VirtualClock {
    fn now_ms(&self) -> u64 {
        now_ms().saturating_add(self.inner.skipped.load(Ordering::SeqCst))
    }
    fn until(&self, due: u64) -> Due {
        let clock = self.clone();
        let mut moved = self.inner.moved.subscribe();
        Box::pin(async move {
            loop {
                let left = due.saturating_sub(clock.now_ms());
                if left == 0 {
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(left)) => {}
                    changed = moved.changed() => if changed.is_err() { return },
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_virtual_clock_jumps_forward_and_wakes_what_waits() {
        let clock = VirtualClock::default();
        let start = clock.now_ms();
        let due = start + 3_600_000;
        let waiting = tokio::spawn(clock.until(due));
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "an hour has not passed");
        clock.advance_to(due);
        tokio::time::timeout(Duration::from_secs(10), waiting).await.expect("woken").expect("ended");
        assert!(clock.now_ms() >= due);
        clock.advance_to(start);
        assert!(clock.now_ms() >= due, "the clock never goes back");
    }

    #[tokio::test]
    async fn a_time_already_past_is_due_at_once() {
        let clock = SystemClock;
        tokio::time::timeout(Duration::from_secs(10), clock.until(0)).await.expect("due at once");
    }
}
