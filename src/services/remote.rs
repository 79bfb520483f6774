//! A service whose operations are carried elsewhere: each call one JSON
//! request to a named operation and one JSON answer. The transport (the http
//! adapter's `HttpService`) is chosen by the composition root; services only
//! know this trait.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value as Json;

use super::{ActionError, Ctx, ServiceFuture};

/// Carries one operation's request to a service and brings its answer back.
pub(crate) trait Transport: Send + Sync {
    /// Sends `request` to `operation` of the service; the answer is JSON that
    /// the caller reads against the operation's contract.
    fn send(&self, operation: &'static str, ctx: Ctx, request: Json) -> ServiceFuture<Json>;
}

/// A service behind a [`Transport`]; `service!` makes it implement the
/// service's trait.
#[derive(Clone)]
pub(crate) struct Remote(pub Arc<dyn Transport>);

impl Remote {
    /// Calls `operation` and reads its answer as `Resp`.
    pub(crate) fn call<Req, Resp>(&self, operation: &'static str, ctx: Ctx, request: Req) -> ServiceFuture<Resp>
    where
        Req: Serialize + Send + 'static,
        Resp: DeserializeOwned + Send + 'static,
    {
        let request = match serde_json::to_value(&request) {
            Ok(request) => request,
            Err(e) => {
                let e = ActionError::new("invalid_input", format!("the request cannot be written: {e}"));
                return super::ready(Err(e));
            }
        };
        let answer = self.0.send(operation, ctx, request);
        Box::pin(async move {
            serde_json::from_value(answer.await?).map_err(|e| {
                ActionError::new("failed", format!("the answer to `{operation}` does not fit the contract: {e}"))
            })
        })
    }
}

/// No backend at all: the services of the registry validation reads, whose
/// contracts are all it needs. A call fails with `unavailable`.
pub(crate) struct Unbound(pub &'static str);

impl Transport for Unbound {
    fn send(&self, _: &'static str, _: Ctx, _: Json) -> ServiceFuture<Json> {
        let message = format!("the {} service has no backend in this registry (it is for validation)", self.0);
        super::ready(Err(ActionError::new("unavailable", message)))
    }
}
