//! The API's own extractors: path ids checked once, query strings typed, each
//! rejection an [`ApiError`] with the JSON error body every answer has.

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::server::error::ApiError;

/// The longest id a path may carry.
const MAX_ID: usize = 128;

/// `{id}` of `/v1/runs/{id}`: a run id of plain characters; any other is a run
/// that is not there (404 `not_found`).
pub(super) struct RunId(pub String);

/// `{name}` of `/v1/workflows/{name}`: a workflow name of plain characters;
/// any other is a workflow that is not there (404 `not_found`).
pub(super) struct WorkflowName(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RunId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        plain_segment(parts, state, "run").await.map(RunId)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WorkflowName {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        plain_segment(parts, state, "workflow").await.map(WorkflowName)
    }
}

/// The route's one path parameter, if it is bounded and of plain characters.
async fn plain_segment<S: Send + Sync>(parts: &mut Parts, state: &S, what: &str) -> Result<String, ApiError> {
    let Path(id) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    let plain = id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if id.is_empty() || id.len() > MAX_ID || !plain {
        let shown: String = id.chars().take(MAX_ID).collect();
        return Err(ApiError::not_found(format!("there is no {what} `{shown}`")));
    }
    Ok(id)
}

/// A query string read into `T` (whose unknown fields are refused, so a
/// misspelt parameter is an error, not ignored): 400 `bad_request` otherwise.
pub(super) struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Params(value)),
            Err(rejection) => Err(ApiError::bad_request("bad_request", rejection.body_text())),
        }
    }
}
