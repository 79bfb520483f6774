//! Templates at run time: every template of a workflow version is compiled once
//! into a [`ValueTemplate`] tree, then rendered against a run's context.
//!
//! The typed-value rule: a string that is exactly one `{{expression}}` gives the
//! expression's JSON value (a number stays a number, a list a list); any other
//! string renders as text. A path to a missing field, or through `null`, gives
//! `null` (empty in text); a path through a number, text or boolean is a
//! `template` error (DSL.md A5).

use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError, RenderErrorReason,
};
use serde_json::Value as Json;

use crate::dsl::node::{Node, Value};
use crate::dsl::template::{analyze, is_template, split_path};

/// A value whose strings may hold templates, compiled.
#[derive(Debug, Clone)]
pub(crate) enum ValueTemplate {
    /// No template inside: the value as written.
    Literal(Json),
    /// A string with text around its templates: renders to text. With the
    /// paths it reads, each checked not to go through a scalar.
    Text(String, Vec<Vec<String>>),
    /// A lone `{{path}}`: the value at that path.
    Path(Vec<String>),
    /// A lone `{{helper ...}}`: the helper's JSON value, and the paths it reads.
    Expression(String, Vec<Vec<String>>),
    List(Vec<ValueTemplate>),
    Map(Vec<(String, ValueTemplate)>),
}

/// A template that failed to render, with the field it is in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RenderFailure {
    pub field: String,
    pub message: String,
}

/// The templates of one workflow version, compiled into one handlebars registry.
pub(crate) struct Templates {
    registry: Handlebars<'static>,
    next: usize,
    /// The names of the secrets (`secrets.NAME`) the compiled templates read.
    secrets: std::collections::BTreeSet<String>,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub(crate) fn new() -> Self {
        let mut registry = Handlebars::new();
        // A missing value renders as nothing (`null` in `json`); a path through
        // a scalar is caught before rendering (`through_scalar`).
        registry.set_strict_mode(false);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper("json", Box::new(JsonHelper));
        super::helpers::register(&mut registry);
        Templates { registry, next: 0, secrets: Default::default() }
    }

    /// Compiles a YAML value's templates. Errors name the template's problem
    /// (the validator reports them with positions first).
    pub(crate) fn compile(&mut self, node: &Node) -> Result<ValueTemplate, String> {
        Ok(match &node.value {
            Value::String(text) if is_template(text) => self.compile_text(text)?,
            Value::Seq(items) => {
                let items = items.iter().map(|n| self.compile(n)).collect::<Result<Vec<_>, _>>()?;
                if items.iter().all(|i| matches!(i, ValueTemplate::Literal(_))) {
                    ValueTemplate::Literal(node.to_json())
                } else {
                    ValueTemplate::List(items)
                }
            }
            Value::Map(entries) => {
                let fields = entries.iter().map(|e| Ok((e.key.clone(), self.compile(&e.value)?))).collect::<Result<
                    Vec<_>,
                    String,
                >>(
                )?;
                if fields.iter().all(|(_, v)| matches!(v, ValueTemplate::Literal(_))) {
                    ValueTemplate::Literal(node.to_json())
                } else {
                    ValueTemplate::Map(fields)
                }
            }
            _ => ValueTemplate::Literal(node.to_json()),
        })
    }

    fn compile_text(&mut self, text: &str) -> Result<ValueTemplate, String> {
        let analysis = analyze(text).map_err(|e| e.message)?;
        let secrets = analysis.refs.iter().filter(|r| r.root == "secrets").filter_map(|r| r.rest.first());
        self.secrets.extend(secrets.cloned());
        if analysis.lone {
            let inner = lone_inner(text);
            if analysis.helpers.is_empty() && analysis.refs.len() == 1 && is_plain_path(inner) {
                return Ok(ValueTemplate::Path(split_path(inner)));
            }
            let name = self.register(&format!("{{{{json ({inner})}}}}"))?;
            return Ok(ValueTemplate::Expression(name, read_paths(&analysis)));
        }
        Ok(ValueTemplate::Text(self.register(text)?, read_paths(&analysis)))
    }

    /// The secrets the templates compiled so far read, by name.
    pub(crate) fn secrets_read(&self) -> Vec<String> {
        self.secrets.iter().cloned().collect()
    }

