//! One HTTP client for the process: no redirects followed, connections that
//! never reach a link-local or cloud-metadata address, bounded bodies, and
//! secrets kept out of logs.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::services::ActionError;

/// A value that may be a secret: its `Debug` never shows it, and as a header it
/// is marked sensitive (hidden from reqwest's own logs).
#[derive(Clone)]
pub struct Secret {
    value: String,
    sensitive: bool,
}

impl Secret {
    pub fn hidden(value: String) -> Secret {
        Secret { value, sensitive: true }
    }

    pub fn plain(value: String) -> Secret {
        Secret { value, sensitive: false }
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    pub fn header_value(&self) -> Result<reqwest::header::HeaderValue, ActionError> {
        let mut v = reqwest::header::HeaderValue::from_str(&self.value)
            .map_err(|_| ActionError::new("invalid_input", "a header value holds characters a header cannot carry"))?;
        v.set_sensitive(self.sensitive);
        Ok(v)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.sensitive {
            f.write_str("\"***\"")
        } else {
            write!(f, "{:?}", self.value)
        }
    }
}

/// Addresses no request may reach: link-local (where cloud metadata services
/// live), unspecified and broadcast.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let segments = v6.segments();
            v6.is_unspecified()
                || (segments[0] & 0xffc0) == 0xfe80
                // fd00:ec2::254, the AWS metadata service over IPv6.
                || segments == [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254]
        }
    }
}

/// Resolves names with the system, then drops forbidden addresses, so a name
/// that points at a metadata address (or is re-pointed there) is never reached.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> = found.filter(|a| !forbidden(a.ip())).collect();
            if allowed.is_empty() {
                let message = format!("{host} resolves only to addresses sagaflow may not reach");
                return Err(Box::new(std::io::Error::new(std::io::ErrorKind::PermissionDenied, message)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The process's HTTP client (cheap to clone).
#[derive(Clone)]
pub struct Client(reqwest::Client);

impl Client {
    pub fn new() -> Result<Client, String> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .dns_resolver(Arc::new(GuardedResolver))
            .user_agent(concat!("sagaflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(Client)
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))
    }

    pub fn inner(&self) -> &reqwest::Client {
        &self.0
    }
}

/// A body too large, or cut off.
pub struct BodyError(String, &'static str);

impl BodyError {
    pub fn at(self, url: &str) -> ActionError {
        ActionError::new(self.1, format!("{url}: {}", self.0))
    }
}

/// Reads a response body of at most `max` bytes.
pub async fn read_bounded(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError(format!("the answer is larger than {max} bytes"), "too_large"));
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > max {
                    return Err(BodyError(format!("the answer is larger than {max} bytes"), "too_large"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => return Err(BodyError("the answer did not arrive in time".into(), "timeout")),
            Err(e) => return Err(BodyError(format!("the answer was cut off: {e}"), "unavailable")),
        }
    }
}
