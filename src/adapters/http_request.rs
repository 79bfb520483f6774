//! `http.request`: a generic HTTP call, only to hosts on the config's
//! allow-list, never to a link-local or metadata address, its answer bounded.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::answer::exchange;
use super::client::{forbidden, Client, Secret};
use crate::actions::{Action, ActionFuture, Call, Effect};
use crate::services::{ActionError, Operation};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Request {
    /// GET, POST, PUT, PATCH, DELETE or HEAD (default GET).
    #[serde(default = "get")]
    #[schemars(regex(pattern = "^(GET|POST|PUT|PATCH|DELETE|HEAD)$"))]
    pub method: String,
    /// An http or https URL whose host is on the allow-list.
    #[schemars(regex(pattern = "^https?://"))]
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Sent as JSON.
    #[serde(default)]
    pub body: Option<Json>,
    /// Bounds this call (default: the config's, 30s); the step's timeout bounds it too.
    #[serde(default)]
    #[schemars(regex(pattern = "^[0-9]+(ms|s|m|h|d)$"))]
    pub timeout: Option<String>,
}

fn get() -> String {
    "GET".into()
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// The body: JSON when it parses as JSON, else text.
    pub body: Json,
}

/// Which hosts `http.request` may call: `host`, `host:port` or `*.domain`.
#[derive(Debug, Clone, Default)]
pub(crate) struct AllowList(pub Vec<String>);

impl AllowList {
    pub(crate) fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        self.0.iter().any(|entry| {
            let entry = entry.to_ascii_lowercase();
            let (pattern, want_port) = match entry.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => (h.to_owned(), p.parse::<u16>().ok()),
                _ => (entry.clone(), None),
            };
            let pattern = pattern.trim_start_matches('[').trim_end_matches(']').to_owned();
            let host_ok = match pattern.strip_prefix("*.") {
                Some(domain) => host.ends_with(&format!(".{domain}")),
                None => host == pattern,
            };
            host_ok && want_port.is_none_or(|p| p == port)
        })
    }
}

#[derive(Clone)]
pub(crate) struct HttpRequest {
    /// None: validation only; a call fails.
    pub client: Option<Client>,
    pub allow: AllowList,
    pub timeout: Duration,
    pub max_response_bytes: usize,
}

fn refuse(message: String) -> ActionError {
    ActionError::new("invalid_input", message)
}

impl HttpRequest {
    /// For the registry validation reads: no host is allowed, nothing is called.
    pub(crate) fn detached() -> HttpRequest {
        HttpRequest {
            client: None,
            allow: AllowList::default(),
            timeout: Duration::from_secs(30),
            max_response_bytes: 0,
        }
    }

    pub(crate) fn operation(self) -> Operation {
        let spec = crate::services::operation::spec::<Request, Response>(
            "http.request",
            "Calls an HTTP endpoint on the allow-list; the answer's status maps to the DSL's error codes.",
            Effect::Irreversible,
            &["timeout", "unavailable", "rate_limited", "not_found", "conflict", "too_large", "forbidden"],
        );
        Operation { spec, action: std::sync::Arc::new(self) }
    }

    /// The URL, checked against the allow-list and the forbidden addresses
    /// before any request is made.
    fn check(&self, url: &str) -> Result<reqwest::Url, ActionError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| refuse(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse(format!("`{url}`: only http and https URLs may be called")));
        }
        let host = parsed.host_str().unwrap_or_default().to_owned();
        let port = parsed.port_or_known_default().unwrap_or(80);
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            if forbidden(ip) {
                return Err(ActionError::new(
                    "forbidden",
                    format!("`{url}` is a link-local or cloud metadata address; it is never called"),
                ));
            }
        }
        if !self.allow.allows(&host, port) {
            return Err(refuse(format!(
                "`{host}` is not on the allow-list (`[http] allow` in sagaflow.toml); the request was not made"
            )));
        }
        Ok(parsed)
    }

    async fn send(
        &self,
        request: Request,
        cancel: tokio_util::sync::CancellationToken,
        traceparent: Option<String>,
    ) -> Result<Json, ActionError> {
        let url = self.check(&request.url)?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| refuse(format!("`{}` is not an HTTP method", request.method)))?;
        let timeout = match &request.timeout {
            Some(t) => {
                t.parse::<crate::dsl::duration::Duration>().map(|d| d.std()).map_err(|e| refuse(e.to_string()))?
            }
            None => self.timeout,
        };
        let Some(client) = &self.client else {
            return Err(ActionError::new(
                "unavailable",
                "http.request has no client in this registry (it is for validation)",
            ));
        };
        let mut builder = client.inner().request(method, url.clone()).timeout(timeout);
        if let Some(traceparent) = traceparent {
            builder = builder.header("traceparent", traceparent);
        }
        // The workflow's own headers come last: a `traceparent` it sets wins.
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), Secret::plain(value.clone()).header_value()?);
        }
        if let Some(body) = &request.body {
            let bytes = serde_json::to_vec(body).map_err(|e| refuse(e.to_string()))?;
            builder = builder.header("content-type", "application/json").body(bytes);
        }
        let shown = format!("{}{}", url.origin().ascii_serialization(), url.path());
        let answer = tokio::select! {
            answer = exchange(builder, &shown, self.max_response_bytes) => answer?,
            _ = cancel.cancelled() => return Err(ActionError::new("cancelled", "the request was cancelled")),
        };
        let headers = answer
            .headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let status = answer.status;
        let bytes = answer.body.map_err(|e| e.at(&shown))?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Json::String(String::from_utf8_lossy(&bytes).into_owned()));
        let out = Response { status, headers, body };
        serde_json::to_value(out).map_err(|e| ActionError::new("failed", e.to_string()))
    }
}

impl Action for HttpRequest {
    fn call(&self, call: Call) -> ActionFuture {
        let request = serde_json::from_value::<Request>(call.input);
        let this = self.clone();
        Box::pin(async move {
            let request = request.map_err(|e| refuse(format!("the input does not fit http.request: {e}")))?;
            this.send(request, call.ctx.cancel, call.ctx.traceparent).await
        })
    }
}
