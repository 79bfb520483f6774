//! A scripted HTTP/1.1 server on loopback for tests: it records every request
//! and answers each as the test says (status, headers, body, delay).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
}

impl Reply {
    pub(crate) fn json(status: u16, body: serde_json::Value) -> Reply {
        Reply {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            delay: Duration::ZERO,
        }
    }

    pub(crate) fn raw(status: u16, body: &[u8]) -> Reply {
        Reply { status, headers: Vec::new(), body: body.to_vec(), delay: Duration::ZERO }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(crate) fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

pub(crate) struct TestServer {
    pub url: String,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
}

type Answer = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

impl TestServer {
    /// Serves every request on a loopback port with axum: each is recorded,
    /// then answered as `answer` says.
    pub(crate) async fn start(answer: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let answer: Answer = Arc::new(answer);
        let seen = requests.clone();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (answer, seen) = (answer.clone(), seen.clone());
            async move { reply(request, &answer, &seen).await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        TestServer { url, requests }
    }

    pub(crate) fn seen(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Records one request and answers it.
async fn reply(
    request: axum::extract::Request,
    answer: &Answer,
    seen: &Mutex<Vec<Recorded>>,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.map(|b| b.to_vec()).unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let path = parts.uri.path_and_query().map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let recorded = Recorded { method: parts.method.to_string(), path, headers, body };
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(recorded.clone());
    let Reply { status, headers, body, delay } = answer(&recorded);
    tokio::time::sleep(delay).await;
    let mut response = axum::response::Response::new(axum::body::Body::from(body));
    *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::IM_A_TEAPOT);
    for (n, v) in headers {
        if let (Ok(n), Ok(v)) = (axum::http::HeaderName::try_from(n), axum::http::HeaderValue::try_from(v)) {
            response.headers_mut().append(n, v);
        }
    }
    response
}
