//! Parser: a [`Node`] tree that passed the structural check, to the typed [`Workflow`].
//!
//! The schema has already checked shapes, so this reads values and only reports
//! what the schema cannot see (a duration too long to hold). It never panics on
//! a tree that did not pass the schema either: it reports what it cannot read.

use super::duration::{Duration, DurationError};
use super::model::*;
use super::node::{Entry, Node, Value};
use super::span::Spanned;
use crate::dsl::diagnostic::{Code, Diagnostic};

/// Parses a workflow mapping, taking the tree apart (nothing is copied).
/// Diagnostics are returned beside the model.
pub(crate) fn parse_workflow(root: Node) -> (Option<Workflow>, Vec<Diagnostic>) {
    let mut p = Parser { diagnostics: Vec::new() };
    let workflow = p.workflow(root);
    (workflow, p.diagnostics)
}

struct Parser {
    diagnostics: Vec<Diagnostic>,
}

/// The entries of a mapping, to be taken out by key.
struct Fields(Vec<Entry>);

impl Fields {
    fn of(node: Node) -> Fields {
        match node.value {
            Value::Map(entries) => Fields(entries),
            _ => Fields(Vec::new()),
        }
    }

    fn take(&mut self, key: &str) -> Option<Node> {
        let i = self.0.iter().position(|e| e.key == key)?;
        Some(self.0.swap_remove(i).value)
    }
}

fn into_items(node: Node) -> Vec<Node> {
    match node.value {
        Value::Seq(items) => items,
        _ => Vec::new(),
    }
}

impl Parser {
    fn workflow(&mut self, root: Node) -> Option<Workflow> {
        let span = root.span;
        let mut f = Fields::of(root);
        // A missing or wrong name is reported by the structure check; reading on
        // lets the other checks report what else is wrong.
        let name = f.take("name").and_then(|n| self.string(&n)).unwrap_or_else(|| Spanned::new(String::new(), span));
        let defaults = f.take("defaults").map(|d| self.defaults(d)).unwrap_or_default();
        Some(Workflow {
            name,
            version: f.take("version").as_ref().and_then(Node::as_u64),
            description: f.take("description").and_then(into_string),
            input: f.take("input"),
            timeout: f.take("timeout").and_then(|n| self.duration(&n)),
            defaults,
            triggers: f
                .take("triggers")
                .map_or_else(Vec::new, |t| into_items(t).into_iter().map(|n| self.trigger(n)).collect()),
            steps: self.step_list(f.take("steps"), Section::Steps),
            output: f.take("output"),
            on_failure: self.step_list(f.take("on_failure"), Section::OnFailure),
            finally: self.step_list(f.take("finally"), Section::Finally),
        })
    }

    fn defaults(&mut self, node: Node) -> Defaults {
        let mut f = Fields::of(node);
        Defaults {
            retry: f.take("retry").map(|r| self.retries(r)),
            timeout: f.take("timeout").and_then(|n| self.duration(&n)),
        }
    }

    fn trigger(&mut self, node: Node) -> Trigger {
        let span = node.span;
        let mut f = Fields::of(node);
        let schedule = f.take("schedule").and_then(|n| self.string(&n));
        let event = f.take("event").and_then(|n| self.string(&n));
        let kind = match (schedule, event) {
            (Some(s), None) => Some(TriggerKind::Schedule(s)),
            (None, Some(e)) => Some(TriggerKind::Event(e)),
            _ => None,
        };
        Trigger { span, kind, timezone: f.take("timezone").and_then(|n| self.string(&n)), input: f.take("input") }
    }

    fn step_list(&mut self, node: Option<Node>, section: Section) -> Vec<Step> {
        let mut steps: Vec<Step> = Vec::new();
        for item in node.map(into_items).unwrap_or_default() {
            let previous = steps.last().map(|s| s.id.value.clone());
            if let Some(step) = self.step(item, section, previous) {
                steps.push(step);
            }
        }
        steps
    }

