//! The config: errors with file, line and key; backends as chosen; secrets by
//! reference that never reach a log line, a run record or the store.

use std::path::Path;

use super::{Backends, Config};

fn error_of(text: &str) -> String {
    match Config::parse(Path::new("sagaflow.toml"), text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.0,
    }
}

#[test]
fn a_wrong_config_says_file_line_and_key() {
    assert_eq!(
        error_of("[http]\nallow = [\"a\"]\nalow = 1\n"),
        "sagaflow.toml:3:1: unknown field `alow`, expected one of `allow`, `timeout`, `max_response_bytes`"
    );
    assert_eq!(
        error_of("[services.inventroy]\nbackend = \"http\"\n"),
        "sagaflow.toml:1:11: there is no service `inventroy`; did you mean `inventory`?"
    );
    assert_eq!(
        error_of("[services.payments]\nbackend = \"http\"\n"),
        "sagaflow.toml:2:11: services.payments: the http backend needs `base_url`"
    );
    assert_eq!(
        error_of("[services.orders]\nbackend = \"grpc\"\n"),
        "sagaflow.toml:2:11: services.orders.backend is `grpc`; it must be `sandbox` or `http`"
    );
    assert_eq!(
        error_of("[smtp]\nhost = \"h\"\nfrom = \"a@b.c\"\npassword = \"hunter2\"\n"),
        "sagaflow.toml:4:1: unknown field `password`, expected one of `host`, `port`, `tls`, `from`, `username`, `password_secret`, `timeout`"
    );
    assert!(error_of("[http\n").starts_with("sagaflow.toml:1:"));
}

#[test]
fn errors_found_when_building_say_where_too() {
    let config = Config::parse(
        Path::new("c.toml"),
        "[services.users]\nbackend = \"http\"\nbase_url = \"http://x\"\nbearer_secret = \"NOT_SET_ANYWHERE_42\"\n",
    );
    let config = config.unwrap_or_else(|e| panic!("{e}"));
    let e = Backends::build(&config, None).err().map(|e| e.0);
    assert_eq!(
        e.as_deref(),
        Some("c.toml:4:17: services.users.bearer_secret names the secret `NOT_SET_ANYWHERE_42`, but SAGAFLOW_SECRET_NOT_SET_ANYWHERE_42 is not set")
    );
    let config = Config::parse(Path::new("c.toml"), "[http]\ntimeout = \"soon\"\n").unwrap_or_else(|e| panic!("{e}"));
    let e = Backends::build(&config, None).err().map(|e| e.0).unwrap_or_default();
    assert!(e.starts_with("c.toml:2:11: http.timeout `soon`: a duration is"), "{e}");
}

#[test]
fn retention_is_a_duration_of_a_second_or_more_said_where() {
    let parse = |text: &str| Config::parse(Path::new("r.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parse("").retention(), Ok(None));
    let days = parse("[retention]\nfinished = \"30d\"\n").retention();
    assert_eq!(days, Ok(Some(std::time::Duration::from_secs(30 * 86_400))));
    let e = parse("[retention]\nfinished = \"a month\"\n").retention().err().map(|e| e.0).unwrap_or_default();
    assert!(e.starts_with("r.toml:2:12: retention.finished `a month`: a duration is"), "{e}");
    let e = parse("[retention]\nfinished = \"10ms\"\n").retention().err().map(|e| e.0).unwrap_or_default();
    assert_eq!(e, "r.toml:2:12: retention.finished `10ms`: keep finished runs at least 1s");
    assert!(error_of("[retention]\nfinshed = \"1d\"\n").contains("unknown field `finshed`, expected `finished`"));
}

#[test]
fn telemetry_names_an_http_collector_said_where_when_wrong() {
    let parse = |text: &str| Config::parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parse("").telemetry(), Ok(None));
    let on = parse("[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n").telemetry().ok().flatten();
    assert_eq!(on.map(|t| (t.endpoint, t.service_name)), Some(("http://127.0.0.1:4318".into(), "sagaflow".into())));
    let e =
        parse("[telemetry]\notlp_endpoint = \"grpc://c:4317\"\n").telemetry().err().map(|e| e.0).unwrap_or_default();
    assert_eq!(e, "t.toml:2:17: telemetry.otlp_endpoint: `grpc://c:4317`: an OTLP endpoint is http:// or https://");
}
