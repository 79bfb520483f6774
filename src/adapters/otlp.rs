//! Spans out over OTLP/HTTP: protobuf `POST {endpoint}/v1/traces`, in batches
//! of up to [`MAX_BATCH`] spans or every second, each tried 3 times.
//!
//! Telemetry never holds a run up: spans wait in a bounded queue, and when
//! the collector is away the queue fills and new spans are dropped (counted
//! in [`Exporter::dropped`], logged once a batch).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use tokio::sync::{mpsc, oneshot};

use super::otlp_proto as proto;

/// At most this many spans a request.
pub(crate) const MAX_BATCH: usize = 512;
/// At most this many spans wait to be sent; more are dropped.
const QUEUE: usize = 16_384;
/// How long a span waits for others to share its request.
const LINGER: Duration = Duration::from_secs(1);

/// One finished span, as sagaflow makes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpanData {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: String,
    /// Milliseconds since the epoch.
    pub start_ms: u64,
    pub end_ms: u64,
    pub attributes: Vec<(&'static str, Attr)>,
    /// Set when the span ended in an error: what went wrong.
    pub error: Option<String>,
}

/// A span attribute's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Attr {
    Str(String),
    Int(i64),
}

enum Msg {
    Span(SpanData),
    Flush(oneshot::Sender<()>),
}

/// Sends spans to one OTLP endpoint from a task of its own.
pub(crate) struct Exporter {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

impl Exporter {
    /// Starts the exporter's task on the current runtime. `endpoint` is the
    /// collector's base URL (`http://127.0.0.1:4318`) or its full traces URL.
    /// Spans it drops are counted in `dropped`.
    pub(crate) fn start(endpoint: &str, service: &str, dropped: Arc<AtomicU64>) -> Result<Arc<Exporter>, String> {
        let url = traces_url(endpoint)?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot make the OTLP client: {e}"))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let sender = Sender { http, url, resource: resource(service), dropped: dropped.clone() };
        tokio::spawn(sender.run(rx));
        Ok(Arc::new(Exporter { tx, dropped }))
    }

    /// Queues spans; those the queue has no room for are dropped.
    pub(crate) fn send(&self, spans: Vec<SpanData>) {
        for span in spans {
            if self.tx.try_send(Msg::Span(span)).is_err() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends what is queued now; answers once it was sent or given up on, or after `within`.
    pub(crate) async fn flush(&self, within: Duration) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Msg::Flush(reply)).await.is_ok() {
            let _ = tokio::time::timeout(within, done).await;
        }
    }

    /// Spans dropped so far: the queue was full, or the collector refused them.
    #[cfg(test)]
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The traces URL of an endpoint setting.
pub(crate) fn traces_url(endpoint: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(endpoint).map_err(|e| format!("`{endpoint}` is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{endpoint}`: an OTLP endpoint is http:// or https://"));
    }
    let base = endpoint.trim_end_matches('/');
    Ok(if base.ends_with("/v1/traces") { base.to_owned() } else { format!("{base}/v1/traces") })
}

struct Sender {
    http: reqwest::Client,
    url: String,
    resource: proto::Resource,
    dropped: Arc<AtomicU64>,
}

impl Sender {
    async fn run(self, mut rx: mpsc::Receiver<Msg>) {
        let mut batch: Vec<SpanData> = Vec::new();
        let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
        while let Some(first) = rx.recv().await {
            take(first, &mut batch, &mut flushes);
            let linger = tokio::time::sleep(LINGER);
            tokio::pin!(linger);
            while batch.len() < MAX_BATCH && flushes.is_empty() {
                tokio::select! {
                    msg = rx.recv() => match msg {
                        Some(msg) => take(msg, &mut batch, &mut flushes),
                        None => break,
                    },
                    _ = &mut linger => break,
                }
            }
            if !batch.is_empty() {
                self.post(std::mem::take(&mut batch)).await;
            }
            // A flush answers once everything queued before it went out.
            while !flushes.is_empty() {
                while let Ok(msg) = rx.try_recv() {
                    take(msg, &mut batch, &mut flushes);
                }
                for chunk in std::mem::take(&mut batch).chunks(MAX_BATCH) {
                    self.post(chunk.to_vec()).await;
                }
                for reply in flushes.drain(..) {
                    let _ = reply.send(());
                }
            }
        }
    }

    /// One request, tried 3 times (0.5 s, then 1 s apart) on a network error, 429 or 5xx.
    async fn post(&self, spans: Vec<SpanData>) {
        let count = spans.len() as u64;
        let body = request(&self.resource, spans).encode_to_vec();
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << (attempt - 1))).await;
            }
            let sent = self.http.post(&self.url).header("content-type", "application/x-protobuf").body(body.clone());
            match sent.send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => last = r.status().to_string(),
                Ok(r) => {
                    last = r.status().to_string();
                    break;
                }
                Err(e) => last = e.without_url().to_string(),
            }
        }
        self.dropped.fetch_add(count, Ordering::Relaxed);
        tracing::warn!(spans = count, url = %self.url, error = %last, "the OTLP collector did not take spans; they are dropped");
    }
}

fn take(msg: Msg, batch: &mut Vec<SpanData>, flushes: &mut Vec<oneshot::Sender<()>>) {
    match msg {
        Msg::Span(span) => batch.push(span),
        Msg::Flush(reply) => flushes.push(reply),
    }
}

fn resource(service: &str) -> proto::Resource {
    proto::Resource {
        attributes: vec![
            key_value("service.name", Attr::Str(service.to_owned())),
            key_value("telemetry.sdk.name", Attr::Str("sagaflow".into())),
        ],
    }
}

/// The request carrying these spans.
pub(crate) fn request(resource: &proto::Resource, spans: Vec<SpanData>) -> proto::ExportTraceServiceRequest {
    let scope = proto::InstrumentationScope { name: "sagaflow".into(), version: env!("CARGO_PKG_VERSION").into() };
    let scope_spans = proto::ScopeSpans { scope: Some(scope), spans: spans.into_iter().map(encode_span).collect() };
    let resource_spans = proto::ResourceSpans { resource: Some(resource.clone()), scope_spans: vec![scope_spans] };
    proto::ExportTraceServiceRequest { resource_spans: vec![resource_spans] }
}

fn encode_span(span: SpanData) -> proto::Span {
    let nanos = |ms: u64| ms.saturating_mul(1_000_000);
    proto::Span {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        parent_span_id: span.parent.map(|p| p.to_vec()).unwrap_or_default(),
        name: span.name,
        kind: proto::SPAN_KIND_INTERNAL,
        start_time_unix_nano: nanos(span.start_ms),
        end_time_unix_nano: nanos(span.end_ms.max(span.start_ms)),
        attributes: span.attributes.into_iter().map(|(k, v)| key_value(k, v)).collect(),
        status: span.error.map(|message| proto::Status { message, code: proto::STATUS_CODE_ERROR }),
    }
}

fn key_value(key: &str, value: Attr) -> proto::KeyValue {
    let value = match value {
        Attr::Str(s) => proto::any_value::Value::String(s),
        Attr::Int(i) => proto::any_value::Value::Int(i),
    };
    proto::KeyValue { key: key.to_owned(), value: Some(proto::AnyValue { value: Some(value) }) }
}

#[cfg(test)]
mod tests;
