//! Checks of each step on its own, and of the workflow's header: actions, `with`
//! against the action's input schema, retry policies, triggers, `input:`.

use serde_json::Value as Json;

use super::schema_refs::{check_ref_chains, MAX_REFS, MAX_REF_CHAIN};
use super::structure::{describe, instance_path, Place};
use crate::actions::Registry;
use crate::base::suggest::did_you_mean;
use crate::dsl::diagnostic::{Code, Diagnostic};
use crate::dsl::model::{Retry, RetryPolicies, Step, Trigger, TriggerKind, Workflow};
use crate::dsl::node::{Node, Value};
use crate::dsl::span::{Span, Spanned};
use crate::dsl::template::{analyze, is_template};

/// Checks every step's action and `with`, and the step-level rules.
pub(crate) fn check_steps(workflow: &Workflow, registry: &Registry, out: &mut Vec<Diagnostic>) {
    for step in workflow.all_steps() {
        check_action(&step.action, step.with.as_ref(), step.span, registry, out);
        if let Some(c) = &step.compensate {
            check_action(&c.action, c.with.as_ref(), c.span, registry, out);
            c.retry.iter().flat_map(RetryPolicies::iter).for_each(|r| check_retry(Some(r), out));
        }
        step.retry.iter().flat_map(RetryPolicies::iter).for_each(|r| check_retry(Some(r), out));
        check_step_rules(step, out);
        check_continued_codes(step, registry, out);
    }
    workflow.defaults.retry.iter().flat_map(RetryPolicies::iter).for_each(|r| check_retry(Some(r), out));
}

fn check_action(
    action: &Spanned<String>,
    with: Option<&Node>,
    step_span: Span,
    registry: &Registry,
    out: &mut Vec<Diagnostic>,
) {
    let Some(registered) = registry.get(&action.value) else {
        out.push(
            Diagnostic::new(Code::UnknownAction, action.span, format!("there is no action `{}`", action.value))
                .maybe_help(did_you_mean(&action.value, registry.names()))
                .help_if_none("`sagaflow actions` lists the actions a step can run"),
        );
        return;
    };
    let empty = Node { value: Value::Map(Vec::new()), span: step_span };
    let with = with.unwrap_or(&empty);
    if with.as_str().is_some_and(is_template) {
        return;
    }
    let whose = format!("action `{}`", action.value);
    for mut d in check_instance(with, &registered.input_validator, &registered.spec.input_schema, "with", &whose) {
        if with.span == step_span && with.entries().is_empty() {
            d.span = action.span;
        }
        out.push(d);
    }
}

/// A value written in the workflow (templates inside) against the schema it
/// must meet: `invalid-with` for each mismatch a template cannot explain.
/// `field` is where the value is (`with`); `whose` says whose schema it is.
pub(crate) fn check_instance(
    value: &Node,
    validator: &jsonschema::Validator,
    schema: &Json,
    field: &str,
    whose: &str,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let instance = value.to_json();
    for error in validator.iter_errors(&instance) {
        let path = instance_path(&error);
        if touches_template(value, &path, error.kind()) {
            continue;
        }
        let at = Place::new(value, &path, Some(field));
        let known: Vec<&str> = schema_at(schema, &path)["properties"]
            .as_object()
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for mut d in describe(error.kind(), &at, &known) {
            d.code = Code::InvalidWith;
            d.message = format!("{} ({whose})", d.message);
            out.push(d);
        }
    }
    out
}

/// Whether a schema error concerns a value a template computes at run time.
/// A lone `{{x}}` may give any type; text around a template is surely text.
fn touches_template(with: &Node, path: &[String], kind: &jsonschema::error::ValidationErrorKind) -> bool {
    let mut node = with;
    for seg in path {
        if node.as_str().is_some_and(is_template) {
            return true;
        }
        match node.at_path([seg]) {
            (n, _) if !std::ptr::eq(n, node) => node = n,
            _ => break,
        }
    }
    match node.as_str() {
        Some(text) if is_template(text) => {
            let lone = analyze(text).map(|a| a.lone).unwrap_or(true);
            lone || !matches!(kind, jsonschema::error::ValidationErrorKind::Type { .. })
        }
        _ => false,
    }
}

/// The sub-schema at an instance path, following `properties` and `items`.
fn schema_at<'a>(schema: &'a Json, path: &[String]) -> &'a Json {
    let mut current = schema;
    for seg in path {
        let next = if seg.parse::<usize>().is_ok() { &current["items"] } else { &current["properties"][seg] };
        if next.is_null() {
            return next;
        }
        current = next;
    }
    current
}

