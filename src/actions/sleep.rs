//! `sleep`: wait for a duration (`for`) or until a time (`until`, RFC 3339).
//!
//! As a step, the engine runs it as a durable timer from the attempt's journaled
//! start ([`wake_at`]), so a restart resumes the wait and a sleeping run holds no
//! task. The [`Action`] here serves the rare `compensate: { action: sleep }`.

use serde_json::{json, Value as Json};

use super::{Action, ActionError, ActionFuture, Call};
use crate::dsl::duration::Duration;

/// When a sleep that started at `started_at` (ms since the epoch) ends.
pub(crate) fn wake_at(input: &Json, started_at: u64) -> Result<u64, ActionError> {
    // Written out, `for` was checked by `validate`; from data (a template that
    // gave `48h` or a number of milliseconds) it is checked here (DSL.md B3).
    if let Some(d) = input.get("for").filter(|d| !d.is_null()) {
        let d = Duration::from_value(d).map_err(|why| ActionError::new("template", format!("sleep `for` {why}")))?;
        return Ok(started_at.saturating_add(d.millis()));
    }
    if let Some(t) = input.get("until").and_then(Json::as_str) {
        let at = chrono::DateTime::parse_from_rfc3339(t).map_err(|e| {
            ActionError::new(
                "invalid_input",
                format!("`until: {t}` is not an RFC 3339 time like 2026-12-01T09:00:00Z ({e})"),
            )
        })?;
        return Ok(u64::try_from(at.timestamp_millis()).unwrap_or(0));
    }
    Err(ActionError::new("invalid_input", "sleep needs `for` (a duration) or `until` (a time)"))
}

/// The output of a sleep that ended at `at`.
pub(crate) fn woke(at: u64) -> Json {
    let time = chrono::DateTime::from_timestamp_millis(at as i64).unwrap_or_default();
    json!({ "woke_at": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true) })
}

pub(crate) struct Sleep;

impl Action for Sleep {
    fn call(&self, call: Call) -> ActionFuture {
        Box::pin(async move {
            let now = crate::base::clock::now_ms();
            let due = wake_at(&call.input, now)?;
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(due.saturating_sub(now))) => Ok(woke(due.max(now))),
                _ = call.ctx.cancel.cancelled() => Err(ActionError::new("cancelled", "the sleep was cancelled")),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_for_and_until() {
        assert_eq!(wake_at(&json!({"for": "2s"}), 1000), Ok(3000));
        assert_eq!(wake_at(&json!({"until": "1970-01-01T00:00:05Z"}), 0), Ok(5000));
        assert_eq!(wake_at(&json!({"until": "tomorrow"}), 0).map_err(|e| e.code), Err("invalid_input".into()));
        assert_eq!(woke(5000), json!({"woke_at": "1970-01-01T00:00:05.000Z"}));
    }
}
