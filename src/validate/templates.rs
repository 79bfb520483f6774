//! Template checks: every template parses, reads only names in scope, names steps
//! that exist and are sure to have finished, and fields their outputs declare.

use std::cell::OnceCell;

use serde_json::Value as Json;

use super::graph::Graph;
use crate::actions::Registry;
use crate::base::suggest::did_you_mean;
use crate::dsl::diagnostic::{Code, Diagnostic, Severity};
use crate::dsl::model::{Section, Step, Workflow};
use crate::dsl::node::{Node, Value};
use crate::dsl::span::{SourceFile, Span};
use crate::dsl::template::signature::{calls, Arg, Kinds, Signature};
use crate::dsl::template::{analyze, is_template, split_path, PathRef, HELPERS, ROOTS};

/// Where a template is, which decides what it may read.
#[derive(Clone, Copy)]
struct Scope {
    /// The step the template belongs to (`None`: the workflow's `output` or a trigger).
    step: Option<usize>,
    item: bool,
    error: bool,
    /// In `compensate`: the step's own output may be read.
    own_output: bool,
    /// In `output` or `on_failure`: any step of `steps` may be read.
    any_step: bool,
    /// In a trigger: only `run` and `secrets`.
    trigger: bool,
    /// In `finally`: `run.status` too.
    finally: bool,
    /// In a `repeat` step's `with`, `until` and durations: `iteration`.
    iteration: bool,
    /// In `repeat.until`: `output`, this round's.
    round_output: bool,
}

pub(crate) struct TemplateChecker<'a> {
    file: &'a SourceFile,
    workflow: &'a Workflow,
    graph: &'a Graph<'a>,
    out: &'a mut Vec<Diagnostic>,
    /// `input:` as JSON, computed once.
    input_schema: Option<Json>,
    /// Each step's declared output schema (a list for `for_each` steps), by
    /// position, worked out when a template first reads it.
    outputs: Vec<OnceCell<Json>>,
    registry: &'a Registry,
}

impl<'a> TemplateChecker<'a> {
    pub(crate) fn new(
        file: &'a SourceFile,
        workflow: &'a Workflow,
        graph: &'a Graph<'a>,
        registry: &'a Registry,
        out: &'a mut Vec<Diagnostic>,
    ) -> Self {
        let outputs = graph.steps.iter().map(|_| OnceCell::new()).collect();
        let input_schema = workflow.input.as_ref().map(Node::to_json);
        TemplateChecker { file, workflow, graph, out, input_schema, outputs, registry }
    }

    fn output_schema(&self, position: usize) -> &Json {
        self.outputs[position].get_or_init(|| {
            let step = self.graph.steps[position];
            let declared = declared_output(step, self.registry);
            if step.for_each.is_some() {
                serde_json::json!({"type": "array", "items": declared})
            } else {
                declared
            }
        })
    }

    pub(crate) fn check(&mut self) {
        for (i, step) in self.graph.steps.clone().into_iter().enumerate() {
            self.step(i, step);
        }
        let output = Scope {
            step: None,
            item: false,
            error: false,
            own_output: false,
            any_step: true,
            trigger: false,
            finally: false,
            iteration: false,
            round_output: false,
        };
        if let Some(node) = &self.workflow.output {
            self.node(node, output);
        }
        let trigger = Scope { trigger: true, any_step: false, ..output };
        for t in &self.workflow.triggers {
            if let Some(input) = &t.input {
                self.node(input, trigger);
            }
        }
    }

    fn step(&mut self, i: usize, step: &Step) {
        let failure = step.section.is_after();
        let base = Scope {
            step: Some(i),
            item: false,
            error: failure,
            own_output: false,
            any_step: failure,
            trigger: false,
            finally: step.section == Section::Finally,
            iteration: false,
            round_output: false,
        };
        for node in [&step.when, &step.for_each].into_iter().flatten() {
            self.node(node, base);
        }
        // What is rendered for each attempt: `item` in a `for_each`, `iteration` in a `repeat`.
        let attempt = Scope { item: step.for_each.is_some(), iteration: step.repeat.is_some(), ..base };
        if let Some(with) = &step.with {
            self.node(with, attempt);
        }
        let retry_from = step.retry.iter().flat_map(|r| r.iter()).flat_map(|p| [&p.delay_from, &p.max_delay_from]);
        let every_from = step.repeat.as_ref().and_then(|r| r.every_from.as_ref());
        for node in retry_from.flatten().chain(&step.timeout_from).chain(every_from) {
            self.node(node, attempt);
        }
        if let Some(repeat) = &step.repeat {
            self.node(&repeat.until, Scope { round_output: true, ..attempt });
        }
        if let Some(c) = &step.compensate {
            let scope = Scope { item: step.for_each.is_some(), error: true, own_output: true, ..base };
            if let Some(with) = &c.with {
                self.node(with, scope);
            }
        }
    }