    fn step(&mut self, node: Node, section: Section, previous: Option<String>) -> Option<Step> {
        let span = node.span;
        let mut f = Fields::of(node);
        let needs = match f.take("needs") {
            None => Needs::Previous(previous),
            Some(list) => Needs::Explicit(list.items().iter().filter_map(|n| self.string(n)).collect()),
        };
        let (timeout, timeout_from) = self.timing(f.take("timeout"));
        Some(Step {
            id: self.string(&f.take("id")?)?,
            name: f.take("name").and_then(into_string),
            action: self.string(&f.take("action")?)?,
            with: f.take("with"),
            needs,
            when: f.take("when"),
            for_each: f.take("for_each"),
            concurrency: f.take("concurrency").and_then(|n| {
                let value = u32::try_from(n.as_u64()?).ok()?;
                Some(Spanned::new(value, n.span))
            }),
            retry: f.take("retry").map(|r| self.retries(r)),
            timeout,
            timeout_from,
            repeat: f.take("repeat").and_then(|r| self.repeat(r)),
            compensate: f.take("compensate").and_then(|c| self.compensate(c)),
            on_error: f.take("on_error").map_or(OnError::Fail, |n| on_error(&n)),
            section,
            span,
        })
    }

    fn repeat(&mut self, node: Node) -> Option<Repeat> {
        let span = node.span;
        let mut f = Fields::of(node);
        let (every, every_from) = self.timing(f.take("every"));
        let max = f.take("max")?;
        Some(Repeat {
            until: f.take("until")?,
            every,
            every_from,
            max: Spanned::new(u32::try_from(max.as_u64()?).ok()?, max.span),
            span,
        })
    }

    fn compensate(&mut self, node: Node) -> Option<Compensate> {
        let span = node.span;
        let mut f = Fields::of(node);
        Some(Compensate {
            action: self.string(&f.take("action")?)?,
            with: f.take("with"),
            retry: f.take("retry").map(|r| self.retries(r)),
            timeout: f.take("timeout").and_then(|n| self.duration(&n)),
            also_when_failed: f.take("also_when_failed").as_ref().and_then(Node::as_bool).unwrap_or(false),
            span,
        })
    }

    /// `retry:`: one policy, or a list of them.
    fn retries(&mut self, node: Node) -> RetryPolicies {
        match node.value {
            Value::Seq(items) => RetryPolicies(items.into_iter().map(|n| self.retry(n)).collect()),
            _ => RetryPolicies(vec![self.retry(node)]),
        }
    }

    fn retry(&mut self, node: Node) -> Retry {
        let defaults = Retry::default();
        let span = node.span;
        let mut f = Fields::of(node);
        let max_duration = f.take("max_duration").and_then(|n| self.duration(&n));
        // With `max_duration` and no `max_attempts`, time alone bounds the attempts.
        let unbounded = if max_duration.is_some() { u32::MAX } else { defaults.max_attempts };
        let (delay, delay_from) = self.timing(f.take("delay"));
        let (max_delay, max_delay_from) = self.timing(f.take("max_delay"));
        Retry {
            max_attempts: f
                .take("max_attempts")
                .as_ref()
                .and_then(Node::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(unbounded),
            max_duration,
            backoff: match f.take("backoff").as_ref().and_then(Node::as_str) {
                Some("fixed") => Backoff::Fixed,
                _ => Backoff::Exponential,
            },
            delay: delay.map_or(defaults.delay, |d| d.value),
            delay_from,
            multiplier: f.take("multiplier").as_ref().and_then(Node::as_f64).unwrap_or(defaults.multiplier),
            max_delay,
            max_delay_from,
            jitter: f.take("jitter").as_ref().and_then(Node::as_bool).unwrap_or(false),
            on: f.take("on").map(|list| list.items().iter().filter_map(|n| self.string(n)).collect()),
            span,
        }
    }
}

fn into_string(node: Node) -> Option<String> {
    match node.value {
        Value::String(s) => Some(s),
        _ => None,
    }
}

impl Parser {
    fn string(&mut self, node: &Node) -> Option<Spanned<String>> {
        match &node.value {
            Value::String(s) => Some(Spanned::new(s.clone(), node.span)),
            _ => None,
        }
    }

    /// A duration written out, or a template that gives one at run time (DSL.md B3).
    fn timing(&mut self, node: Option<Node>) -> (Option<Spanned<Duration>>, Option<Node>) {
        match node {
            Some(n) if n.as_str().is_some_and(super::template::is_template) => (None, Some(n)),
            Some(n) => (self.duration(&n), None),
            None => (None, None),
        }
    }

