//! Adapters to the outside world: the HTTP client (shared by the `http`
//! service backends and `http.request`), the `http.request` action, SMTP mail, and webhooks.

pub mod answer;
pub mod client;
pub mod http_request;
pub mod service_http;
pub mod smtp;
pub mod webhook;

#[cfg(test)]
#[cfg(test)]
pub mod test_server;
#[cfg(test)]
mod tests;