    fn node(&mut self, node: &Node, scope: Scope) {
        match &node.value {
            Value::String(text) if is_template(text) => self.template(text, node.span, scope),
            Value::Seq(items) => items.iter().for_each(|n| self.node(n, scope)),
            Value::Map(entries) => entries.iter().for_each(|e| self.node(&e.value, scope)),
            _ => {}
        }
    }

    fn template(&mut self, text: &str, span: Span, scope: Scope) {
        let analysis = match analyze(text) {
            Ok(a) => a,
            Err(e) => {
                let at = e.position.map_or(span, |(line, col)| self.locate_position(span, text, line, col));
                self.out.push(
                    Diagnostic::new(Code::TemplateSyntax, at, format!("this template does not parse: {}", e.message))
                        .help("templates look like `{{input.order_id}}` or `{{default steps.x.output.y 0}}`"),
                );
                return;
            }
        };
        for what in &analysis.unsupported {
            self.out.push(Diagnostic::new(Code::TemplateSyntax, span, format!("templates do not support {what}")));
        }
        for helper in &analysis.helpers {
            if !HELPERS.contains(&helper.as_str()) {
                let at = self.locate(span, helper);
                self.out.push(
                    Diagnostic::new(Code::UnknownHelper, at, format!("there is no template helper `{helper}`"))
                        .maybe_help(did_you_mean(helper, HELPERS.iter().copied()))
                        .help_if_none(format!("the helpers are: {}", HELPERS.join(", "))),
                );
            }
        }
        for r in &analysis.refs {
            let at = self.locate(span, &r.raw);
            self.reference(r, at, scope);
        }
        if analysis.helpers.iter().any(|h| Signature::of(h).is_some()) {
            self.helper_calls(text, span);
        }
        for (path, literal) in super::comparisons::comparisons(text) {
            self.never_equal(&path, &literal, span);
        }
    }

    /// Each helper call's number of arguments, and the kind of each that can
    /// be known: a literal's, a helper's result, a field's schema `type`.
    fn helper_calls(&mut self, text: &str, span: Span) {
        for call in calls(text) {
            let Some(sig) = Signature::of(&call.name) else { continue };
            let n = call.args.len();
            if n < sig.min || sig.max.is_some_and(|max| n > max) {
                let at = self.locate(span, &call.name);
                self.out.push(Diagnostic::new(
                    Code::HelperArguments,
                    at,
                    format!("`{}` takes {}, not {n}", call.name, sig.arity()),
                ));
                continue;
            }
            for (i, arg) in call.args.iter().enumerate() {
                let (kinds, shown) = match arg {
                    Arg::Literal(v) => (Kinds::of(v), v.to_string()),
                    Arg::Call(name) => (Signature::of(name).map_or(Kinds::ANY, |s| s.gives), format!("({name} ...)")),
                    Arg::Path(raw) => (self.path_kinds(raw), format!("`{raw}`")),
                };
                let wanted = sig.param(i);
                if !kinds.meets(wanted) {
                    let needle = if let Arg::Path(raw) = arg { raw.as_str() } else { call.name.as_str() };
                    let at = self.locate(span, needle);
                    let what = kinds.describe();
                    self.out.push(
                        Diagnostic::new(
                            Code::HelperArguments,
                            at,
                            format!(
                                "argument {} of `{}`, {shown}, is {what}, not {}",
                                i + 1,
                                call.name,
                                wanted.describe()
                            ),
                        )
                        .help(match sig.max {
                            Some(1) => format!("`{}` takes {}", call.name, wanted.describe()),
                            _ => format!("`{}` takes {}, each {}", call.name, sig.arity(), wanted.describe()),
                        }),
                    );
                }
            }
        }
    }

    /// The kinds a path's value may have, from what declares it (any when nothing does).
    fn path_kinds(&self, raw: &str) -> Kinds {
        let parts = split_path(raw);
        let schema = match parts.split_first() {
            Some((root, rest)) if root == "input" => {
                self.input_schema.as_ref().and_then(|s| super::comparisons::schema_at(s, rest)).cloned()
            }
            Some((root, rest)) if root == "steps" && rest.get(1).is_some_and(|f| f == "output") => {
                let Some(position) = self.graph.position(&rest[0]) else { return Kinds::ANY };
                super::comparisons::schema_at(self.output_schema(position), &rest[2..]).cloned()
            }
            Some((root, rest)) if root == "steps" && rest.get(1).is_some_and(|f| f == "error") && rest.len() == 3 => {
                return Kinds::TEXT.or(Kinds::NULL)
            }
            Some((root, rest)) if (root == "index" || root == "iteration") && rest.is_empty() => return Kinds::NUMBER,
            _ => None,
        };
        // A declared field may still be missing at run time: null too.
        schema.map_or(Kinds::ANY, |s| Kinds::of_schema(&s).or(Kinds::NULL))
    }

