//! Webhooks: configured HTTP subscribers to events. The relay POSTs each event
//! to each webhook that takes its type, at least once: the event id is sent as
//! `Idempotency-Key`, so a receiver can tell a repeat from a new event.

use std::time::Duration;

use super::answer::exchange;
use super::client::{Client, Secret};
use crate::base::error::ActionError;
use crate::store::{EventRecord, Subscriber};

/// A receiver's answer is read (and dropped) up to this size.
const MAX_ANSWER: usize = 64 * 1024;

/// One configured webhook.
pub(crate) struct Webhook {
    pub name: String,
    pub url: String,
    /// Event types it takes: `order.placed`, `order.*`, or `*` for all.
    pub events: Vec<String>,
    /// Extra headers, secrets among them (never logged).
    pub headers: Vec<(String, Secret)>,
    pub timeout: Duration,
    /// Attempts before the delivery becomes a dead letter.
    pub max_attempts: u32,
    pub client: Client,
}

/// Why a delivery did not happen, and whether trying again may help.
#[derive(Debug)]
pub(crate) struct Refused {
    pub error: ActionError,
    pub retry: bool,
}

/// Whether another delivery may go through: what is retryable for any action,
/// and an answer too large (a receiver's error page, which may pass).
fn worth_again(error: &ActionError) -> bool {
    error.is_retryable() || error.code == "too_large"
}

/// Whether `pattern` (`a.b`, `a.*`, `*`) takes the event type `kind`.
pub(crate) fn matches(pattern: &str, kind: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => kind.starts_with(prefix),
        None => pattern == kind,
    }
}

impl Webhook {
    /// This webhook as a subscriber.
    pub(crate) fn subscriber(&self) -> Subscriber {
        Subscriber::Webhook(self.name.clone())
    }

    pub(crate) fn takes(&self, kind: &str) -> bool {
        self.events.iter().any(|p| matches(p, kind))
    }

    /// POSTs the event; a 2xx answer is delivery.
    pub(crate) async fn deliver(&self, event: &EventRecord) -> Result<(), Refused> {
        let refused = |error: ActionError| {
            let retry = worth_again(&error);
            Refused { error, retry }
        };
        // The trace travels in its header, not in the event.
        let body = serde_json::to_vec(&EventRecord { traceparent: None, ..event.clone() })
            .map_err(|e| Refused { error: ActionError::new("invalid_input", e.to_string()), retry: false })?;
        let mut request = self
            .client
            .inner()
            .post(&self.url)
            .timeout(self.timeout)
            .header("content-type", "application/json")
            .header("idempotency-key", &event.id)
            .header("x-sagaflow-event-id", &event.id)
            .header("x-sagaflow-event-type", &event.kind)
            .body(body);
        if let Some(traceparent) = &event.traceparent {
            request = request.header("traceparent", traceparent);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.header_value().map_err(refused)?);
        }
        // A 2xx is delivery, whatever its body (read only to free the connection).
        exchange(request, &self.url, MAX_ANSWER).await.map(drop).map_err(refused)
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn patterns_take_exact_types_prefixes_and_everything() {
        assert!(matches("order.placed", "order.placed"));
        assert!(!matches("order.placed", "order.placed.again"));
        assert!(matches("order.*", "order.placed"));
        assert!(!matches("order.*", "orders.placed"));
        assert!(matches("*", "anything"));
    }
}