    fn register(&mut self, source: &str) -> Result<String, String> {
        let name = format!("t{}", self.next);
        self.next += 1;
        self.registry.register_template_string(&name, source).map_err(|e| e.to_string())?;
        Ok(name)
    }

    /// Renders a compiled value against a context (`input`, `steps`, `run`, ...).
    /// `field` names where the value is, for the failure message.
    pub(crate) fn render(&self, t: &ValueTemplate, ctx: &Json, field: &str) -> Result<Json, RenderFailure> {
        let fail = |message: String| RenderFailure { field: field.to_owned(), message };
        match t {
            ValueTemplate::Literal(v) => Ok(v.clone()),
            ValueTemplate::Path(path) => lookup(ctx, path).cloned().map_err(fail),
            ValueTemplate::Text(name, paths) => {
                paths.iter().try_for_each(|p| lookup(ctx, p).map(drop)).map_err(fail)?;
                self.registry.render(name, ctx).map(Json::String).map_err(|e| fail(message(&e)))
            }
            ValueTemplate::Expression(name, paths) => {
                paths.iter().try_for_each(|p| lookup(ctx, p).map(drop)).map_err(fail)?;
                let text = self.registry.render(name, ctx).map_err(|e| fail(message(&e)))?;
                serde_json::from_str(&text).map_err(|e| fail(format!("the expression gave no value: {e}")))
            }
            ValueTemplate::List(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.render(item, ctx, &format!("{field}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            ValueTemplate::Map(fields) => fields
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.render(v, ctx, &format!("{field}.{k}"))?)))
                .collect::<Result<serde_json::Map<_, _>, _>>()
                .map(Json::Object),
        }
    }
}

/// The text between `{{` and `}}` of a lone template.
fn lone_inner(text: &str) -> &str {
    let inner = text.strip_prefix("{{{").and_then(|t| t.strip_suffix("}}}"));
    inner.or_else(|| text.strip_prefix("{{").and_then(|t| t.strip_suffix("}}"))).unwrap_or(text).trim()
}

fn is_plain_path(inner: &str) -> bool {
    !inner.is_empty()
        && !inner.starts_with(['@', '.'])
        && !inner.starts_with("this")
        && inner.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
}

/// The roots of the context a path may start from; other names (`this`, a
/// block's own) are not checked.
const CONTEXT_ROOTS: &[&str] =
    &["input", "steps", "run", "item", "index", "error", "secrets", "step", "iteration", "output"];

/// The paths a template reads from the context's roots.
fn read_paths(analysis: &crate::dsl::template::Analysis) -> Vec<Vec<String>> {
    let rooted = analysis.refs.iter().filter(|r| CONTEXT_ROOTS.contains(&r.root.as_str()));
    rooted.map(|r| std::iter::once(r.root.clone()).chain(r.rest.iter().cloned()).collect()).collect()
}

static NULL: Json = Json::Null;

/// The value at a path: `null` when a field is missing or the path goes
/// through `null`; an error when it goes through a number, text or boolean,
/// or names a secret that is not set (an empty credential would be sent).
fn lookup<'a>(ctx: &'a Json, path: &[String]) -> Result<&'a Json, String> {
    if let [root, name, ..] = path {
        if root == "secrets" && ctx.get("secrets").and_then(|s| s.get(name)).is_none() {
            return Err(format!("the secret `{name}` is not set (SAGAFLOW_SECRET_{name})"));
        }
    }
    let mut value = ctx;
    for (i, seg) in path.iter().enumerate() {
        value = match value {
            Json::Object(map) => map.get(seg).unwrap_or(&NULL),
            Json::Array(items) => match seg.parse::<usize>() {
                Ok(n) => items.get(n).unwrap_or(&NULL),
                Err(_) => return Err(through(path, i, "a list")),
            },
            Json::Null => return Ok(&NULL),
            Json::Bool(_) => return Err(through(path, i, "true or false")),
            Json::Number(_) => return Err(through(path, i, "a number")),
            Json::String(_) => return Err(through(path, i, "text")),
        };
    }
    Ok(value)
}

fn through(path: &[String], i: usize, kind: &str) -> String {
    format!("`{}` is {kind}, which has no field `{}`", path[..i].join("."), path[i])
}

fn message(e: &RenderError) -> String {
    match e.reason() {
        RenderErrorReason::MissingVariable(Some(path)) => format!("`{path}` has no value"),
        other => other.to_string(),
    }
}