    /// `eq`/`ne` of a field whose schema lists its values, with a literal outside them.
    fn never_equal(&mut self, path: &str, literal: &str, span: Span) {
        let parts = split_path(path);
        let schema = match parts.split_first() {
            Some((root, _)) if root == "input" => self.input_schema.clone(),
            Some((root, rest)) if root == "steps" && rest.get(1).is_some_and(|f| f == "output") => {
                let Some(position) = self.graph.position(&rest[0]) else { return };
                let fields = rest[2..].to_vec();
                return self.never_equal_in(self.output_schema(position).clone(), &fields, path, literal, span);
            }
            _ => None,
        };
        if let Some(schema) = schema {
            self.never_equal_in(schema, &parts[1..], path, literal, span);
        }
    }

    fn never_equal_in(&mut self, schema: Json, fields: &[String], path: &str, literal: &str, span: Span) {
        let Some(values) = super::comparisons::schema_at(&schema, fields).and_then(super::comparisons::listed_values)
        else {
            return;
        };
        if values.iter().any(|v| v == literal) {
            return;
        }
        let at = self.locate(span, literal);
        let listed = values.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ");
        self.out.push(
            Diagnostic::new(Code::NeverEqual, at, format!("`{path}` is one of {listed}, never `{literal}`"))
                .maybe_help(did_you_mean(literal, values.iter().map(String::as_str))),
        );
    }

    fn reference(&mut self, r: &PathRef, at: Span, scope: Scope) {
        let first = r.rest.first().map(String::as_str);
        match r.root.as_str() {
            "input" if !scope.trigger => self.input_field(r, at),
            "secrets" => {}
            "run" if scope.finally => self.fields(r, at, &["id", "workflow", "status"], "`run` has"),
            "run" if first == Some("status") => self.out.push(
                Diagnostic::new(Code::UnknownField, at, "`run.status` is only known in `finally`")
                    .help("the run's status is known once it ends; `finally` steps run then"),
            ),
            "run" => self.fields(r, at, &["id", "workflow"], "`run` has"),
            "item" | "index" if scope.item => {}
            "iteration" if scope.iteration => {}
            "iteration" => self.out.push(
                Diagnostic::new(Code::UnknownTemplateRoot, at, "`iteration` is only in scope in a `repeat` step")
                    .help("it is the round, from 1, in the step's `with`, `until` and durations"),
            ),
            "output" if scope.round_output => self.round_output(r, at, scope),
            "output" => self.out.push(
                Diagnostic::new(Code::UnknownTemplateRoot, at, "`output` alone is only in scope in `repeat.until`")
                    .help("elsewhere read a step's output as `steps.<id>.output`"),
            ),
            "item" | "index" => self.out.push(
                Diagnostic::new(
                    Code::ItemOutsideForEach,
                    at,
                    format!("`{}` is only in scope inside a `for_each` step", r.root),
                )
                .help("add `for_each` to this step, or read the list another way"),
            ),
            "error" if scope.error => self.fields(r, at, &["step", "code", "message"], "`error` has"),
            "error" => self.out.push(
                Diagnostic::new(
                    Code::ErrorOutsideFailure,
                    at,
                    "`error` is only in scope in `compensate` and `on_failure`",
                )
                .help("the error that started a roll-back is not known while the run goes forward"),
            ),
            "steps" if !scope.trigger => self.step_ref(r, first, at, scope),
            "step" if scope.own_output => {
                self.fields(r, at, &["id", "output", "error", "key", "item", "index"], "`step` has")
            }
            "step" => self.out.push(
                Diagnostic::new(Code::UnknownTemplateRoot, at, "`step` is only in scope in `compensate`")
                    .help("there it is the unit being undone; elsewhere read `steps.<id>`"),
            ),
            root => {
                let allowed: Vec<&str> = if scope.trigger { vec!["run", "secrets"] } else { ROOTS.to_vec() };
                self.out.push(
                    Diagnostic::new(Code::UnknownTemplateRoot, at, format!("a template cannot read `{root}` here"))
                        .maybe_help(did_you_mean(root, allowed.iter().copied()))
                        .help_if_none(format!("templates here read: {}", allowed.join(", "))),
                );
            }
        }
    }