fn check_retry(retry: Option<&Retry>, out: &mut Vec<Diagnostic>) {
    let Some(retry) = retry else { return };
    if let Some(max) = &retry.max_delay {
        if max.value < retry.delay {
            out.push(
                Diagnostic::new(
                    Code::InvalidRetry,
                    max.span,
                    format!(
                        "`max_delay` ({}) is shorter than `delay` ({}), so no wait could respect both",
                        max.value, retry.delay
                    ),
                )
                .help("make `max_delay` at least as long as `delay`"),
            );
        }
    }
}

/// The codes `on_error: {continue: [...]}` and `retry.on` name must be ones the
/// action can fail with (its declared errors, or the language's own): a
/// misspelt code would never match, and the step would not go on or retry as
/// it was meant to.
fn check_continued_codes(step: &Step, registry: &Registry, out: &mut Vec<Diagnostic>) {
    let continued = step.on_error.codes();
    let retried = step.retry.iter().flat_map(RetryPolicies::iter).flat_map(|r| r.on.iter().flatten());
    let codes = continued.iter().chain(retried.filter(|c| c.value != "any"));
    let Some(registered) = registry.get(&step.action.value) else { return };
    let declared = &registered.spec.errors;
    if declared.is_empty() {
        // An action that does not say how it fails (mock) may fail with any code.
        return;
    }
    let language = || crate::base::error::ErrorCode::named().map(str::to_owned);
    for code in codes {
        let own =
            matches!(crate::base::error::ErrorCode::from(code.value.as_str()), crate::base::error::ErrorCode::Other(_));
        if !own || declared.contains(&code.value) {
            continue;
        }
        let known: Vec<String> = declared.iter().cloned().chain(language()).collect();
        out.push(
            Diagnostic::new(
                Code::ContinuedCodeUnknown,
                code.span,
                format!("`{}` never fails with `{}`, so naming it here changes nothing", step.action.value, code.value),
            )
            .maybe_help(did_you_mean(&code.value, known.iter().map(String::as_str)))
            .help_if_none(format!("`{}` fails with: {}", step.action.value, declared.join(", "))),
        );
    }
}

fn check_step_rules(step: &Step, out: &mut Vec<Diagnostic>) {
    if let (Some(c), None) = (&step.concurrency, &step.for_each) {
        out.push(Diagnostic::new(
            Code::ConcurrencyWithoutForEach,
            c.span,
            "`concurrency` has no effect on a step without `for_each`",
        ));
    }
    if let Some(list) = &step.for_each {
        check_for_each(step, list, out);
    }
    if let Some(when) = &step.when {
        if !when.as_str().is_some_and(is_template) {
            out.push(
                Diagnostic::new(
                    Code::ConstantWhen,
                    when.span,
                    format!("`when: {}` is not a template, so it always gives the same answer", when.value),
                )
                .help("write a condition, like `when: \"{{gt input.total 0}}\"`, or remove `when`"),
            );
        }
    }
    if let (Some(c), true) = (&step.compensate, step.section.is_after()) {
        out.push(Diagnostic::new(
            Code::CompensateInOnFailure,
            c.span,
            "an `on_failure` step is never rolled back, so this `compensate` never runs",
        ));
    }
}

/// Lists with more items than this, run one at a time, earn a warning.
const LARGE_FOR_EACH: usize = 20;

fn check_for_each(step: &Step, list: &Node, out: &mut Vec<Diagnostic>) {
    match &list.value {
        Value::String(text) if is_template(text) && analyze(text).is_ok_and(|a| !a.lone) => out.push(
            Diagnostic::new(
                Code::ForEachNotList,
                list.span,
                "`for_each` has text around its template, so it gives text, not a list",
            )
            .help("write exactly one expression, like `for_each: \"{{input.items}}\"`"),
        ),
        Value::String(text) if is_template(text) => {}
        Value::String(_) => out.push(
            Diagnostic::new(
                Code::ForEachNotList,
                list.span,
                "`for_each` is plain text; it needs a list or a template that gives one",
            )
            .help("write a template, like `for_each: \"{{input.items}}\"`, or a YAML list"),
        ),
        Value::Seq(items) if items.len() > LARGE_FOR_EACH && step.concurrency.is_none() => out.push(
            Diagnostic::new(
                Code::ForEachWithoutConcurrency,
                list.span,
                format!("`for_each` runs its {} items one at a time", items.len()),
            )
            .help("set `concurrency` to run several items at once"),
        ),
        _ => {}
    }
}

