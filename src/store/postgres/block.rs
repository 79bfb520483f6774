//! Waiting for a future on the calling thread, without a runtime: what the
//! synchronous store traits need from an asynchronous client whose
//! connections run elsewhere (on the store's own runtime).

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    /// Set on the threads of a runtime built with [`mark_worker`] at their start.
    static POOL_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// For `on_thread_start` of a multi-threaded runtime: a store call made on
/// one of its threads hands the thread's other tasks to another while it waits.
pub(crate) fn mark_worker() {
    POOL_THREAD.with(|on| on.set(true));
}

/// Polls `future` to its end, parking the thread between wake-ups. The future
/// must not need this thread's runtime (the client's requests go over channels
/// to tasks on another runtime, so they do not). On a thread of a runtime
/// marked by [`mark_worker`] (an API handler reading the store), the runtime
/// is told first, and hands that thread's other tasks to another meanwhile.
/// (Only there: a thread that runs a runtime of its own inside another's
/// context, as the engine's does, must not.)
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    if POOL_THREAD.with(std::cell::Cell::get) {
        return tokio::task::block_in_place(|| park_on(future));
    }
    park_on(future)
}

fn park_on<F: Future>(future: F) -> F::Output {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_future_woken_from_another_thread_ends() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let _ = tx.send(7);
        });
        assert_eq!(super::block_on(rx), Ok(7));
    }
}
