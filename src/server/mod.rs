//! `sagaflow serve`: one long-running process over the sled store. The HTTP
//! API (axum), the hot-reloading workflow catalog, the cron scheduler, the
//! outbox relay (event triggers, webhooks) and the web console.

pub(crate) mod api;
pub(crate) mod auth;
pub(crate) mod catalog;
pub(crate) mod console;
pub(crate) mod error;
pub(crate) mod listen;
pub(crate) mod prometheus;
pub(crate) mod report;
pub(crate) mod retention;
pub(crate) mod schedule;
pub(crate) mod takeover;
pub(crate) mod timeline;
pub(crate) mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::adapters::otlp::Exporter;
use crate::config::Backends;
use crate::engine::driver::{Engine, EngineOptions};
use crate::engine::metrics::Metrics;
use crate::engine::relay::{Relay, Subscriptions};
use crate::engine::tracer::Tracer;
use crate::store::Store;
use catalog::Catalog;
use error::ApiError;
use report::Reports;

/// A request body may be at most this large (run inputs, events, workflow text).
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How the server is started.
#[derive(Debug, Clone)]
pub(crate) struct ServeOptions {
    pub workflows: PathBuf,
    pub listen: String,
    /// The bearer token every route but `/healthz` requires; required off loopback.
    pub token: Option<String>,
    /// How long in-flight attempts get to end when the server stops.
    pub grace: Duration,
    /// The most event streams and `?wait` requests open at once.
    pub max_streams: usize,
    /// The most connections open at once (bounded further by the open-file limit).
    pub max_connections: usize,
    /// How long finished runs stay in the store (`[retention] finished`); none: for good.
    pub retention: Option<Duration>,
}

/// What the handlers share.
pub(crate) struct App {
    pub engine: Engine,
    pub store: Arc<dyn Store>,
    pub catalog: Arc<Catalog>,
    pub reports: Arc<Reports>,
    pub subscriptions: Arc<Subscriptions>,
    pub token: Option<String>,
    /// Set when a stop was asked: no new runs or events are taken.
    pub draining: AtomicBool,
    /// Cancelled when the server stops: live streams and long waits end.
    pub shutdown: CancellationToken,
    /// Cancelled when another worker of a shared store took this one's runs over.
    pub fenced: CancellationToken,
    pub started_at: std::time::Instant,
    /// One permit for each event stream or `?wait` request that may be open.
    streams: listen::Places,
    /// One place for each connection that may be open.
    pub connections: listen::Places,
}

impl App {
    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Whether a request that writes may go ahead: not while draining (503
    /// `draining`), nor while the store cannot write (503 `storage_unavailable`).
    pub(crate) fn takes_writes(&self) -> Result<(), ApiError> {
        if self.is_draining() {
            return Err(ApiError::draining());
        }
        match self.storage_error() {
            Some(error) => Err(ApiError::storage_unavailable(error)),
            None => Ok(()),
        }
    }

    /// Why the store cannot write now: a commit the engine is trying again, or
    /// a write that would fail (a full disk); none when it can.
    pub(crate) fn storage_error(&self) -> Option<String> {
        self.engine.metrics().storage.error().or_else(|| self.store.check_writable().err().map(|e| e.message))
    }

    /// A store error as the API answers it: 503 while the store cannot write, 500 otherwise.
    pub(crate) fn store_error(&self, e: crate::store::StoreError) -> ApiError {
        match self.storage_error() {
            Some(error) => ApiError::storage_unavailable(error),
            None => ApiError::internal(e.message),
        }
    }

    /// A place for one more long request (an event stream, a `?wait`), held
    /// until it ends; 503 when the server holds as many as it takes.
    pub(crate) fn long_request(&self) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
        self.streams.take().ok_or_else(ApiError::busy)
    }

    /// How many long requests are open now.
    pub(crate) fn long_requests_open(&self) -> u64 {
        self.streams.held()
    }

    /// Makes what the catalog holds now the engine's world: event triggers.
    pub(crate) fn catalog_changed(&self) {
        self.subscriptions.set_workflows(self.catalog.snapshot().all_active());
    }
}

