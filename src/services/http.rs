//! The `http` backend of a service: `POST {base_url}/{operation}` with the
//! request as JSON, the idempotency key as `Idempotency-Key`, and the answer's
//! status mapped to the DSL's error codes (docs/services.md is the contract).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use super::{ActionError, Ctx, ServiceFuture};
use crate::adapters::client::{read_bounded, Client, Secret};

/// A `Retry-After` longer than this is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// One service's REST endpoint.
#[derive(Clone)]
pub struct HttpService {
    pub service: String,
    pub base_url: String,
    pub timeout: Duration,
    pub max_response_bytes: usize,
    /// Extra headers, secrets among them (never logged).
    pub headers: Vec<(String, Secret)>,
    /// None: a registry for validation only, whose actions are never called.
    pub client: Option<Client>,
}

impl HttpService {
    /// A service with no backend, in the registry that validation reads.
    pub fn detached(service: &str) -> HttpService {
        HttpService {
            service: service.to_owned(),
            base_url: String::new(),
            timeout: Duration::from_secs(30),
            max_response_bytes: 0,
            headers: Vec::new(),
            client: None,
        }
    }

    /// Calls `operation` and reads its answer as `Resp`.
    pub fn post<Req, Resp>(&self, operation: &str, ctx: Ctx, request: Req) -> ServiceFuture<Resp>
    where
        Req: Serialize + Send + 'static,
        Resp: DeserializeOwned + Send + 'static,
    {
        let this = self.clone();
        let url = format!("{}/{operation}", self.base_url.trim_end_matches('/'));
        Box::pin(async move {
            let body = serde_json::to_vec(&request)
                .map_err(|e| ActionError::new("invalid_input", format!("the request cannot be written: {e}")))?;
            tokio::select! {
                answer = this.exchange(&url, &ctx, body) => {
                    let json = answer?;
                    serde_json::from_value(json).map_err(|e| {
                        ActionError::new("failed", format!("{url} answered JSON that does not fit the contract: {e}"))
                    })
                }
                _ = ctx.cancel.cancelled() => Err(ActionError::new("cancelled", format!("the call to {url} was cancelled"))),
            }
        })
    }

    async fn exchange(&self, url: &str, ctx: &Ctx, body: Vec<u8>) -> Result<Json, ActionError> {
        let Some(client) = &self.client else {
            let message =
                format!("the {} service has no backend in this registry (it is for validation)", self.service);
            return Err(ActionError::new("unavailable", message));
        };
        let mut request = client
            .inner()
            .post(url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .header("idempotency-key", &ctx.idempotency_key)
            .header("x-sagaflow-run", &ctx.run_id)
            .header("x-sagaflow-step", &ctx.step)
            .header("x-sagaflow-attempt", ctx.attempt.to_string())
            .body(body);
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.header_value()?);
        }
        let response = request.send().await.map_err(|e| transport_error(url, &e))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let bytes = read_bounded(response, self.max_response_bytes).await.map_err(|e| e.at(url))?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| {
                ActionError::new("failed", format!("{url} answered {status} with a body that is not JSON ({e})"))
            });
        }
        Err(status_error(url, status, &bytes).with_retry_after(retry_after))
    }
}

/// A failure before any answer: a timeout, or no connection.
pub fn transport_error(url: &str, e: &reqwest::Error) -> ActionError {
    if e.is_timeout() {
        ActionError::new("timeout", format!("{url} did not answer in time"))
    } else {
        let cause = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
        ActionError::new("unavailable", format!("cannot reach {url}{cause}"))
    }
}

/// The DSL code of an HTTP status; the body's own documented code wins for a 4xx.
pub fn status_error(url: &str, status: u16, body: &[u8]) -> ActionError {
    let (own_code, own_message) = error_body(body);
    let code = match status {
        408 | 504 => "timeout",
        429 => "rate_limited",
        500..=599 => "unavailable",
        404 => "not_found",
        409 => "conflict",
        _ => "invalid_input",
    };
    let code = match own_code {
        Some(c) if (400..500).contains(&status) && status != 429 && super::errors::is_documented(&c) => c,
        _ => code.to_owned(),
    };
    let message = own_message.unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    ActionError::new(code, format!("{url} answered {status}: {}", message.trim()))
}

/// `{"error": {"code", "message"}}`, if that is what the body is.
fn error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    let json: Json = serde_json::from_slice(body).unwrap_or(Json::Null);
    let field = |f: &str| json.pointer(&format!("/error/{f}")).and_then(Json::as_str).map(str::to_owned);
    (field("code"), field("message"))
}

/// `Retry-After` in seconds or as an HTTP date, as milliseconds from now.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            let ms = at.timestamp_millis() - crate::engine::driver::now_ms() as i64;
            Duration::from_millis(ms.max(0) as u64)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER).as_millis() as u64)
}
