//! The http backend and `http.request` against a real server on loopback.

use std::time::Duration;

use serde_json::json;

use super::client::{Client, Secret};
use super::http_request::{AllowList, HttpRequest};
use super::service_http::HttpService;
use super::test_server::{Reply, TestServer};
use crate::actions::{Action, Call};
use crate::services::inventory::{Inventory, ReserveStock};
use crate::services::remote::Remote;
use crate::services::{ActionError, Ctx};

/// A loopback port nobody listens on (the moment it is asked for).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn client() -> Client {
    Client::new().unwrap_or_else(|e| panic!("{e}"))
}

fn service(url: &str, timeout: Duration) -> Remote {
    Remote(std::sync::Arc::new(HttpService {
        service: "inventory".into(),
        base_url: url.to_owned(),
        timeout,
        max_response_bytes: 4096,
        headers: vec![("authorization".into(), Secret::hidden("Bearer s3cr3t".into()))],
        client: Some(client()),
    }))
}

fn reserve() -> ReserveStock {
    ReserveStock { sku: "BOOK-001".into(), quantity: 2, reference: None }
}

async fn call_with(reply: Reply) -> (Result<crate::services::inventory::Reservation, ActionError>, TestServer) {
    let server = TestServer::start(move |_| reply.clone()).await;
    let result = service(&server.url, Duration::from_secs(5)).reserve(Ctx::detached("run-1:reserve"), reserve()).await;
    (result, server)
}

