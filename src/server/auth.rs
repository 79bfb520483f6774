//! Access: with a token set, every route but `/healthz` needs it, as
//! `Authorization: Bearer TOKEN` or (for the console in a browser) the
//! `sagaflow_token` cookie. Missing: 401; wrong: 403.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::App;

pub(crate) const COOKIE: &str = "sagaflow_token";

pub(crate) async fn require_token(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let Some(token) = app.token.as_deref() else { return next.run(request).await };
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    match presented(&request) {
        Some(given) if constant_time_eq(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", "the token is not the server's").into_response(),
        None if request.uri().path() == "/" => super::console::login_page(),
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs a token: send `Authorization: Bearer TOKEN` (the server's SAGAFLOW_API_TOKEN)",
        )
        .into_response(),
    }
}

/// The token a request carries, from the header or the console's cookie.
fn presented(request: &Request) -> Option<String> {
    presented_in(request.headers())
}

fn presented_in(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return Some(value.strip_prefix("Bearer ").unwrap_or(value).trim().to_owned());
    }
    let cookies = headers.get_all(header::COOKIE).into_iter().filter_map(|v| v.to_str().ok());
    cookies
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value_trimmed().to_owned())
}

/// Compares without stopping at the first difference (no timing hint).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn with(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(name.clone(), HeaderValue::from_str(value).expect("a header value"));
        }
        headers
    }

    #[test]
    fn the_token_comes_from_the_header_or_the_consoles_cookie() {
        let bearer = with(&[(header::AUTHORIZATION, "Bearer s3cret ")]);
        assert_eq!(presented_in(&bearer).as_deref(), Some("s3cret"));
        let among = with(&[(header::COOKIE, "theme=dark; sagaflow_token=s3cret; lang=en")]);
        assert_eq!(presented_in(&among).as_deref(), Some("s3cret"));
        let quoted = with(&[(header::COOKIE, "sagaflow_token=\"s3cret\"")]);
        assert_eq!(presented_in(&quoted).as_deref(), Some("s3cret"), "a quoted value (RFC 6265) is its inside");
        let second_header = with(&[(header::COOKIE, "a=1"), (header::COOKIE, "sagaflow_token=s3cret")]);
        assert_eq!(presented_in(&second_header).as_deref(), Some("s3cret"));
        let lookalike = with(&[(header::COOKIE, "xsagaflow_token=s3cret; broken")]);
        assert_eq!(presented_in(&lookalike), None);
    }
}
