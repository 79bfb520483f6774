//! Structural checks: the file against `schemas/workflow.schema.json`.
//!
//! The JSON Schema is the single description of the language's shape. Its
//! errors are mapped back to the exact key or value they concern, and given a
//! code and plain words.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::paths::LocationSegment;
use serde_json::Value as Json;

use super::instance::Tree;
use crate::base::suggest::did_you_mean;
use crate::dsl::diagnostic::{Code, Diagnostic};
use crate::dsl::node::{Node, Value};
use crate::dsl::span::Span;

/// The language's JSON Schema, as committed in `schemas/`.
pub(crate) const WORKFLOW_SCHEMA: &str = include_str!("../../schemas/workflow.schema.json");

/// The workflow schema, parsed and compiled once per process.
pub(crate) struct WorkflowSchema {
    pub json: Json,
    validator: jsonschema::Validator<Tree>,
}

impl WorkflowSchema {
    pub(crate) fn get() -> &'static WorkflowSchema {
        static SCHEMA: OnceLock<WorkflowSchema> = OnceLock::new();
        SCHEMA.get_or_init(|| {
            let json: Json =
                serde_json::from_str(WORKFLOW_SCHEMA).expect("the embedded workflow schema is JSON (a test checks it)");
            let validator = jsonschema::options_for::<Tree>()
                .with_draft(jsonschema::Draft::Draft202012)
                .build(&json)
                .expect("the embedded workflow schema compiles (a test checks it)");
            WorkflowSchema { json, validator }
        })
    }

    /// The keys an object of kind `def` may have (`None`: the top level).
    pub(crate) fn keys(&self, def: Option<&str>) -> Vec<&str> {
        let object = match def {
            None => &self.json,
            Some(def) => &self.json["$defs"][def],
        };
        object["properties"].as_object().map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default()
    }

    /// Checks a file's tree; every error becomes a diagnostic at its key or value.
    pub(crate) fn check(&self, root: &Node) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        for error in self.validator.iter_errors(root) {
            self.report(root, &error, &mut out);
        }
        out
    }

    /// One schema error as diagnostics. A value that fits none of a `oneOf`'s
    /// forms is told what is wrong in the form of its own type (a word among
    /// the words allowed, or a mapping's keys), not of every form at once.
    fn report(&self, root: &Node, error: &jsonschema::ValidationError, out: &mut Vec<Diagnostic>) {
        if let ValidationErrorKind::OneOfNotValid { context } = error.kind() {
            // A form is of another type when all it says is the type, or (for a
            // value that is not a word) that the value is not one of its words.
            let word = Place::new(root, &instance_path(error), None).node.as_str().is_some();
            let other_type = |errors: &Vec<jsonschema::ValidationError>| {
                errors.iter().all(|e| match e.kind() {
                    ValidationErrorKind::Type { .. } => true,
                    ValidationErrorKind::Enum { .. } => !word,
                    _ => false,
                })
            };
            if let Some(errors) = context.iter().find(|e| !other_type(e)).or(context.first()) {
                errors.iter().for_each(|e| self.report(root, e, out));
                return;
            }
        }
        let path = instance_path(error);
        let at = Place::new(root, &path, None);
        let known = self.keys(object_def(&path));
        out.extend(describe(error.kind(), &at, &known));
    }
}

/// The path of a schema error's instance, as keys and indices.
pub(crate) fn instance_path(error: &jsonschema::ValidationError) -> Vec<String> {
    error
        .instance_path()
        .iter()
        .map(|seg| match seg {
            LocationSegment::Property(p) => p.into_owned(),
            LocationSegment::Index(i) => i.to_string(),
        })
        .collect()
}

/// Turns one schema error into diagnostics; `known` are the keys the object may have.
pub(crate) fn describe(kind: &ValidationErrorKind, at: &Place, known: &[&str]) -> Vec<Diagnostic> {
    match kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            unexpected.iter().map(|key| unknown_key(at, key, known)).collect()
        }
        ValidationErrorKind::Required { property } => {
            let key = property.as_str().unwrap_or_default();
            vec![missing_key(at, key)]
        }
        ValidationErrorKind::Type { kind } => vec![wrong_type(at, kind)],
        ValidationErrorKind::Pattern { .. } => vec![bad_pattern(at)],
        other => vec![bad_value(at, other)],
    }
}

