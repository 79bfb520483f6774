//! One HTTP exchange, the way every adapter makes it: send, read the answer
//! bounded, and turn a failure into the DSL's error codes (a timeout, no
//! connection, each status, `Retry-After`, the body's own `{"error": {...}}`).

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value as Json;

use super::client::{read_bounded, BodyError};
use crate::base::error::ActionError;

/// A `Retry-After` longer than this is taken as this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A 2xx answer: its status, headers, and body (at most the bytes asked for).
pub(crate) struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Result<Vec<u8>, BodyError>,
}

/// Sends `request` (its URL shown as `shown` in errors) and reads the answer, at
/// most `max` bytes of it. Any status but 2xx is an error saying what it means.
pub(crate) async fn exchange(request: reqwest::RequestBuilder, shown: &str, max: usize) -> Result<Answer, ActionError> {
    let response = request.send().await.map_err(|e| transport_error(shown, &e))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = read_bounded(response, max).await;
    if (200..300).contains(&status) {
        return Ok(Answer { status, headers, body });
    }
    let body = body.unwrap_or_default();
    Err(status_error(shown, status, &body).with_retry_after(retry_after(&headers)))
}

/// A failure before any answer: a timeout, no connection, or a name that
/// resolves only to addresses no request may reach (not retryable).
fn transport_error(url: &str, e: &reqwest::Error) -> ActionError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(refused) = c.downcast_ref::<super::client::ForbiddenAddress>() {
            return ActionError::new("forbidden", format!("{url} was not called: {refused}"));
        }
        cause = c.source();
    }
    if e.is_timeout() {
        ActionError::new("timeout", format!("{url} did not answer in time"))
    } else {
        let cause = std::error::Error::source(e).map(|s| format!(": {s}")).unwrap_or_default();
        ActionError::new("unavailable", format!("cannot reach {url}{cause}"))
    }
}

/// The DSL code of an HTTP status; the body's own documented code wins for a 4xx.
fn status_error(url: &str, status: u16, body: &[u8]) -> ActionError {
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
        Some(c) if (400..500).contains(&status) && status != 429 && crate::services::errors::is_documented(&c) => c,
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
fn retry_after(headers: &HeaderMap) -> Option<u64> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            let ms = at.timestamp_millis() - crate::base::clock::now_ms() as i64;
            Duration::from_millis(ms.max(0) as u64)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER).as_millis() as u64)
}
