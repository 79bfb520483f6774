//! Adapters to the outside world: the HTTP client (shared by the `http`
//! service backends and `http.request`), the `http.request` action, SMTP mail, webhooks,
//! and spans over OTLP.

pub(crate) mod answer;
pub(crate) mod client;
pub(crate) mod http_request;
pub(crate) mod otlp;
pub(crate) mod otlp_proto;
pub(crate) mod service_http;
pub(crate) mod smtp;
pub(crate) mod webhook;

#[cfg(test)]
pub(crate) mod test_server;
#[cfg(test)]
mod tests;