fn unknown_key(at: &Place, key: &str, known: &[&str]) -> Diagnostic {
    let span = at.node.entry(key).map_or(at.node.span, |e| e.key_span);
    let what = at.object_name();
    let d = Diagnostic::new(Code::UnknownKey, span, format!("unknown key `{key}` in {what}"))
        .maybe_help(did_you_mean(key, known.iter().copied()));
    if known.is_empty() {
        d
    } else {
        d.help_if_none(format!("{what} may have: {}", known.join(", ")))
    }
}

/// Where a schema error points: the node, its path, and the key it sits under.
pub(crate) struct Place<'a> {
    pub node: &'a Node,
    pub path: Vec<String>,
    pub key_span: Option<Span>,
    /// For an action's `with`: the path is inside `with`, and messages say so.
    pub within: Option<&'a str>,
}

impl<'a> Place<'a> {
    pub(crate) fn new(root: &'a Node, path: &[String], within: Option<&'a str>) -> Self {
        let (node, key_span) = root.at_path(path);
        Place { node, path: path.to_vec(), key_span, within }
    }

    fn object_name(&self) -> String {
        match self.within {
            Some(w) if self.path.is_empty() => format!("`{w}`"),
            Some(_) => self.field(),
            None => object_name(&self.path),
        }
    }

    fn key(&self) -> Option<&str> {
        self.path.last().map(String::as_str).filter(|k| k.parse::<usize>().is_err())
    }

    /// The field this value is under, for messages: "`retry.delay`", "`steps[2].id`".
    fn field(&self) -> String {
        let mut out = self.within.unwrap_or_default().to_owned();
        for seg in &self.path {
            if seg.parse::<usize>().is_ok() {
                out.push_str(&format!("[{}]", seg.parse::<usize>().unwrap_or(0) + 1));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(seg);
            }
        }
        if out.is_empty() {
            "the workflow".to_owned()
        } else {
            format!("`{out}`")
        }
    }
}

/// Which `$defs` entry describes the object at an instance path.
pub(crate) fn object_def(path: &[String]) -> Option<&'static str> {
    let is_index = |s: &String| s.parse::<usize>().is_ok();
    match path {
        [] => None,
        [d] if d == "defaults" => Some("defaults"),
        [t, i] if t == "triggers" && is_index(i) => Some("trigger"),
        [s, i] if (s == "steps" || s == "on_failure" || s == "finally") && is_index(i) => Some("step"),
        [.., last] if last == "retry" => Some("retry"),
        [.., r, i] if r == "retry" && is_index(i) => Some("retry"),
        [.., last] if last == "compensate" => Some("compensate"),
        _ => Some("unknown"),
    }
}

fn object_name(path: &[String]) -> String {
    match object_def(path) {
        None => "the workflow".to_owned(),
        Some("step") => format!("step {}", path.get(1).and_then(|i| i.parse::<usize>().ok()).map_or(0, |i| i + 1)),
        Some("retry") => "`retry`".to_owned(),
        Some("compensate") => "`compensate`".to_owned(),
        Some("trigger") => "a trigger".to_owned(),
        Some("defaults") => "`defaults`".to_owned(),
        Some(_) => "this mapping".to_owned(),
    }
}

fn missing_key(at: &Place, key: &str) -> Diagnostic {
    let what = at.object_name();
    let span = at.key_span.unwrap_or(at.node.span);
    let help = match key {
        "id" => "give the step an id, like `id: reserve_stock`",
        "action" => "name the action the step runs, like `action: mock`",
        "name" => "name the workflow, like `name: order_placement`",
        "steps" => "add a `steps:` list with at least one step",
        _ => "",
    };
    let d = Diagnostic::new(Code::MissingKey, span, format!("{what} has no `{key}`, and it needs one"));
    if help.is_empty() {
        d
    } else {
        d.help(help)
    }
}

/// Plain words for a JSON type.
fn type_words(t: &str) -> &'static str {
    match t {
        "string" => "text",
        "object" => "a mapping",
        "array" => "a list",
        "integer" => "a whole number",
        "number" => "a number",
        "boolean" => "true or false",
        "null" => "nothing (null)",
        _ => "a value",
    }
}

/// Plain words for what a node holds.
pub(crate) fn node_words(node: &Node) -> &'static str {
    match &node.value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "true or false",
        Value::Number(n) if n.is_f64() => "a number",
        Value::Number(_) => "a whole number",
        Value::String(_) => "text",
        Value::Seq(_) => "a list",
        Value::Map(_) => "a mapping",
    }
}

