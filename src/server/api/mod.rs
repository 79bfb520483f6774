//! The HTTP API's routes. Handlers are small functions, one file per resource.

mod events;
mod extract;
mod meta;
mod operate;
mod runs;
mod workflows;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;

use super::error::ApiError;
use super::App;

pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(meta::console))
        .route("/healthz", get(meta::healthz))
        .route("/metrics", get(meta::metrics))
        .route("/openapi.json", get(meta::openapi))
        .route("/v1/workflows", get(workflows::list))
        .route("/v1/workflows/{name}", get(workflows::one))
        .route("/v1/workflows/{name}/runs", post(runs::start))
        .route("/v1/validate", post(workflows::validate))
        .route("/v1/runs", get(runs::list))
        .route("/v1/runs/{id}", get(runs::one))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route("/v1/runs/{id}/retry", post(operate::retry))
        .route("/v1/runs/{id}/skip", post(operate::skip))
        .route("/v1/runs/{id}/abort", post(operate::abort))
        .route("/v1/runs/{id}/rerun", post(operate::rerun))
        .route("/v1/bulk/{action}", post(operate::bulk))
        .route("/v1/runs/{id}/events", get(runs::events))
        .route("/v1/events", post(events::send))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(app.clone(), super::auth::require_token))
        .layer(DefaultBodyLimit::max(super::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(super::error::json_errors))
        .with_state(app)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("there is no route {}; `GET /openapi.json` lists them", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    let message = format!("{} does not take {method}; `GET /openapi.json` lists what it takes", uri.path());
    ApiError::new(axum::http::StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message)
}
