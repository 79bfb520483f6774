//! `/`, `/healthz`, `/metrics`, `/openapi.json`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::App;

pub(super) async fn console() -> Response {
    crate::server::console::page()
}

pub(super) async fn healthz(State(app): State<Arc<App>>) -> Response {
    let storage = app.storage_error();
    let (status, state) = match (app.is_draining(), app.store.is_fenced(), &storage) {
        (true, ..) => (StatusCode::SERVICE_UNAVAILABLE, "draining"),
        (false, true, _) => (StatusCode::SERVICE_UNAVAILABLE, "fenced"),
        (false, false, Some(_)) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
        (false, false, None) => (StatusCode::OK, "ok"),
    };
    let body = json!({
        "status": state,
        "storage": storage.map_or_else(|| json!({"ok": true}), |error| json!({"ok": false, "error": error})),
        "uptime_s": app.started_at.elapsed().as_secs(),
        "attempts_in_flight": app.engine.in_flight(),
        "workflows": app.catalog.snapshot().names().count(),
    });
    (status, Json(body)).into_response()
}

pub(super) async fn metrics(State(app): State<Arc<App>>) -> Response {
    let text = crate::server::prometheus::render(&app);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

pub(super) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], crate::server::console::OPENAPI).into_response()
}
