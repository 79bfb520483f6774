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
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client has to send a request's headers, and how long an idle
/// keep-alive connection is kept.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client has to send a request's body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// File descriptors kept for what is not a connection (the store, the
/// workflow files, outgoing requests).
const RESERVED_FDS: u64 = 96;

/// The most connections to take by default: `wanted`, within what the
/// process's open-file limit allows (raised to its hard limit first).
pub fn connection_limit(wanted: usize) -> usize {
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
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    max_connections: usize,
    shutdown: CancellationToken,
    open: Arc<std::sync::atomic::AtomicU64>,
) {
    let permits = Arc::new(Semaphore::new(max_connections));
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            connections.spawn(refuse(stream));
            continue;
        };
        let (router, shutdown, open) = (router.clone(), shutdown.clone(), open.clone());
        connections.spawn(async move {
            open.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            connection(stream, router, shutdown).await;
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(permit);
        });
    }
    while connections.join_next().await.is_some() {}
}

/// One connection, served until the client is done, too slow, or the server stops.
async fn connection(stream: TcpStream, router: axum::Router, shutdown: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let service = TowerToHyperService::new(router.map_request(|req: Request<Incoming>| req.map(Body::new)));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A connection over the limit: told so, then closed.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":{"code":"too_many_connections","message":"the server holds as many connections as it takes; try again shortly"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(answer.as_bytes())).await;
    let _ = stream.shutdown().await;
}