    fn fields(&mut self, r: &PathRef, at: Span, fields: &[&str], what: &str) {
        self.fields_at(r, 0, at, fields, what)
    }

    /// The field at place `depth` of the path after its root must be one of `fields`.
    fn fields_at(&mut self, r: &PathRef, depth: usize, at: Span, fields: &[&str], what: &str) {
        if let Some(f) = r.rest.get(depth) {
            if !fields.contains(&f.as_str()) {
                self.out.push(
                    Diagnostic::new(Code::UnknownField, at, format!("{what} no field `{f}`"))
                        .maybe_help(did_you_mean(f, fields.iter().copied()))
                        .help_if_none(format!("{what}: {}", fields.join(", "))),
                );
            }
        }
    }

    fn input_field(&mut self, r: &PathRef, at: Span) {
        let Some(schema) = &self.input_schema else { return };
        let read = || Read { code: Code::UnknownInputField, whose: "`input`".into(), path: "input".into() };
        if let Some(d) = field_problem(schema, &r.rest, read, at) {
            self.out.push(d);
        }
    }

    fn step_ref(&mut self, r: &PathRef, target: Option<&str>, at: Span, scope: Scope) {
        let Some(target) = target else {
            self.out.push(Diagnostic::new(
                Code::UnknownField,
                at,
                "`steps` alone is not a value; read `steps.<id>.output`",
            ));
            return;
        };
        let Some(t) = self.graph.position(target) else {
            self.out.push(
                Diagnostic::new(
                    Code::UnknownStep,
                    at,
                    format!("a template reads step `{target}`, but no step has that id"),
                )
                .maybe_help(did_you_mean(target, self.graph.steps.iter().map(|s| s.id.value.as_str()))),
            );
            return;
        };
        if !self.reachable(scope, t) {
            let here = scope.step.map_or("this", |s| self.graph.steps[s].id.value.as_str());
            self.out.push(
                Diagnostic::new(
                    Code::UnreachableStep,
                    at,
                    format!("step `{here}` reads `{target}`, which is not sure to have finished when `{here}` starts"),
                )
                .help(format!("add `{target}` to the `needs` of `{here}`, directly or through a step that needs it")),
            );
        }
        match r.rest.get(1).map(String::as_str) {
            None => self.out.push(
                Diagnostic::new(Code::UnknownField, at, format!("`steps.{target}` alone is not a value"))
                    .help(format!("read `steps.{target}.output` or `steps.{target}.status`")),
            ),
            Some("status") => {}
            Some("error") => self.fields_at(r, 2, at, &["code", "message"], &format!("`steps.{target}.error` has")),
            Some("output") => self.output_ref(r, t, at, scope),
            Some(other) => self.out.push(
                Diagnostic::new(Code::UnknownField, at, format!("`steps.{target}` has no field `{other}`"))
                    .maybe_help(did_you_mean(other, ["output", "status", "error"]))
                    .help_if_none("a step has `output`, `status` and `error`"),
            ),
        }
    }

    /// `output` in `repeat.until`: this round's output, checked against what the action declares.
    fn round_output(&mut self, r: &PathRef, at: Span, scope: Scope) {
        let Some(position) = scope.step else { return };
        let step = self.graph.steps[position];
        let id = &step.id.value;
        let read =
            || Read { code: Code::UnknownOutputField, whose: format!("the output of `{id}`"), path: "output".into() };
        if let Some(d) = field_problem(&declared_output(step, self.registry), &r.rest, read, at) {
            self.out.push(d);
        }
    }

    fn reachable(&self, scope: Scope, target: usize) -> bool {
        let Some(step) = scope.step else { return true };
        let in_steps = self.graph.steps[target].section == Section::Steps;
        (scope.any_step && in_steps) || (scope.own_output && step == target) || self.graph.is_ancestor(step, target)
    }

    fn output_ref(&mut self, r: &PathRef, target: usize, at: Span, scope: Scope) {
        let step = self.graph.steps[target];
        let fields = &r.rest[2..];
        // A compensation runs only after its own step succeeded: that output is there.
        let own = scope.own_output && scope.step == Some(target);
        if step.when.is_some() && !r.guarded && !own {
            self.out.push(
                Diagnostic::new(
                    Code::MaybeSkippedOutput,
                    at,
                    format!("step `{}` has a `when` and may be skipped; its output is then null", step.id.value),
                )
                .help(format!("wrap the read in `default`, like `{{{{default {} \"\"}}}}`", r.raw)),
            );
        }
        let id = &step.id.value;
        let read = || Read {
            code: Code::UnknownOutputField,
            whose: format!("the output of `{id}`"),
            path: format!("steps.{id}.output"),
        };
        if let Some(d) = field_problem(self.output_schema(target), fields, read, at) {
            self.out.push(d);
        }
    }

