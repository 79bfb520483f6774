//! The web console and the OpenAPI file, embedded in the binary (no build
//! step on the user's machine): one HTML page with its script and styles.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The console: workflows (state, diagnostics, graph), runs (live timeline),
/// a form to start a run from the input schema, and a form to send an event.
pub const CONSOLE: &str = include_str!("assets/console.html");

/// The API's OpenAPI 3.1 description.
pub const OPENAPI: &str = include_str!("assets/openapi.json");

const LOGIN: &str = include_str!("assets/login.html");

pub fn page() -> Response {
    html(StatusCode::OK, CONSOLE)
}

/// What `/` shows a browser without the token: a form that keeps it in a cookie.
pub fn login_page() -> Response {
    html(StatusCode::UNAUTHORIZED, LOGIN)
}

fn html(status: StatusCode, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-cache"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (status, headers, body).into_response()
}
