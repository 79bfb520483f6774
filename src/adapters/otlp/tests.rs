//! The exporter against a loopback collector.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::*;
use crate::adapters::test_server::{Reply, TestServer};

fn span(n: u8, parent: Option<[u8; 8]>, error: Option<&str>) -> SpanData {
    SpanData {
        trace_id: [7; 16],
        span_id: [n; 8],
        parent,
        name: format!("span {n}"),
        start_ms: 1_000,
        end_ms: 1_250,
        attributes: vec![("sagaflow.run_id", Attr::Str("r1".into())), ("sagaflow.attempt", Attr::Int(2))],
        error: error.map(str::to_owned),
    }
}

fn decoded(body: &[u8]) -> proto::ExportTraceServiceRequest {
    proto::ExportTraceServiceRequest::decode(body).expect("an OTLP request")
}

#[tokio::test]
async fn spans_reach_the_collector_as_otlp_protobuf_with_their_tree_times_and_status() {
    let collector = TestServer::start(|_| Reply::raw(200, b"")).await;
    let exporter = Exporter::start(&collector.url.clone(), "shop", Arc::default()).expect("exporter");
    exporter.send(vec![span(1, None, None), span(2, Some([1; 8]), Some("payment_declined: card refused"))]);
    exporter.flush(Duration::from_secs(10)).await;
    let seen = collector.seen();
    assert_eq!(seen.len(), 1, "one request for both");
    assert_eq!(seen[0].path, "/v1/traces");
    assert_eq!(seen[0].header("content-type"), Some("application/x-protobuf"));
    let request = decoded(&seen[0].body);
    let resource = request.resource_spans[0].resource.clone().expect("resource");
    assert_eq!(resource.attributes[0].key, "service.name");
    let spans = &request.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].parent_span_id, Vec::<u8>::new(), "a root span has no parent");
    assert_eq!(spans[1].parent_span_id, vec![1; 8]);
    assert_eq!((spans[1].start_time_unix_nano, spans[1].end_time_unix_nano), (1_000_000_000, 1_250_000_000));
    assert_eq!(spans[0].status, None);
    let status = spans[1].status.clone().expect("an error status");
    assert_eq!((status.code, status.message.as_str()), (proto::STATUS_CODE_ERROR, "payment_declined: card refused"));
    assert_eq!(exporter.dropped(), 0);
}

#[tokio::test]
async fn a_collector_that_fails_twice_gets_the_spans_the_third_time_and_one_that_refuses_them_drops_them() {
    let calls = Arc::new(AtomicU32::new(0));
    let counted = calls.clone();
    let flaky = TestServer::start(move |_| match counted.fetch_add(1, Ordering::SeqCst) {
        0 | 1 => Reply::raw(503, b"busy"),
        _ => Reply::raw(200, b""),
    })
    .await;
    let exporter = Exporter::start(&format!("{}/v1/traces", flaky.url), "shop", Arc::default()).expect("exporter");
    exporter.send(vec![span(1, None, None)]);
    exporter.flush(Duration::from_secs(10)).await;
    assert_eq!(flaky.seen().len(), 3);
    assert_eq!(exporter.dropped(), 0);
    let refusing = TestServer::start(|_| Reply::raw(400, b"bad")).await;
    let exporter = Exporter::start(&refusing.url.clone(), "shop", Arc::default()).expect("exporter");
    exporter.send(vec![span(1, None, None), span(2, None, None)]);
    exporter.flush(Duration::from_secs(10)).await;
    assert_eq!(refusing.seen().len(), 1, "a 400 is not tried again");
    assert_eq!(exporter.dropped(), 2);
}

#[test]
fn an_endpoint_is_a_base_url_or_the_traces_url() {
    assert_eq!(traces_url("http://127.0.0.1:4318").as_deref(), Ok("http://127.0.0.1:4318/v1/traces"));
    assert_eq!(traces_url("https://c.example/v1/traces/").as_deref(), Ok("https://c.example/v1/traces"));
    assert!(traces_url("grpc://c:4317").is_err());
    assert!(traces_url("not a url").is_err());
}
