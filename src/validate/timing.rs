//! Warnings about time: waits with no end, and waits or retry budgets longer
//! than the whole run may take.

use crate::dsl::diagnostic::{Code, Diagnostic};
use crate::dsl::duration::Duration;
use crate::dsl::model::{Retry, Step, Workflow};
use crate::dsl::span::Spanned;

pub(crate) fn check_timing(workflow: &Workflow, out: &mut Vec<Diagnostic>) {
    for step in workflow.all_steps() {
        let timeout = step.timeout.as_ref().or(workflow.defaults.timeout.as_ref());
        let retry = step.retry.clone().or_else(|| workflow.defaults.retry.clone()).unwrap_or_default();
        match step.action.value.as_str() {
            "event.wait" => check_wait(step, timeout, workflow.timeout.as_ref(), out),
            "sleep" => check_sleep(step, workflow.timeout.as_ref(), out),
            _ => check_budget(step, timeout, &retry, workflow.timeout.as_ref(), out),
        }
    }
}

fn check_wait(
    step: &Step,
    timeout: Option<&Spanned<Duration>>,
    run: Option<&Spanned<Duration>>,
    out: &mut Vec<Diagnostic>,
) {
    let Some(timeout) = timeout else {
        if run.is_some() {
            // The run's deadline bounds the wait.
            return;
        }
        out.push(
            Diagnostic::new(
                Code::WaitWithoutTimeout,
                step.action.span,
                format!("step `{}` waits for an event with no timeout, so it may wait forever", step.id.value),
            )
            .help("add a `timeout`, like `timeout: 48h`, and say what happens when it passes"),
        );
        return;
    };
    if let Some(run) = run.filter(|r| timeout.value > r.value) {
        out.push(
            Diagnostic::new(
                Code::WaitExceedsRunTimeout,
                timeout.span,
                format!(
                    "step `{}` may wait {}, but the whole run times out after {}",
                    step.id.value, timeout.value, run.value
                ),
            )
            .help("shorten the wait, or lengthen the workflow's `timeout`"),
        );
    }
}

fn check_sleep(step: &Step, run: Option<&Spanned<Duration>>, out: &mut Vec<Diagnostic>) {
    let Some(run) = run else { return };
    let Some(node) = step.with.as_ref().and_then(|w| w.get("for")) else { return };
    let Some(sleep) = node.as_str().and_then(|s| s.parse::<Duration>().ok()) else { return };
    if sleep > run.value {
        out.push(
            Diagnostic::new(
                Code::WaitExceedsRunTimeout,
                node.span,
                format!("step `{}` sleeps {sleep}, but the whole run times out after {}", step.id.value, run.value),
            )
            .help("shorten the sleep, or lengthen the workflow's `timeout`"),
        );
    }
}

fn check_budget(
    step: &Step,
    timeout: Option<&Spanned<Duration>>,
    retry: &Retry,
    run: Option<&Spanned<Duration>>,
    out: &mut Vec<Diagnostic>,
) {
    let (Some(timeout), Some(run)) = (timeout, run) else { return };
    if let Some(limit) = &retry.max_duration {
        // The last attempt starts within the limit and may take its timeout.
        let budget = limit.value.millis().saturating_add(timeout.value.millis());
        if budget > run.value.millis() {
            out.push(
                Diagnostic::new(
                    Code::RetryExceedsRunTimeout,
                    limit.span,
                    format!(
                        "step `{}` may take {} (attempts for up to {} and a last one of up to {}), longer than the run's `timeout` of {}",
                        step.id.value,
                        Duration(budget),
                        limit.value,
                        timeout.value,
                        run.value
                    ),
                )
                .help("shorten `max_duration` or the step's `timeout`, or lengthen the workflow's `timeout`"),
            );
        }
        return;
    }
    let attempts = u64::from(retry.max_attempts);
    let budget = timeout.value.millis().saturating_mul(attempts).saturating_add(retry.total_wait().millis());
    if budget > run.value.millis() {
        let span = step.retry.as_ref().map_or(timeout.span, |r| r.span);
        out.push(
            Diagnostic::new(
                Code::RetryExceedsRunTimeout,
                span,
                format!(
                    "step `{}` may take {} ({attempts} attempt{} of up to {} plus waits of {}), longer than the run's `timeout` of {}",
                    step.id.value,
                    Duration(budget),
                    if attempts == 1 { "" } else { "s" },
                    timeout.value,
                    retry.total_wait(),
                    run.value
                ),
            )
            .help("lower `max_attempts` or the step's `timeout`, or lengthen the workflow's `timeout`"),
        );
    }
}