#[tokio::test]
async fn a_call_posts_json_with_the_idempotency_key_and_reads_the_answer() {
    let answer = json!({"reservation_id": "r-9", "sku": "BOOK-001", "quantity": 2, "available": 7});
    let (result, server) = call_with(Reply::json(200, answer)).await;
    let reservation = result.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((reservation.reservation_id.as_str(), reservation.available), ("r-9", 7));
    let seen = server.seen();
    assert_eq!((seen[0].method.as_str(), seen[0].path.as_str()), ("POST", "/reserve"));
    assert_eq!(seen[0].header("idempotency-key"), Some("run-1:reserve"));
    assert_eq!(seen[0].header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(seen[0].header("content-type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap_or_default();
    assert_eq!(body, json!({"sku": "BOOK-001", "quantity": 2, "reference": null}));
}

#[tokio::test]
async fn each_status_maps_to_its_code() {
    let cases = [
        (408, "timeout"),
        (504, "timeout"),
        (429, "rate_limited"),
        (500, "unavailable"),
        (502, "unavailable"),
        (503, "unavailable"),
        (404, "not_found"),
        (409, "conflict"),
        (400, "invalid_input"),
        (422, "invalid_input"),
        (401, "invalid_input"),
    ];
    for (status, code) in cases {
        let (result, _) = call_with(Reply::json(status, json!({"error": {"message": "no"}}))).await;
        let e = result.err().unwrap_or_else(|| panic!("{status} must fail"));
        assert_eq!(e.code, code, "status {status}: {}", e.message);
        assert!(e.message.contains(&format!("answered {status}: no")), "{}", e.message);
    }
}

#[tokio::test]
async fn a_documented_service_code_in_the_body_wins_over_the_status() {
    let body = json!({"error": {"code": "out_of_stock", "message": "only 1 left"}});
    let (result, _) = call_with(Reply::json(409, body)).await;
    assert_eq!(result.err().map(|e| e.code), Some("out_of_stock".into()));
    // An undocumented code does not: the status decides.
    let body = json!({"error": {"code": "weird_thing", "message": "?"}});
    let (result, _) = call_with(Reply::json(409, body)).await;
    assert_eq!(result.err().map(|e| e.code), Some("conflict".into()));
}

#[tokio::test]
async fn retry_after_is_carried_to_the_retry() {
    let (result, _) = call_with(Reply::json(429, json!({})).header("retry-after", "7")).await;
    let e = result.err().unwrap_or_else(|| panic!("429 must fail"));
    assert_eq!((e.code.as_str(), e.retry_after_ms), ("rate_limited", Some(7000)));
    let (result, _) = call_with(Reply::json(503, json!({})).header("retry-after", "999999")).await;
    assert_eq!(result.err().and_then(|e| e.retry_after_ms), Some(3_600_000), "capped at an hour");
}

#[tokio::test]
async fn a_garbage_body_fails_clearly() {
    let (result, _) = call_with(Reply::raw(200, b"<html>oops</html>")).await;
    let e = result.err().unwrap_or_else(|| panic!("garbage must fail"));
    assert_eq!(e.code, "failed");
    assert!(e.message.contains("not JSON"), "{}", e.message);
    let (result, _) = call_with(Reply::json(200, json!({"reservation": 1}))).await;
    let e = result.err().unwrap_or_else(|| panic!("a wrong shape must fail"));
    assert!(e.message.contains("does not fit the contract"), "{}", e.message);
}

#[tokio::test]
async fn a_body_past_the_bound_is_too_large() {
    let big = vec![b'x'; 10_000];
    let (result, _) = call_with(Reply::raw(200, &big)).await;
    assert_eq!(result.err().map(|e| e.code), Some("too_large".into()));
    let (result, _) = call_with(Reply::raw(503, &big).header("retry-after", "2")).await;
    let e = result.err().unwrap_or_else(|| panic!("503 must fail"));
    let what = (e.code.as_str(), e.retry_after_ms);
    assert_eq!(what, ("unavailable", Some(2000)), "a failed status says what it means, however large its body");
}

#[tokio::test]
async fn a_slow_server_times_out_and_the_request_is_dropped() {
    let server = TestServer::start(|_| Reply::json(200, json!({})).after(Duration::from_secs(30))).await;
    let started = std::time::Instant::now();
    let result = service(&server.url, Duration::from_millis(300)).reserve(Ctx::detached("k"), reserve()).await;
    assert_eq!(result.err().map(|e| e.code), Some("timeout".into()));
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout cut the wait");
}

#[tokio::test]
async fn cancellation_stops_the_call() {
    let server = TestServer::start(|_| Reply::json(200, json!({})).after(Duration::from_secs(30))).await;
    let ctx = Ctx::detached("k");
    let cancel = ctx.cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancel.cancel();
    });
    let result = service(&server.url, Duration::from_secs(60)).reserve(ctx, reserve()).await;
    assert_eq!(result.err().map(|e| e.code), Some("cancelled".into()));
}

#[tokio::test]
async fn nobody_listening_is_unavailable() {
    let port = free_port();
    let result = service(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5))
        .reserve(Ctx::detached("k"), reserve())
        .await;
    assert_eq!(result.err().map(|e| e.code), Some("unavailable".into()));
}

fn http_request(allow: &[&str]) -> HttpRequest {
    HttpRequest {
        client: Some(client()),
        allow: AllowList(allow.iter().map(|s| (*s).to_owned()).collect()),
        timeout: Duration::from_secs(5),
        max_response_bytes: 4096,
    }
}

async fn request(action: &HttpRequest, input: serde_json::Value) -> Result<serde_json::Value, ActionError> {
    let call = Call { input, ctx: crate::actions::Ctx::detached("r:s") };
    action.call(call).await
}

#[tokio::test]
async fn http_request_calls_an_allowed_host() {
    let server = TestServer::start(|_| Reply::json(201, json!({"ok": true}))).await;
    let port = server.url.rsplit(':').next().unwrap_or_default().to_owned();
    let action = http_request(&[&format!("127.0.0.1:{port}")]);
    let url = format!("{}/hook?x=1", server.url);
    let out =
        request(&action, json!({"method": "POST", "url": url, "body": {"a": 1}, "headers": {"x-trace": "t1"}})).await;
    let out = out.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!((out["status"].clone(), out["body"].clone()), (json!(201), json!({"ok": true})));
    let seen = server.seen();
    assert_eq!((seen[0].path.as_str(), seen[0].header("x-trace")), ("/hook?x=1", Some("t1")));
}

