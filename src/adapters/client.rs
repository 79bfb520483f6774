//! One HTTP client for the process: no redirects followed, connections that
//! never reach a link-local or cloud-metadata address, bounded bodies, and
//! secrets kept out of logs.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::services::ActionError;

/// A value that may be a secret: its `Debug` never shows it, and as a header it
/// is marked sensitive (hidden from reqwest's own logs).
#[derive(Clone)]
pub(crate) struct Secret {
    value: String,
    sensitive: bool,
}

impl Secret {
    pub(crate) fn hidden(value: String) -> Secret {
        Secret { value, sensitive: true }
    }

    pub(crate) fn plain(value: String) -> Secret {
        Secret { value, sensitive: false }
    }

    pub(crate) fn expose(&self) -> &str {
        &self.value
    }

    pub(crate) fn header_value(&self) -> Result<reqwest::header::HeaderValue, ActionError> {
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

/// Cloud metadata and host services outside the link-local range: Alibaba
/// (100.100.100.200), Azure's wire server (168.63.129.16) and Oracle's
/// (192.0.0.192).
const METADATA_V4: [Ipv4Addr; 3] =
    [Ipv4Addr::new(100, 100, 100, 200), Ipv4Addr::new(168, 63, 129, 16), Ipv4Addr::new(192, 0, 0, 192)];

/// fd00:ec2::254, the AWS metadata service over IPv6.
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x254);

/// Addresses no request may reach: link-local (where cloud metadata services
/// live), the known metadata addresses, unspecified and broadcast; and any
/// IPv6 address that carries one of those IPv4 addresses inside it (mapped,
/// compatible, NAT64, 6to4, Teredo), by the IPv4 address's own rules.
pub(crate) fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => {
            let segments = v6.segments();
            v6.is_unspecified()
                || (segments[0] & 0xffc0) == 0xfe80
                || v6 == METADATA_V6
                || embedded_v4(v6).into_iter().any(forbidden_v4)
        }
    }
}

fn forbidden_v4(v4: Ipv4Addr) -> bool {
    v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast() || METADATA_V4.contains(&v4)
}

/// The IPv4 addresses an IPv6 address carries, by the standard embeddings.
fn embedded_v4(v6: Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let pair = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let mut found = Vec::new();
    // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated but routed by some stacks).
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        found.push(pair(s[6], s[7]));
    }
    // NAT64: 64:ff9b::/96 (well-known), the address in the last 32 bits; and
    // 64:ff9b:1::/48 (local use), whose prefix may be /48, /56, /64 or /96
    // (RFC 6052: the address skips bits 64-71), so every layout is read.
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        found.push(pair(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1 {
        let b = v6.octets();
        let v4 = |o: [u8; 4]| Ipv4Addr::from(o);
        found.push(v4([b[6], b[7], b[9], b[10]]));
        found.push(v4([b[7], b[9], b[10], b[11]]));
        found.push(v4([b[9], b[10], b[11], b[12]]));
        found.push(v4([b[12], b[13], b[14], b[15]]));
    }
    // 6to4: 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        found.push(pair(s[1], s[2]));
    }
    // Teredo: 2001:0::/32, the server in bits 32-63, the client inverted in the last 32.
    if s[0] == 0x2001 && s[1] == 0 {
        found.push(pair(s[2], s[3]));
        found.push(pair(!s[6], !s[7]));
    }
    found
}

/// The refusal the resolver gives for a name that resolves only to forbidden
/// addresses; found again in the transport error's causes to give the step
/// the code `forbidden`.
#[derive(Debug)]
pub(crate) struct ForbiddenAddress(pub String);

impl std::fmt::Display for ForbiddenAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} resolves only to addresses sagaflow may not reach (link-local or cloud metadata)", self.0)
    }
}

impl std::error::Error for ForbiddenAddress {}

/// Resolves names with the system, then drops forbidden addresses, so a name
/// that points at a metadata address (or is re-pointed there) is never reached.
#[derive(Default)]
struct GuardedResolver {
    /// Names answered without asking the system (tests), still guarded.
    hosts: Arc<std::collections::HashMap<String, Vec<IpAddr>>>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let hosts = self.hosts.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = match hosts.get(&host) {
                Some(ips) => ips.iter().map(|&ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((host.as_str(), 0)).await?.collect(),
            };
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|a| !forbidden(a.ip())).collect();
            if allowed.is_empty() {
                return Err(Box::new(ForbiddenAddress(host)) as _);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The process's HTTP client (cheap to clone).
#[derive(Clone)]
pub(crate) struct Client(reqwest::Client);

impl Client {
    pub(crate) fn new() -> Result<Client, String> {
        Client::with_resolver(GuardedResolver::default())
    }

    /// A client that answers these names itself instead of asking the system
    /// (through the same guard), for tests of names that point somewhere.
    #[cfg(test)]
    pub(crate) fn with_hosts(hosts: std::collections::HashMap<String, Vec<IpAddr>>) -> Result<Client, String> {
        Client::with_resolver(GuardedResolver { hosts: Arc::new(hosts) })
    }

    fn with_resolver(resolver: GuardedResolver) -> Result<Client, String> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .dns_resolver(Arc::new(resolver))
            .user_agent(concat!("sagaflow/", env!("CARGO_PKG_VERSION")))
            .build()
            .map(Client)
            .map_err(|e| format!("cannot set up the HTTP client: {e}"))
    }

    pub(crate) fn inner(&self) -> &reqwest::Client {
        &self.0
    }
}

/// A body too large, or cut off.
pub(crate) struct BodyError(String, &'static str);

impl BodyError {
    pub(crate) fn at(self, url: &str) -> ActionError {
        ActionError::new(self.1, format!("{url}: {}", self.0))
    }
}

/// Reads a response body of at most `max` bytes.
pub(crate) async fn read_bounded(mut response: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
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