/// A server that is up: its address, and how to stop it.
pub(crate) struct Running {
    pub addr: SocketAddr,
    pub app: Arc<App>,
    relay: Arc<Relay>,
    server: tokio::task::JoinHandle<()>,
    grace: Duration,
    tracer: Option<Tracer>,
}

/// Why the server did not start.
#[derive(Debug)]
pub(crate) enum StartError {
    /// `--listen` is not an address, or a name with none.
    Address {
        listen: String,
        why: String,
    },
    /// A non-loopback address with no token: the API would be open to anyone.
    NeedsToken(SocketAddr),
    /// The address cannot be bound (in use, not this machine's, not allowed).
    Listen {
        addr: SocketAddr,
        error: std::io::Error,
    },
    /// The workflows' first load stopped (it panicked).
    Load(tokio::task::JoinError),
    Store(crate::store::StoreError),
    /// An unfinished run could not be read back to resume it.
    Resume(crate::engine::ReplayError),
    /// The span exporter could not start.
    Telemetry(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Address { listen, why } => write!(f, "--listen {listen}: {why}"),
            StartError::NeedsToken(addr) => write!(
                f,
                "listening on {addr} (not loopback) needs a token: set SAGAFLOW_API_TOKEN, or listen on 127.0.0.1"
            ),
            StartError::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            StartError::Load(e) => write!(f, "loading the workflows failed: {e}"),
            StartError::Store(e) => f.write_str(&e.message),
            StartError::Resume(e) => e.fmt(f),
            StartError::Telemetry(e) => write!(f, "telemetry: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<crate::store::StoreError> for StartError {
    fn from(e: crate::store::StoreError) -> Self {
        StartError::Store(e)
    }
}

impl From<crate::engine::ReplayError> for StartError {
    fn from(e: crate::engine::ReplayError) -> Self {
        StartError::Resume(e)
    }
}

/// Starts everything: catalog, engine, relay, resumes unfinished runs, binds,
/// then the watcher and the scheduler. Answers once the server takes requests.
pub(crate) async fn start(
    options: ServeOptions,
    store: Arc<dyn Store>,
    backends: &Backends,
) -> Result<Running, StartError> {
    let addr: SocketAddr = resolve(&options.listen).await?;
    if !addr.ip().is_loopback() && options.token.is_none() {
        return Err(StartError::NeedsToken(addr));
    }
    let catalog = Arc::new(Catalog::new(&options.workflows, backends.registry.clone()));
    let catalog_for_load = catalog.clone();
    let changes = tokio::task::spawn_blocking(move || catalog_for_load.reload()).await.map_err(StartError::Load)?;
    let subscriptions = Arc::new(Subscriptions::new(backends.webhooks.clone()));
    subscriptions.set_workflows(catalog.snapshot().all_active());
    let metrics = Arc::new(Metrics::default());
    for (workflow, status, n) in store.status_counts()? {
        metrics.runs_counted(&workflow, status.as_str(), n);
    }
    // The server waits for the store as long as it takes (a full disk is freed by a person).
    let options_engine = EngineOptions {
        subscriptions: subscriptions.clone(),
        metrics,
        write_outage_limit: None,
        library: catalog.clone(),
        propagate_traces: backends.telemetry.is_some(),
        ..EngineOptions::default()
    };
    let engine = Engine::start(store.clone(), backends.registry.clone(), options_engine);
    let tracer = backends.telemetry.as_ref().map(|t| trace_runs(&engine, &store, t)).transpose()?;
    let relay = Relay::spawn(engine.clone(), store.clone(), subscriptions.clone());
    let resumed = crate::engine::resume_unfinished(&engine, store.as_ref(), &backends.registry).await?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| StartError::Listen { addr, error })?;
    let addr = listener.local_addr().map_err(|error| StartError::Listen { addr, error })?;
    let app = Arc::new(App {
        engine,
        store,
        catalog,
        reports: Arc::default(),
        subscriptions,
        token: options.token.clone(),
        draining: AtomicBool::new(false),
        shutdown: CancellationToken::new(),
        fenced: CancellationToken::new(),
        started_at: std::time::Instant::now(),
        streams: listen::Places::new(options.max_streams),
        connections: listen::Places::new(listen::connection_limit(options.max_connections)),
    });
    let snapshot = app.catalog.snapshot();
    let reports_app = app.clone();
    tokio::task::spawn_blocking(move || {
        let registry = reports_app.engine.registry();
        reports_app.reports.write(&changes, &reports_app.catalog.snapshot(), reports_app.store.as_ref(), registry)
    });
    watch::spawn(app.clone());
    schedule::spawn(app.clone());
    takeover::spawn(app.clone());
    crate::engine::cluster::spawn(&app.engine, &app.store, &app.shutdown);
    if let Some(period) = options.retention {
        retention::spawn(app.clone(), period);
    }
    let router = api::router(app.clone());
    let shutdown = app.shutdown.clone();
    let places = app.connections.clone();
    let server = tokio::spawn(listen::serve(listener, router, places, shutdown, options.grace));
    let invalid = snapshot.files.values().filter(|f| !f.is_valid()).count();
    tracing::info!(
        %addr,
        workflows = snapshot.names().count(),
        invalid,
        resumed = resumed.len(),
        "sagaflow serve is up"
    );
    Ok(Running { addr, app, relay, server, grace: options.grace, tracer })
}

impl Running {
    /// Drains: no new runs or events (503), live streams end, attempts in
    /// flight get the grace period, then everything stops with every
    /// transition on disk. Unfinished runs continue at the next start.
    pub(crate) async fn stop(self) {
        self.app.draining.store(true, Ordering::Relaxed);
        self.app.engine.pause();
        let deadline = tokio::time::Instant::now() + self.grace;
        while self.app.engine.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.app.engine.in_flight();
        // The ends that came in are recorded (unless the store cannot write:
        // then they run again at the next start, with the same keys).
        if tokio::time::timeout(self.grace.max(Duration::from_secs(1)), self.app.engine.flush()).await.is_err() {
            tracing::warn!(
                "the store could not write the last transitions; their attempts run again at the next start"
            );
        }
        self.app.shutdown.cancel();
        self.relay.stop();
        if let Some(tracer) = &self.tracer {
            tracer.flush(Duration::from_secs(5)).await;
        }
        // In a shared store, the unfinished runs are anyone's from now on.
        if let Err(e) = self.app.store.leave() {
            tracing::warn!(error = %e, "could not hand the runs over; they are taken over once the lease runs out");
        }
        let _ = self.server.await;
        if left > 0 {
            tracing::warn!(
                attempts = left,
                "the grace period ended with attempts in flight; they run again at the next start"
            );
        }
        tracing::info!("sagaflow serve stopped; every transition is on disk");
    }
}

/// Exports the engine's runs as spans to the configured collector.
fn trace_runs(
    engine: &Engine,
    store: &Arc<dyn Store>,
    telemetry: &crate::config::Telemetry,
) -> Result<Tracer, StartError> {
    let dropped = engine.metrics().spans_dropped.clone();
    let exporter =
        Exporter::start(&telemetry.endpoint, &telemetry.service_name, dropped).map_err(StartError::Telemetry)?;
    Ok(Tracer::start(engine, store.clone(), exporter))
}

/// `host:port` to one address (a name such as `localhost` is looked up).
async fn resolve(listen: &str) -> Result<SocketAddr, StartError> {
    if let Ok(addr) = listen.parse() {
        return Ok(addr);
    }
    let fails = |why: String| StartError::Address { listen: listen.to_owned(), why };
    tokio::net::lookup_host(listen)
        .await
        .map_err(|e| fails(format!("not an address (write HOST:PORT, such as 127.0.0.1:8080): {e}")))?
        .next()
        .ok_or_else(|| fails("the name has no address".to_owned()))
}

/// Waits for ctrl-c or SIGTERM.
pub(crate) async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