#[tokio::test]
async fn http_request_refuses_hosts_off_the_list_and_metadata_addresses_before_any_request() {
    let server = TestServer::start(|_| Reply::json(200, json!({}))).await;
    let action = http_request(&["api.example.com", "*.partner.example", "169.254.169.254"]);
    for (url, code) in [
        (server.url.clone(), "invalid_input"),
        ("http://169.254.169.254/latest/meta-data/".to_owned(), "forbidden"),
        ("http://2852039166/latest/meta-data/".to_owned(), "forbidden"),
        ("http://[fe80::1]/".to_owned(), "forbidden"),
        ("http://[::ffff:169.254.169.254]/".to_owned(), "forbidden"),
        ("http://[64:ff9b::a9fe:a9fe]/".to_owned(), "forbidden"),
        ("http://[::a9fe:a9fe]/".to_owned(), "forbidden"),
        ("http://[2002:a9fe:a9fe::]/".to_owned(), "forbidden"),
        ("http://100.100.100.200/latest/meta-data/".to_owned(), "forbidden"),
        ("http://168.63.129.16/".to_owned(), "forbidden"),
        ("http://192.0.0.192/".to_owned(), "forbidden"),
        ("http://[fd00:ec2::254]/".to_owned(), "forbidden"),
        ("http://evil.example/".to_owned(), "invalid_input"),
        ("ftp://api.example.com/".to_owned(), "invalid_input"),
        ("http://api.example.com.evil.example/".to_owned(), "invalid_input"),
    ] {
        let e = request(&action, json!({"url": url})).await.err();
        let e = e.unwrap_or_else(|| panic!("{url} must be refused"));
        assert_eq!(e.code, code, "{url}: {}", e.message);
    }
    assert!(server.seen().is_empty(), "no request was made");
    assert!(action.allow.allows("shop.partner.example", 443));
    assert!(!action.allow.allows("partner.example.org", 443));
}

#[tokio::test]
async fn an_allowed_name_that_resolves_to_a_metadata_address_is_forbidden_not_unavailable() {
    let server = TestServer::start(|_| Reply::json(200, json!({"ok": true}))).await;
    let port = server.url.rsplit(':').next().unwrap_or_default().trim_end_matches('/').to_owned();
    let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
    let hosts = std::collections::HashMap::from([
        ("metadata.partner.example".to_owned(), vec![ip("169.254.169.254")]),
        ("nat64.partner.example".to_owned(), vec![ip("64:ff9b::a9fe:a9fe"), ip("::a9fe:a9fe")]),
        ("azure.partner.example".to_owned(), vec![ip("168.63.129.16")]),
        ("fine.partner.example".to_owned(), vec![ip("127.0.0.1")]),
    ]);
    let mut action = http_request(&["*.partner.example"]);
    action.client = Some(Client::with_hosts(hosts).unwrap_or_else(|e| panic!("{e}")));
    for name in ["metadata", "nat64", "azure"] {
        let url = format!("http://{name}.partner.example:{port}/");
        let e = request(&action, json!({"url": url})).await.err();
        let e = e.unwrap_or_else(|| panic!("{url} must be refused"));
        assert_eq!(e.code, "forbidden", "{url}: {}", e.message);
        assert!(!e.is_retryable(), "forbidden is not retried");
    }
    assert!(server.seen().is_empty(), "no request was made");
    let url = format!("http://fine.partner.example:{port}/");
    let answer = request(&action, json!({"url": url})).await.unwrap_or_else(|e| panic!("{}", e.message));
    assert_eq!(answer["status"], 200);
}

