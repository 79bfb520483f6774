//! The `http` backend of a service: `POST {base_url}/{operation}` with the
//! request as JSON, the idempotency key as `Idempotency-Key`, and the answer's
//! status mapped to the DSL's error codes (docs/services.md is the contract).

use std::time::Duration;

use serde_json::Value as Json;

use super::answer::exchange;
use super::client::{Client, Secret};
use crate::base::error::ActionError;
use crate::services::remote::Transport;
use crate::services::{Ctx, ServiceFuture};

/// One service's REST endpoint.
#[derive(Clone)]
pub(crate) struct HttpService {
    pub service: String,
    pub base_url: String,
    pub timeout: Duration,
    pub max_response_bytes: usize,
    /// Extra headers, secrets among them (never logged).
    pub headers: Vec<(String, Secret)>,
    /// None: a registry for validation only, whose actions are never called.
    pub client: Option<Client>,
}

impl Transport for HttpService {
    fn send(&self, operation: &'static str, ctx: Ctx, request: Json) -> ServiceFuture<Json> {
        let this = self.clone();
        let url = format!("{}/{operation}", self.base_url.trim_end_matches('/'));
        Box::pin(async move {
            let body = serde_json::to_vec(&request)
                .map_err(|e| ActionError::new("invalid_input", format!("the request cannot be written: {e}")))?;
            tokio::select! {
                answer = this.exchange(&url, &ctx, body) => answer,
                _ = ctx.cancel.cancelled() => Err(ActionError::new("cancelled", format!("the call to {url} was cancelled"))),
            }
        })
    }
}

impl HttpService {
    async fn exchange(&self, url: &str, ctx: &Ctx, body: Vec<u8>) -> Result<Json, ActionError> {
        let Some(client) = &self.client else {
            let message = format!("the {} service has no HTTP client", self.service);
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
        if let Some(traceparent) = &ctx.traceparent {
            request = request.header("traceparent", traceparent);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.header_value()?);
        }
        let answer = exchange(request, url, self.max_response_bytes).await?;
        let bytes = answer.body.map_err(|e| e.at(url))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            ActionError::new("failed", format!("{url} answered {} with a body that is not JSON ({e})", answer.status))
        })
    }
}