fn wrong_type(at: &Place, kind: &TypeKind) -> Diagnostic {
    let expected: Vec<&str> = match kind {
        TypeKind::Single(t) => vec![type_words(&t.to_string())],
        TypeKind::Multiple(set) => set.into_iter().map(|t| type_words(&t.to_string())).collect(),
    };
    let expected = expected.join(" or ");
    let field = at.field();
    let d = Diagnostic::new(
        Code::WrongType,
        at.node.span,
        format!("{field} must be {expected}, not {}", node_words(at.node)),
    );
    match at.key() {
        Some("needs") => d.help("write the steps it needs as a list, like `needs: [reserve_stock]`"),
        Some("steps" | "on_failure" | "finally") => d.help("write the steps as a list, each starting with `- id:`"),
        Some("retry") => d.help("write a retry policy, like `retry: { max_attempts: 3, delay: 200ms }`"),
        Some("compensate") => d.help("write the undoing step, like `compensate: { action: inventory.release }`"),
        Some("timeout" | "delay" | "max_delay" | "every") => d.help("write a duration, like `150ms`, `2s` or `5m`"),
        _ => d,
    }
}

fn bad_pattern(at: &Place) -> Diagnostic {
    let value = at.node.to_json();
    let shown = value.as_str().unwrap_or_default();
    let field = at.field();
    let parent = at.path.iter().rev().find(|s| s.parse::<usize>().is_err()).map(String::as_str);
    let parent = if at.within.is_some() && parent != Some("delay") { None } else { parent };
    match parent {
        Some("timeout" | "delay" | "max_delay" | "every") => Diagnostic::new(
            Code::InvalidDuration,
            at.node.span,
            format!("`{shown}` is not a duration"),
        )
        .help("write a whole number followed by ms, s, m, h or d, like `150ms`, `2s` or `5m`"),
        Some("id" | "needs") => Diagnostic::new(
            Code::InvalidId,
            at.node.span,
            format!("`{shown}` is not a valid step id"),
        )
        .help("a step id starts with a lowercase letter, then lowercase letters, digits or `_`, like `reserve_stock`"),
        Some("name") => Diagnostic::new(
            Code::InvalidName,
            at.node.span,
            format!("`{shown}` is not a valid workflow name"),
        )
        .help("a workflow name starts with a lowercase letter, then lowercase letters, digits, `_`, `.` or `-`, like `order_placement`"),
        Some("on") => Diagnostic::new(
            Code::InvalidRetry,
            at.node.span,
            format!("`{shown}` is not an error code"),
        )
        .help("error codes are lowercase words with `_`, like `unavailable` or `timeout`"),
        _ => Diagnostic::new(Code::InvalidValue, at.node.span, format!("{field} has the wrong form: `{shown}`")),
    }
}

fn bad_value(at: &Place, kind: &ValidationErrorKind) -> Diagnostic {
    let field = at.field();
    let in_retry = at.path.iter().any(|s| s == "retry");
    let code = if in_retry { Code::InvalidRetry } else { Code::InvalidValue };
    let message = match kind {
        ValidationErrorKind::Minimum { limit } => format!("{field} must be at least {limit}"),
        ValidationErrorKind::Maximum { limit } => format!("{field} must be at most {limit}"),
        ValidationErrorKind::MinItems { limit } => {
            format!("{field} must hold at least {limit} item{}", if *limit == 1 { "" } else { "s" })
        }
        ValidationErrorKind::MaxLength { limit } => format!("{field} may be at most {limit} characters long"),
        ValidationErrorKind::UniqueItems => format!("{field} names the same thing twice"),
        ValidationErrorKind::Enum { options } => {
            let options: Vec<String> = options
                .as_array()
                .map(|o| o.iter().map(|v| format!("`{}`", v.as_str().unwrap_or_default())).collect())
                .unwrap_or_default();
            format!("{field} must be one of {}, not `{}`", options.join(", "), at.node.value)
        }
        other => format!("{field} is not allowed here: {other:?}"),
    };
    let d = Diagnostic::new(code, at.node.span, message);
    if let ValidationErrorKind::Enum { options } = kind {
        let words: Vec<&str> =
            options.as_array().map(|o| o.iter().filter_map(Json::as_str).collect()).unwrap_or_default();
        let shown = at.node.to_json().as_str().unwrap_or_default().to_owned();
        return d.maybe_help(did_you_mean(&shown, words));
    }
    d
}