#[test]
fn forbidden_addresses() {
    use super::client::forbidden;
    for ip in [
        "169.254.169.254",
        "169.254.0.1",
        "0.0.0.0",
        "255.255.255.255",
        "fe80::1",
        "fd00:ec2::254",
        "::ffff:169.254.169.254",
        "::",
        "100.100.100.200",
        "168.63.129.16",
        "192.0.0.192",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::a9fe:a9fe",
        "64:ff9b:1:a9fe:a9:fe00::",
        "64:ff9b:1:a9:fe:a9fe::",
        "::a9fe:a9fe",
        "2002:a9fe:a9fe::",
        "2002:a9fe:a9fe:1::5",
        "2001:0:a9fe:a9fe::1",
        "2001:0:4136:e378:8000:63bf:5601:5601",
        "64:ff9b::6464:64c8",
        "::ffff:168.63.129.16",
    ] {
        assert!(forbidden(ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"))), "{ip}");
    }
    for ip in
        ["127.0.0.1", "10.0.0.1", "93.184.216.34", "::1", "2001:db8::1", "64:ff9b::5db8:d822", "2002:5db8:d822::1"]
    {
        assert!(!forbidden(ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"))), "{ip}");
    }
}

#[test]
fn a_secret_never_shows_in_debug() {
    let s = Secret::hidden("planted-secret".into());
    assert_eq!(format!("{s:?}"), "\"***\"");
}

/// An SMTP server on loopback (aiosmtpd, which `.ci/run` installs) writing to a maildir.
struct SmtpServer {
    port: u16,
    maildir: tempfile::TempDir,
    _process: tokio::process::Child,
}

async fn smtp_server() -> SmtpServer {
    let port = free_port();
    let maildir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let process = tokio::process::Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.path().join("box"))
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("python3 with aiosmtpd is needed (bash .ci/run installs it): {e}"));
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return SmtpServer { port, maildir, _process: process };
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("aiosmtpd did not start on port {port} (is it installed? `python3 -m pip install aiosmtpd`)");
}

impl SmtpServer {
    fn messages(&self) -> Vec<String> {
        let dir = self.maildir.path().join("box").join("new");
        let files = std::fs::read_dir(dir).map(|d| d.filter_map(Result::ok).collect::<Vec<_>>()).unwrap_or_default();
        files.iter().filter_map(|f| std::fs::read_to_string(f.path()).ok()).collect()
    }
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server_with_the_key_as_message_id() {
    use crate::services::notifications::{Email, EmailRequest, Emailer};
    let server = smtp_server().await;
    let settings = super::smtp::SmtpSettings {
        host: "127.0.0.1".into(),
        port: server.port,
        tls: "none".into(),
        from: "Shop <shop@example.com>".into(),
        username: None,
        password: None,
        timeout: Duration::from_secs(10),
    };
    let mailer = super::smtp::SmtpMailer::new(&settings).unwrap_or_else(|e| panic!("{e}"));
    let email = Emailer(std::sync::Arc::new(mailer));
    let request = EmailRequest { to: "ada@example.com".into(), subject: "Hello Ada".into(), body: "It works.".into() };
    let sent = email.send(Ctx::detached("run-7:welcome"), request).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(sent.message_id, "<run-7.welcome@sagaflow>");
    let mut messages = Vec::new();
    for _ in 0..50 {
        messages = server.messages();
        if !messages.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    for expected in
        ["Subject: Hello Ada", "Message-ID: <run-7.welcome@sagaflow>", "X-RcptTo: ada@example.com", "It works."]
    {
        assert!(m.contains(expected), "{expected} in:\n{m}");
    }
}

#[tokio::test]
async fn an_smtp_server_that_is_not_there_is_unavailable() {
    use crate::services::notifications::{Mail, Mailer};
    let port = free_port();
    let settings = super::smtp::SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        tls: "none".into(),
        from: "shop@example.com".into(),
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
    };
    let mailer = super::smtp::SmtpMailer::new(&settings).unwrap_or_else(|e| panic!("{e}"));
    let mail = Mail {
        message_id: "<x@sagaflow>".into(),
        to: "a@example.com".into(),
        subject: "s".into(),
        body: "b".into(),
        template: None,
    };
    let e = mailer.deliver(Ctx::detached("x"), mail).await.err();
    assert_eq!(e.map(|e| e.code), Some("unavailable".into()));
}
