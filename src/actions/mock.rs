//! `mock`: returns a given output, or fails, after an optional delay.

use serde_json::Value as Json;

use super::{Action, ActionError, ActionFuture, Call};
use crate::dsl::duration::Duration;

pub(super) struct Mock;

impl Action for Mock {
    fn call(&self, call: Call) -> ActionFuture {
        Box::pin(async move {
            let input = &call.input;
            let delay = input.get("delay").and_then(Json::as_str).and_then(|d| d.parse::<Duration>().ok());
            if let Some(delay) = delay.filter(|d| d.millis() > 0) {
                tokio::select! {
                    _ = tokio::time::sleep(delay.std()) => {}
                    _ = call.ctx.cancel.cancelled() => return Err(ActionError::new("cancelled", "the attempt was cancelled")),
                }
            }
            let fail_all = input.get("fail").and_then(Json::as_bool).unwrap_or(false);
            let fail_first = input.get("fail_attempts").and_then(Json::as_u64).unwrap_or(0);
            if fail_all || u64::from(call.ctx.attempt) <= fail_first {
                let code = input.get("error").and_then(Json::as_str).unwrap_or("unavailable");
                return Err(ActionError::new(code, format!("mock failure on attempt {}", call.ctx.attempt)));
            }
            Ok(input.get("output").cloned().unwrap_or(Json::Null))
        })
    }
}
