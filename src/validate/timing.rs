//! Warnings about time: waits with no end, and waits or retry budgets longer
//! than the whole run may take.

use crate::dsl::diagnostic::{Code, Diagnostic};
use crate::dsl::duration::Duration;
use crate::dsl::model::{Retry, RetryPolicies, Step, Workflow};
use crate::dsl::span::Spanned;

pub(crate) fn check_timing(workflow: &Workflow, out: &mut Vec<Diagnostic>) {
    for step in workflow.all_steps() {
        if step.timeout_from.is_some() {
            // A timeout from data is known only when the run goes; it bounds the step.
            continue;
        }
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
    policies: &RetryPolicies,
    run: Option<&Spanned<Duration>>,
    out: &mut Vec<Diagnostic>,
) {
    let (Some(timeout), Some(run)) = (timeout, run) else { return };
    // Each policy counts its own attempts: together they may take the sum.
    let budget = policies.iter().map(|p| policy_budget(p, timeout.value)).fold(0u64, u64::saturating_add);
    if budget <= run.value.millis() {
        return;
    }
    let span = step.retry.as_ref().and_then(|r| r.iter().next()).map_or(timeout.span, |r| r.span);
    out.push(
        Diagnostic::new(
            Code::RetryExceedsRunTimeout,
            span,
            format!(
                "step `{}` may take {} with its retries (attempts of up to {} and the waits between them), longer than the run's `timeout` of {}",
                step.id.value,
                Duration(budget),
                timeout.value,
                run.value
            ),
        )
        .help("lower `max_attempts` (or `max_duration`) or the step's `timeout`, or lengthen the workflow's `timeout`"),
    );
}

/// The longest one policy lets a step take: its attempts and the waits between
/// them, or (with `max_duration`) that long and one last attempt.
fn policy_budget(policy: &Retry, timeout: Duration) -> u64 {
    match &policy.max_duration {
        Some(limit) => limit.value.millis().saturating_add(timeout.millis()),
        None => {
            let attempts = u64::from(policy.max_attempts);
            timeout.millis().saturating_mul(attempts).saturating_add(policy.total_wait().millis())
        }
    }
}
