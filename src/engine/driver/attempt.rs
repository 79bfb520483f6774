//! Attempt dispatch: one attempt started as the run says, under its timeout,
//! its cancellation token and the bound on attempts at once; its output checked.

use super::events::Reads;
use super::*;

impl Driver {
    /// The `traceparent` an attempt sends, when traces are exported.
    fn traceparent(&self, state: &RunState, key: &AttemptKey) -> Option<String> {
        let parent = self.propagate_traces.then(|| crate::engine::spans::attempt_parent(state, key));
        parent.flatten().map(|t| t.header())
    }

    /// Starts one attempt the way the run says ([`RunState::start`]): an
    /// immediate end, a durable timer, an event wait, an emit into the next
    /// commit, or a call of an action.
    /// A worker fenced off from a shared store launches nothing: its runs may be another's.
    pub(super) fn launch(&mut self, run_id: &str, key: AttemptKey) {
        if self.store.is_fenced() {
            return;
        }
        let Some(active) = self.runs.get_mut(run_id) else { return };
        let start = active.state.start(key);
        let token = CancellationToken::new();
        active.launched.insert(key, token.clone());
        let run = run_id.to_owned();
        let clock = self.clock.clone();
        let finished = move |outcome: Outcome| key.finished(outcome, clock.now_ms());
        let call = match start {
            Start::Fail(error) => return self.ready.push((run, finished(Outcome::Err(error)))),
            // A durable timer, armed from the machine's timers.
            Start::Sleep => return,
            Start::Wait { kind, key: event, since } => {
                if let Some(outcome) = self.begin_wait(run_id, key, kind, event, since, Reads::Event) {
                    self.ready.push((run, finished(outcome)));
                }
                return;
            }
            Start::Emit { id, kind, key: event, data } => {
                let traceparent = self.runs.get(run_id).and_then(|a| self.traceparent(&a.state, &key));
                let outcome = self.emit(id, kind, event, data, traceparent);
                return self.ready.push((run, finished(outcome)));
            }
            Start::Child(child) => {
                if let Some(outcome) = self.begin_child(run_id, key, *child) {
                    self.ready.push((run, finished(outcome)));
                }
                return;
            }
            Start::UndoChild { run_id: child } => {
                if let Some(outcome) = self.begin_undo(run_id, key, child) {
                    self.ready.push((run, finished(outcome)));
                }
                return;
            }
            Start::Call(call) => call,
        };
        let Some(active) = self.runs.get(run_id) else { return };
        let state = &active.state;
        let def = &state.wf.steps[key.step];
        let (compensation, item, attempt) = (key.compensation, key.item, key.attempt);
        let wanted::Call { action: action_name, input, idempotency_key, timeout_ms, lost } = *call;
        // `--fail STEP=lost`: whatever the action answers, the caller never hears it.
        let finished = move |outcome: Outcome| finished(lost.clone().map_or(outcome, Outcome::Err));
        let Some(registered) = self.registry.shared(&action_name) else {
            let e = ActionError::new("failed", format!("the action `{action_name}` is not registered"));
            self.ready.push((run, finished(Outcome::Err(e))));
            return;
        };
        let traceparent = self.traceparent(state, &key);
        let ctx = Ctx {
            run_id: run.clone(),
            step: def.id.clone(),
            attempt,
            idempotency_key,
            cancel: token.clone(),
            traceparent,
        };
        let call = Call { input, ctx };
        let span = info_span!(
            "attempt",
            run_id = %run,
            workflow = %state.wf.name,
            step = %def.id,
            item,
            attempt,
            action = %action_name,
            compensation
        );
        span.in_scope(|| info!("attempt started"));
        let began = std::time::Instant::now();
        // With a permit free, poll the action once here: one that is done at once
        // (mock, a local sandbox service) needs no task and no channel hop.
        let permit = self.permits.clone().try_acquire_owned().ok();
        // The action's timers and sockets belong to the runtime its task runs on.
        let _runtime = self.runtime.enter();
        let mut future = registered.action.call(call);
        if permit.is_some() {
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            if let std::task::Poll::Ready(result) = span.in_scope(|| future.as_mut().poll(&mut cx)) {
                let outcome = checked(&registered, result);
                span.in_scope(|| log_finished(&outcome, began));
                self.ready.push((run, finished(outcome)));
                return;
            }
        }
        let Some(tx) = self.tx.upgrade() else { return };
        let permits = self.permits.clone();
        let metrics = self.metrics.clone();
        metrics.in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.runtime.spawn(
            async move {
                let permit = match permit {
                    Some(p) => Ok(p),
                    None => {
                        metrics.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let p = permits.acquire_owned().await;
                        metrics.queued.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        p
                    }
                };
                let outcome = match permit {
                    Ok(_permit) => attempt_outcome(&registered, future, token, timeout_ms).await,
                    Err(_) => Outcome::Err(ActionError::new("unavailable", "the engine is shutting down")),
                };
                log_finished(&outcome, began);
                let _ = tx.send(Msg::Outcome { run_id: run, entry: finished(outcome) });
                metrics.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            .instrument(span),
        );
    }
}

/// Runs one attempt under its timeout and cancellation, and checks its output.
pub(super) async fn attempt_outcome(
    registered: &crate::actions::Registered,
    future: crate::actions::ActionFuture,
    token: CancellationToken,
    timeout_ms: Option<u64>,
) -> Outcome {
    let timeout = async {
        match timeout_ms {
            Some(ms) => tokio::time::sleep(StdDuration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = future => result,
        _ = token.cancelled() => Err(ActionError::new("cancelled", "the attempt was cancelled: the run is rolling back")),
        _ = timeout => {
            token.cancel();
            let limit = crate::dsl::duration::Duration(timeout_ms.unwrap_or(0));
            Err(ActionError::new("timeout", format!("the attempt took longer than its timeout of {limit}")))
        }
    };
    checked(registered, result)
}

/// A step's output may be at most about this large (it is journaled and kept).
pub(crate) const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Whether a value written as JSON takes more than `limit` bytes: it is
/// written into a counter that stops at the limit (nothing is kept).
pub(crate) fn longer_than(v: &Json, limit: usize) -> bool {
    struct Counter {
        written: usize,
        limit: usize,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.written += bytes.len();
            match self.written > self.limit {
                true => Err(std::io::Error::other("past the limit")),
                false => Ok(bytes.len()),
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Counter { written: 0, limit }, v).is_err()
}

/// An action's result, with its output held to the action's output schema.
pub(super) fn checked(registered: &crate::actions::Registered, result: Result<Json, ActionError>) -> Outcome {
    match result {
        Ok(output) if longer_than(&output, MAX_OUTPUT_BYTES) => Outcome::Err(ActionError::new(
            "too_large",
            format!(
                "the action `{}` returned more than {} KiB of output, the most a step may keep",
                registered.spec.name,
                MAX_OUTPUT_BYTES / 1024
            ),
        )),
        Ok(output) if registered.output_validator.is_valid(&output) => Outcome::Ok(output),
        Ok(output) => {
            let why =
                registered.output_validator.iter_errors(&output).next().map(|e| e.to_string()).unwrap_or_default();
            Outcome::Err(ActionError::new(
                "schema",
                format!(
                    "the action `{}` returned output that does not match its output schema: {why}",
                    registered.spec.name
                ),
            ))
        }
        Err(e) => Outcome::Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_is_measured_as_the_json_it_is_written_as() {
        let text = |n: usize| Json::String("x".repeat(n));
        assert!(!longer_than(&text(8), 10), "\"xxxxxxxx\" is 10 bytes");
        assert!(longer_than(&text(9), 10));
        let escaped = Json::String("\"".repeat(5));
        assert!(longer_than(&escaped, 11), "each quote is written as two bytes: 12 in all");
        let nested = serde_json::json!({ "a": [1, 2, { "b": null }] });
        assert_eq!(nested.to_string().len(), 22);
        assert!(!longer_than(&nested, 22) && longer_than(&nested, 21));
    }
}