    fn duration(&mut self, node: &Node) -> Option<Spanned<Duration>> {
        let text = node.as_str()?;
        match text.parse::<Duration>() {
            Ok(d) => Some(Spanned::new(d, node.span)),
            Err(DurationError::TooLong) => {
                self.diagnostics.push(
                    Diagnostic::new(
                        Code::InvalidDuration,
                        node.span,
                        format!("`{text}` is longer than any run may last"),
                    )
                    .help("durations may be at most 100 years; use `d` for days, like `30d`"),
                );
                None
            }
            Err(DurationError::Form) => {
                self.diagnostics.push(
                    Diagnostic::new(Code::InvalidDuration, node.span, format!("`{text}` is not a duration"))
                        .help("write a whole number followed by ms, s, m, h or d, like `150ms`, `2s` or `5m`"),
                );
                None
            }
        }
    }
}

/// `on_error`: `fail`, `continue`, `pause`, `{continue: [codes]}` or
/// `{pause: [codes]}` (the structure check has said what else is wrong).
fn on_error(node: &Node) -> OnError {
    match node.as_str() {
        Some("continue") => return OnError::Continue,
        Some("pause") => return OnError::Pause,
        Some(_) => return OnError::Fail,
        None => {}
    }
    let spanned = |list: &Node| {
        list.items().iter().filter_map(|c| c.as_str().map(|code| Spanned::new(code.to_owned(), c.span))).collect()
    };
    match (node.get("continue"), node.get("pause")) {
        (_, Some(codes)) => OnError::PauseOn(spanned(codes)),
        (Some(codes), _) => OnError::ContinueOn(spanned(codes)),
        _ => OnError::ContinueOn(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsl::loader::load_path;

    /// Every key of the language reaches the model (see tests/corpus/valid/every_key.yaml).
    #[test]
    fn parses_every_key() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid/every_key.yaml");
        let root = load_path(&path).root.expect("loads");
        let (workflow, diagnostics) = parse_workflow(root);
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let w = workflow.expect("parses");
        assert_eq!(w.name.value, "every_key");
        assert_eq!(w.version, Some(7));
        assert!(w.description.is_some() && w.input.is_some() && w.output.is_some());
        assert_eq!(w.timeout.map(|t| t.value.millis()), Some(3_600_000));
        assert_eq!(w.defaults.retry.map(|r| r.first().max_attempts), Some(2));
        assert_eq!(w.defaults.timeout.map(|t| t.value.millis()), Some(30_000));
        assert!(matches!(w.triggers[0].kind, Some(TriggerKind::Schedule(_))));
        assert!(w.triggers[0].timezone.is_some() && w.triggers[0].input.is_some());
        assert!(matches!(w.triggers[1].kind, Some(TriggerKind::Event(_))));
        let first = &w.steps[0];
        assert_eq!(first.name.as_deref(), Some("The first step"));
        assert_eq!(first.needs, Needs::Explicit(vec![]));
        assert!(first.with.is_some() && first.when.is_some() && first.timeout.is_some());
        let retry = first.retry.as_ref().expect("retry").first();
        assert_eq!(
            (retry.max_attempts, retry.backoff, retry.delay.millis(), retry.multiplier),
            (3, Backoff::Fixed, 200, 1.5)
        );
        assert_eq!(retry.max_delay.as_ref().map(|d| d.value.millis()), Some(1000));
        assert!(retry.jitter);
        assert_eq!(retry.on.as_ref().map(|o| o.len()), Some(1));
        let c = first.compensate.as_ref().expect("compensate");
        assert!(c.with.is_some() && c.retry.is_some() && c.timeout.is_some() && c.also_when_failed);
        assert_eq!(first.on_error, OnError::Fail);
        let each = &w.steps[1];
        assert!(each.for_each.is_some());
        assert_eq!(each.concurrency.as_ref().map(|c| c.value), Some(2));
        let codes = match &each.on_error {
            OnError::ContinueOn(codes) => codes.iter().map(|c| c.value.as_str()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(codes, ["timeout", "unavailable"]);
        assert_eq!(w.on_failure[0].section, Section::OnFailure);
    }
}