/// `{{json x}}`: the JSON text of a value.
struct JsonHelper;

impl HelperDef for JsonHelper {
    fn call<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        let param = h.param(0).ok_or(RenderErrorReason::ParamNotFoundForIndex("json", 0))?;
        if param.is_value_missing() {
            out.write("null")?;
            return Ok(());
        }
        out.write(&param.value().to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(yaml: &str) -> Node {
        crate::dsl::yaml::parse(yaml, crate::dsl::loader::LIMITS).expect("yaml")
    }

    fn render(yaml: &str, ctx: Json) -> Result<Json, RenderFailure> {
        let mut t = Templates::new();
        let compiled = t.compile(&node(yaml)).expect("compiles");
        t.render(&compiled, &ctx, "with")
    }

    #[test]
    fn lone_templates_keep_their_type() {
        let ctx = json!({"input": {"n": 3, "items": [1, 2], "name": "Ada", "flag": false}});
        assert_eq!(render("a: '{{input.n}}'", ctx.clone()), Ok(json!({"a": 3})));
        assert_eq!(render("a: '{{input.items}}'", ctx.clone()), Ok(json!({"a": [1, 2]})));
        assert_eq!(render("a: '{{ input.flag }}'", ctx.clone()), Ok(json!({"a": false})));
        assert_eq!(render("a: '{{len input.items}}'", ctx.clone()), Ok(json!({"a": 2})));
        assert_eq!(render("a: '{{gt input.n 2}}'", ctx.clone()), Ok(json!({"a": true})));
        assert_eq!(render("a: 'n={{input.n}}'", ctx.clone()), Ok(json!({"a": "n=3"})));
        assert_eq!(render("a: 'Hi <{{input.name}}>'", ctx.clone()), Ok(json!({"a": "Hi <Ada>"})));
        assert_eq!(render("a: '{{input.items.[1]}}'", ctx.clone()), Ok(json!({"a": 2})));
        assert_eq!(render("[1, '{{input.n}}', {b: x}]", ctx), Ok(json!([1, 3, {"b": "x"}])));
    }

    #[test]
    fn default_covers_missing_and_null() {
        let ctx = json!({"steps": {"a": {"output": null, "status": "skipped"}}, "input": {}});
        assert_eq!(render("a: '{{default steps.a.output.id \"none\"}}'", ctx.clone()), Ok(json!({"a": "none"})));
        assert_eq!(render("a: '{{default input.x 5}}'", ctx.clone()), Ok(json!({"a": 5})));
        assert_eq!(render("a: 'id {{default input.x \"-\"}}'", ctx), Ok(json!({"a": "id -"})));
    }

    /// DSL.md A5: a missing field, or a path through null, is null (empty in
    /// text); a path through a scalar fails naming the field; so does a secret
    /// that is not set.
    #[test]
    fn missing_values_are_null_and_paths_through_scalars_fail_naming_the_field() {
        let ctx = json!({"input": {"n": 1, "none": null}});
        assert_eq!(render("a: {b: '{{input.missing}}'}", ctx.clone()), Ok(json!({"a": {"b": null}})));
        assert_eq!(render("a: '{{input.none.deeper}}'", ctx.clone()), Ok(json!({"a": null})));
        assert_eq!(render("a: 'x {{input.missing}}'", ctx.clone()), Ok(json!({"a": "x "})));
        assert_eq!(render("a: 'v={{json input.missing}}'", ctx.clone()), Ok(json!({"a": "v=null"})));
        assert_eq!(render("a: '{{eq input.missing 1}}'", ctx.clone()), Ok(json!({"a": false})));
        let e = render("a: {b: '{{input.n.cents}}'}", ctx.clone()).expect_err("through a number");
        assert_eq!(e.field, "with.a.b");
        assert_eq!(e.message, "`input.n` is a number, which has no field `cents`");
        let e = render("a: 'x {{input.n.cents}} y'", ctx.clone()).expect_err("in text too");
        assert!(e.message.contains("`input.n` is a number"), "{}", e.message);
        let e = render("a: 'k={{secrets.NOT_SET}}'", ctx).expect_err("a secret not set");
        assert!(e.message.contains("SAGAFLOW_SECRET_NOT_SET"), "{}", e.message);
    }
}
