//! The web console and the OpenAPI file, embedded in the binary (no build
//! step on the user's machine): one HTML page with its script and styles.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// The console: workflows (state, diagnostics, graph), runs (live timeline),
/// a form to start a run from the input schema, and a form to send an event.
pub(crate) const CONSOLE: &str = include_str!("assets/console.html");

/// The API's OpenAPI 3.1 description.
pub(crate) const OPENAPI: &str = include_str!("assets/openapi.json");

const LOGIN: &str = include_str!("assets/login.html");

pub(crate) fn page() -> Response {
    html(StatusCode::OK, CONSOLE)
}

/// What `/` shows a browser without the token: a form that keeps it in a cookie.
pub(crate) fn login_page() -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The statuses the console filters by and the OpenAPI file lists are the store's.
    #[test]
    fn the_console_and_the_openapi_file_know_every_run_status() {
        let statuses: Vec<&str> = crate::store::RunStatus::names().collect();
        let openapi: serde_json::Value = serde_json::from_str(OPENAPI).expect("the OpenAPI file is JSON");
        assert_eq!(
            openapi.pointer("/components/schemas/RunRecord/properties/status/enum"),
            Some(&serde_json::json!(statuses))
        );
        let line =
            CONSOLE.lines().find(|l| l.starts_with("const STATUSES = ")).expect("the console lists the statuses");
        let listed = line.trim_start_matches("const STATUSES = ").trim_end_matches(';');
        let listed: Vec<String> = serde_json::from_str(listed).expect("a JSON list");
        assert_eq!(listed, statuses);
    }
}
