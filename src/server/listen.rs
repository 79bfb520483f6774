//! The accept loop: HTTP/1 connections served by hyper with bounds a slow or
//! hostile client cannot hold open. Each connection has [`HEADER_TIMEOUT`] to
//! send a request's headers (and, idle between requests, the next one's); a
//! body has [`BODY_TIMEOUT`] (see `error::BoundedBody`); at most
//! `max_connections` are open at once, and one more is answered `503` and
//! closed at once instead of waiting unseen in the kernel's queue.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// A bounded number of places (connections, event streams): one is held
/// while its permit lives, and how many are held is read off the semaphore.
#[derive(Clone)]
pub(crate) struct Places {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Places {
    pub(crate) fn new(max: usize) -> Places {
        Places { permits: Arc::new(Semaphore::new(max)), max }
    }

    /// One more place, if one is free.
    pub(crate) fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// How many places are held now.
    pub(crate) fn held(&self) -> u64 {
        self.max.saturating_sub(self.permits.available_permits()) as u64
    }
}

/// How long a client has to send a request's headers, and how long an idle
/// keep-alive connection is kept.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a request's body.
pub(crate) const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an answer may wait for a client that stopped reading it.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// File descriptors kept for what is not a connection (the store, the
/// workflow files, outgoing requests).
const RESERVED_FDS: u64 = 96;

/// The most connections to take by default: `wanted`, within what the
/// process's open-file limit allows (raised to its hard limit first).
pub(crate) fn connection_limit(wanted: usize) -> usize {
    let files = raise_open_file_limit();
    let fit = files.saturating_sub(RESERVED_FDS).max(16);
    wanted.min(usize::try_from(fit).unwrap_or(usize::MAX))
}

/// Raises the soft open-file limit to the hard one; answers the soft limit in force.
fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit and setrlimit read and write the struct given, nothing else.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 1024;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = limit.rlim_max;
                }
            }
        }
        limit.rlim_cur
    }
    #[cfg(not(unix))]
    1024
}

/// Serves `router` on `listener` until `shutdown`; then each open connection
/// finishes the request it is in and closes, and this returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: axum::Router,
    places: Places,
    shutdown: CancellationToken,
    grace: Duration,
) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to be freed.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(place) = places.take() else {
            connections.spawn(refuse(stream));
            continue;
        };
        let (router, shutdown) = (router.clone(), shutdown.clone());
        // The place is given back however the task ends (a panic too).
        connections.spawn(async move {
            connection(stream, router, shutdown).await;
            drop(place);
        });
    }
    // Each connection ends the request it is in; past the grace period they are cut.
    let drained = tokio::time::timeout(grace, async { while connections.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(connections = connections.len(), "connections still open after the grace period are closed");
        connections.abort_all();
    }
}

/// One connection, served until the client is done, too slow, or the server stops.
async fn connection(stream: TcpStream, router: axum::Router, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router.map_request(|req: Request<Incoming>| req.map(Body::new)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(WriteDeadline::new(stream)), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A connection over the limit: told so, then closed. What it sent is read
/// and dropped for a moment after the answer, so closing does not reset the
/// connection before the client reads the answer.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::AsyncReadExt;
    let body = r#"{"error":{"code":"too_many_connections","message":"the server holds as many connections as it takes; try again shortly"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let drain = async {
        let mut left = 64 * 1024usize;
        while let Ok(n @ 1..) = stream.read(&mut sink).await {
            left = left.saturating_sub(n);
            if left == 0 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

/// A stream whose writes fail once one has waited [`WRITE_TIMEOUT`] without
/// progress: a client that stops reading an answer (an event stream, say)
/// loses its connection instead of holding it for ever.
struct WriteDeadline<S> {
    inner: S,
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteDeadline<S> {
    fn new(inner: S) -> WriteDeadline<S> {
        WriteDeadline { inner, stalled: None }
    }

    /// After a write that could not go on: fails once it has waited too long.
    fn check_stall(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Result<usize>> {
        let sleep = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_TIMEOUT)));
        match std::future::Future::poll(sleep.as_mut(), cx) {
            std::task::Poll::Ready(()) => std::task::Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading the answer",
            ))),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WriteDeadline<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for WriteDeadline<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, buf) {
            std::task::Poll::Pending => self.check_stall(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match std::pin::Pin::new(&mut self.inner).poll_flush(cx) {
            std::task::Poll::Pending => self.check_stall(cx).map_ok(|_| ()),
            done => {
                self.stalled = None;
                done
            }
        }
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