/// Checks triggers: one of `schedule`/`event`, and cron expressions.
pub(crate) fn check_triggers(workflow: &Workflow, out: &mut Vec<Diagnostic>) {
    for trigger in &workflow.triggers {
        match &trigger.kind {
            None => out.push(
                Diagnostic::new(
                    Code::InvalidTrigger,
                    trigger.span,
                    "a trigger names exactly one of `schedule` or `event`",
                )
                .help("write `- schedule: \"0 * * * *\"` or `- event: order.paid`"),
            ),
            Some(TriggerKind::Schedule(cron)) => check_cron(cron, out),
            Some(TriggerKind::Event(_)) => check_event_trigger(trigger, out),
        }
        if let Some(tz) = &trigger.timezone {
            if let Err(message) = crate::dsl::zone::time_zone(&tz.value) {
                let d = Diagnostic::new(Code::InvalidTrigger, tz.span, message);
                out.push(d.help_if_none("write an IANA name such as `Europe/Berlin`, or leave it out for UTC"));
            }
        }
    }
}

fn check_event_trigger(trigger: &Trigger, out: &mut Vec<Diagnostic>) {
    if let Some(input) = &trigger.input {
        out.push(
            Diagnostic::new(
                Code::InvalidTrigger,
                input.span,
                "an event trigger's run input is the event's data; `input` is only for schedules",
            )
            .help("remove `input` from this trigger"),
        );
    }
}

/// Parses a 5- or 6-field cron expression (seconds first when there are 6).
pub(crate) fn parse_cron(text: &str) -> Result<croner::Cron, String> {
    let fields = text.split_whitespace().count();
    if fields != 5 && fields != 6 {
        return Err(format!(
            "it has {fields} field{}; a schedule has 5 (minute hour day month weekday), or 6 with seconds first",
            if fields == 1 { "" } else { "s" }
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(text)
        .map_err(|e| e.to_string())
}

fn check_cron(cron: &Spanned<String>, out: &mut Vec<Diagnostic>) {
    if let Err(why) = parse_cron(&cron.value) {
        out.push(
            Diagnostic::new(Code::InvalidCron, cron.span, format!("`{}` is not a cron expression: {why}", cron.value))
                .help("for example `0 */6 * * *` (every 6 hours) or `*/30 * * * * *` (every 30 seconds)"),
        );
    }
}

/// Checks that `input:` is itself a valid JSON Schema (draft 2020-12).
pub(crate) fn check_input_schema(workflow: &Workflow, out: &mut Vec<Diagnostic>) {
    let Some(input) = &workflow.input else { return };
    let schema = input.to_json();
    if let Err(e) = jsonschema::meta::validate(&schema) {
        let (node, _) = input.at_path(instance_path(&e));
        out.push(Diagnostic::new(
            Code::InvalidInputSchema,
            node.span,
            format!("`input` is not a valid JSON Schema: {e}"),
        ));
        return;
    }
    if let Err(deep) = check_ref_chains(&schema) {
        let (node, _) = input.at_path(deep.path);
        out.push(
            Diagnostic::new(
                Code::InvalidInputSchema,
                node.span,
                if deep.count {
                    format!("`input` holds {} `$ref`s; at most {MAX_REFS} are taken", deep.length)
                } else {
                    format!(
                        "`input` has a chain of {} `$ref`s, each pointing at a schema that holds the next; at most {MAX_REF_CHAIN} are taken",
                        deep.length
                    )
                },
            )
            .help("refer to the schema that is meant directly, instead of through a chain of references"),
        );
        return;
    }
    if let Err(e) = jsonschema::draft202012::new(&schema) {
        let (node, _) = input.at_path(instance_path(&e));
        if e.to_string().contains("retrieving it failed") {
            out.push(
                Diagnostic::new(
                    Code::InvalidInputSchema,
                    node.span,
                    "`input` refers to a schema elsewhere (`$ref` to a URL or file), which sagaflow never fetches",
                )
                .help("write the schema inline, or refer to a part of it with `$ref: \"#/$defs/...\"`"),
            );
            return;
        }
        out.push(Diagnostic::new(
            Code::InvalidInputSchema,
            node.span,
            format!("`input` is not a valid JSON Schema: {e}"),
        ));
    }
}