    /// The span of `needle` inside the scalar at `span`, when it can be found there.
    fn locate(&self, span: Span, needle: &str) -> Span {
        let source = self.file.text.get(span.start..span.end).unwrap_or_default();
        match source.find(needle) {
            Some(i) if !needle.is_empty() => Span::new(span.start + i, span.start + i + needle.len()),
            _ => span,
        }
    }

    /// A line/column inside the template text, mapped into the file when the scalar
    /// is written on one line as it reads.
    fn locate_position(&self, span: Span, text: &str, line: usize, col: usize) -> Span {
        let source = self.file.text.get(span.start..span.end).unwrap_or_default();
        let quoted = source.starts_with('"') || source.starts_with('\'');
        let body = if quoted { source.get(1..source.len().saturating_sub(1)).unwrap_or_default() } else { source };
        if line != 1 || body != text {
            return span;
        }
        let offset: usize = text.chars().take(col.saturating_sub(1)).map(char::len_utf8).sum();
        let start = span.start + usize::from(quoted) + offset;
        Span::new(start, start + 1)
    }
}

/// The output schema a step declares: its action's, or for `mock`, the shape of
/// the literal `with.output`.
pub(crate) fn declared_output(step: &Step, registry: &Registry) -> Json {
    if step.action.value == "mock" {
        return step.with.as_ref().and_then(|w| w.get("output")).map_or(Json::Null, shape_of);
    }
    registry.get(&step.action.value).map_or(Json::Null, |r| r.spec.output_schema.clone())
}

/// A schema listing the keys of a literal value (templates give unknown
/// shapes): a mapping written out is closed, it has those keys and no other.
fn shape_of(node: &Node) -> Json {
    match &node.value {
        Value::Map(entries) => {
            let props: serde_json::Map<String, Json> =
                entries.iter().map(|e| (e.key.clone(), shape_of(&e.value))).collect();
            serde_json::json!({ "type": "object", "properties": props, "additionalProperties": false })
        }
        Value::Seq(items) => match items.first() {
            Some(first) => serde_json::json!({ "type": "array", "items": shape_of(first) }),
            None => serde_json::json!({ "type": "array" }),
        },
        _ => serde_json::json!({}),
    }
}

/// What a path reads, for the finding about it: its code, whose fields
/// ("the output of `x`", "`input`"), and the path to them.
struct Read {
    code: Code,
    whose: String,
    path: String,
}

/// A field the schema does not declare, at any depth (DSL.md A5): an error
/// when its object is closed (`additionalProperties: false`), a warning
/// otherwise (the value may carry more than it declares).
/// `read` is called only when there is something to say.
fn field_problem(schema: &Json, fields: &[String], read: impl Fn() -> Read, at: Span) -> Option<Diagnostic> {
    let mut schema = schema;
    for (depth, field) in fields.iter().enumerate() {
        let is_list = schema["type"] == "array";
        if is_list {
            if field.parse::<usize>().is_err() {
                let read = read();
                let (whose, path) = (&read.whose, &read.path);
                return Some(
                    Diagnostic::new(read.code, at, format!("{whose} is a list, so it has no field `{field}`"))
                        .help(format!("read one item, like `{path}.[0].{field}`, or `{{{{lookup {path} index}}}}`")),
                );
            }
            schema = &schema["items"];
            continue;
        }
        let props = schema["properties"].as_object()?;
        match props.get(field) {
            Some(next) => schema = next,
            None => {
                let read = read();
                let so_far = fields[..depth].iter().map(|f| format!(".{f}")).collect::<String>();
                let closed = schema["additionalProperties"] == Json::Bool(false);
                let severity = if closed { Severity::Error } else { Severity::Warning };
                let declared = props.keys().cloned().collect::<Vec<_>>().join(", ");
                let whose = if depth == 0 { read.whose.clone() } else { format!("`{}{so_far}`", read.path) };
                return Some(
                    Diagnostic::new(read.code, at, format!("{whose} has no field `{field}`"))
                        .severity(severity)
                        .maybe_help(did_you_mean(field, props.keys().map(String::as_str)))
                        .help_if_none(format!("`{}{so_far}` declares: {declared}", read.path)),
                );
            }
        }
    }
    None
}
