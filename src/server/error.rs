//! The API's errors: each a status and a code, rendered as
//! `{"error": {"code", "message"}}`; and the JSON body extractor whose every
//! rejection (syntax, content type, size) becomes one of them.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

/// An error the API answers with.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// More fields of the error object (such as a run's `status`).
    pub details: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// Seconds to wait before trying again (`Retry-After`).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), details: None, retry_after: None }
    }

    /// The error with more fields beside `code` and `message`.
    pub(crate) fn with_details(mut self, details: serde_json::Value) -> ApiError {
        if let serde_json::Value::Object(map) = details {
            self.details.get_or_insert_with(Box::default).extend(map);
        }
        self
    }

    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub(crate) fn unprocessable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// The store cannot write now (a full disk, say); the engine goes on by
    /// itself once it can.
    pub(crate) fn storage_unavailable(error: String) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", error);
        e.retry_after = Some(5);
        e
    }

    pub(crate) fn draining() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", "the server is shutting down; try again shortly")
    }

    /// As many event streams and waits are open as the server takes.
    pub(crate) fn busy() -> ApiError {
        let message = "the server holds as many event streams and waits as it takes (--max-streams); try again shortly";
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "too_many_streams", message)
    }

    /// The store or the engine failed: the request did not happen.
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<crate::store::StoreError> for ApiError {
    /// Storage that may take the request later is 503 with `Retry-After`.
    fn from(e: crate::store::StoreError) -> ApiError {
        match e.kind {
            crate::store::StoreErrorKind::Unavailable => ApiError::storage_unavailable(e.message),
            _ => ApiError::internal(e.message),
        }
    }
}

impl From<crate::engine::ReplayError> for ApiError {
    fn from(e: crate::engine::ReplayError) -> ApiError {
        match e {
            crate::engine::ReplayError::Store(e) => e.into(),
            crate::engine::ReplayError::NoSuchRun(_) => ApiError::not_found(e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), crate::base::secrets::mask_str(&self.message).into_owned().into());
        error.extend(self.details.map(|d| *d).unwrap_or_default());
        let body = serde_json::json!({ "error": error });
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}

/// Every error answer is `{"error": {"code", "message"}}`: an error that
/// axum or hyper wrote as plain text (an undecodable path or query, say) is
/// rewritten so, its text kept as the message. HTML (the console's login
/// page) and JSON pass as they are.
pub(crate) async fn json_errors(request: Request, next: axum::middleware::Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let content_type = response.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let kept = content_type.is_some_and(|t| t.starts_with("application/json") || t.starts_with("text/html"));
    if status.as_u16() < 400 || kept {
        return response;
    }
    let retry_after = response.headers().get(axum::http::header::RETRY_AFTER).cloned();
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { text };
    let mut answer = ApiError::new(status, code_of(status), message).into_response();
    if let Some(value) = retry_after {
        answer.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
    }
    answer
}

/// The error code an HTTP status stands for, when nothing more precise is known.
fn code_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "bad_request",
    }
}

/// A request body of at most [`super::MAX_BODY_BYTES`]. A larger one is read on
/// (up to [`MAX_DRAINED_BYTES`]) and dropped, so a client still sending it reads
/// the `413` instead of a reset connection.
pub(crate) struct BoundedBody(pub Bytes);

/// How much of an oversized body is read and dropped before the connection is cut.
pub(crate) const MAX_DRAINED_BYTES: usize = 16 * 1024 * 1024;

impl<S: Send + Sync> FromRequest<S> for BoundedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, Self::Rejection> {
        let mut stream = req.into_body().into_data_stream();
        let mut body = Vec::new();
        let mut seen = 0usize;
        let deadline = tokio::time::Instant::now() + super::listen::BODY_TIMEOUT;
        loop {
            let next = tokio::time::timeout_at(deadline, stream.next()).await.map_err(|_| too_slow())?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| unreadable(e.to_string()))?;
            seen = seen.saturating_add(chunk.len());
            if seen <= super::MAX_BODY_BYTES {
                body.extend_from_slice(&chunk);
            } else if seen > MAX_DRAINED_BYTES {
                break;
            }
        }
        if seen > super::MAX_BODY_BYTES {
            return Err(too_large());
        }
        Ok(BoundedBody(body.into()))
    }
}

/// A JSON request body: like axum's `Json` over a [`BoundedBody`], with its
/// rejections as [`ApiError`]s.
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let BoundedBody(bytes) = BoundedBody::from_request(Request::new(body), state).await?;
        let req = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

fn rejected(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON, sent with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => {
            ApiError::bad_request("bad_json", format!("the body is not JSON: {}", e.body_text()))
        }
        JsonRejection::JsonDataError(e) => ApiError::bad_request("bad_request", e.body_text()),
        JsonRejection::BytesRejection(e) => too_large_or(e.status(), e.body_text()),
        other => ApiError::bad_request("bad_request", other.body_text()),
    }
}

/// A body that could not be read: too large (413), or cut off.
fn too_large_or(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        too_large()
    } else {
        unreadable(text)
    }
}

fn too_large() -> ApiError {
    let message = format!("the body is larger than {} KiB, the most this server takes", super::MAX_BODY_BYTES / 1024);
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message)
}

/// A body that did not arrive within [`super::listen::BODY_TIMEOUT`].
fn too_slow() -> ApiError {
    let message =
        format!("the body did not arrive within {} s; send it at once", super::listen::BODY_TIMEOUT.as_secs());
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", message)
}

fn unreadable(text: String) -> ApiError {
    ApiError::bad_request("bad_request", format!("the body could not be read: {text}"))
}
