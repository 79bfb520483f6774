//! Adapters to the outside world: the HTTP client (shared by the `http`
//! service backends and `http.request`), the `http.request` action, and SMTP mail.

pub mod client;
pub mod http_request;
pub mod smtp;
