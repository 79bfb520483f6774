//! Templates: handlebars strings inside workflow values, parsed with handlebars'
//! own parser and walked to find what each one reads.

mod fast;
pub(crate) mod signature;

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::{Path, Template};

/// The names a template may start a path with.
pub(crate) const ROOTS: &[&str] =
    &["input", "run", "steps", "item", "index", "error", "secrets", "iteration", "output"];

/// The helpers a template may call: handlebars' own and the language's.
pub(crate) const HELPERS: &[&str] = &[
    "if",
    "unless",
    "each",
    "with",
    "lookup",
    "log",
    "eq",
    "ne",
    "gt",
    "gte",
    "lt",
    "lte",
    "and",
    "or",
    "not",
    "len",
    "json",
    "default",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "round",
    "min",
    "max",
    "concat",
    "upper",
    "lower",
    "contains",
    "starts_with",
];

/// Whether a string holds a template at all.
pub(crate) fn is_template(text: &str) -> bool {
    text.contains("{{")
}

/// A path a template reads, from one of the roots.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PathRef {
    pub root: String,
    pub rest: Vec<String>,
    /// Inside `default` or under an `if`/`unless` test: a missing value is handled.
    pub guarded: bool,
    /// As written, for messages.
    pub raw: String,
}

/// What a template reads and calls.
#[derive(Debug, Clone, Default)]
pub(crate) struct Analysis {
    /// The whole string is one `{{expression}}`: it gives a JSON value, not text.
    pub lone: bool,
    pub refs: Vec<PathRef>,
    pub helpers: Vec<String>,
    /// Constructs the language does not support (partials, decorators).
    pub unsupported: Vec<&'static str>,
}

/// A template that does not parse.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TemplateSyntaxError {
    pub message: String,
    /// Line and column inside the template text, from 1.
    pub position: Option<(usize, usize)>,
}

/// A template may be at most this long.
pub(crate) const MAX_TEMPLATE_BYTES: usize = 16 * 1024;
/// A template may open at most this many blocks (`{{#if}}`, `{{#each}}`) and nest
/// subexpressions at most this deep: the parser recurses on both.
pub(crate) const MAX_TEMPLATE_NESTING: usize = 32;

/// Rejects templates whose size or nesting could exhaust the parser's stack.
fn check_bounds(text: &str) -> Result<(), TemplateSyntaxError> {
    let too = |message: String| Err(TemplateSyntaxError { message, position: None });
    if text.len() > MAX_TEMPLATE_BYTES {
        return too(format!("the template is longer than {} KiB", MAX_TEMPLATE_BYTES / 1024));
    }
    if text.matches("{{#").count() > MAX_TEMPLATE_NESTING {
        return too(format!("the template opens more than {MAX_TEMPLATE_NESTING} blocks"));
    }
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_TEMPLATE_NESTING {
            return too(format!("the template nests parentheses more than {MAX_TEMPLATE_NESTING} deep"));
        }
    }
    Ok(())
}

/// Parses a template and lists what it reads.
pub(crate) fn analyze(text: &str) -> Result<Analysis, TemplateSyntaxError> {
    check_bounds(text)?;
    match fast::analyze(text) {
        Some(analysis) => Ok(analysis),
        None => analyze_with_handlebars(text),
    }
}

/// The reference analysis: handlebars' own parser, walked.
pub(crate) fn analyze_with_handlebars(text: &str) -> Result<Analysis, TemplateSyntaxError> {
    let template = Template::compile(text).map_err(|e| TemplateSyntaxError {
        message: plain_syntax_error(text, &e.reason().to_string()),
        position: e.pos(),
    })?;
    let mut analysis = Analysis {
        lone: matches!(
            template.elements.as_slice(),
            [TemplateElement::Expression(_) | TemplateElement::HtmlExpression(_)]
        ),
        ..Analysis::default()
    };
    Walker { out: &mut analysis }.template(&template, Scope::default());
    Ok(analysis)
}

#[derive(Clone, Copy, Default)]
struct Scope {
    /// Inside `each`/`with`: relative paths read the block's value, not the roots.
    relative: bool,
    guarded: bool,
}

struct Walker<'a> {
    out: &'a mut Analysis,
}

impl Walker<'_> {
    fn template(&mut self, template: &Template, scope: Scope) {
        for element in &template.elements {
            match element {
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => self.helper(h, scope),
                TemplateElement::HelperBlock(h) => self.block(h, scope),
                TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                    self.out.unsupported.push("decorators (`{{* ...}}`)")
                }
                TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                    self.out.unsupported.push("partials (`{{> ...}}`)")
                }
                TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
                _ => self.out.unsupported.push("this template construct"),
            }
        }
    }

    fn helper(&mut self, h: &HelperTemplate, scope: Scope) {
        let plain = h.params.is_empty() && h.hash.is_empty();
        match &h.name {
            Parameter::Name(name) if plain && !HELPERS.contains(&name.as_str()) => {
                self.path_text(name, scope);
            }
            Parameter::Name(name) => self.call(name, &h.params, &h.hash, scope),
            Parameter::Path(path) if plain && HELPERS.contains(&path_raw(path).as_str()) => {
                self.out.helpers.push(path_raw(path));
            }
            Parameter::Path(path) if plain => self.path(path, scope),
            Parameter::Path(path) => {
                let name = path_raw(path);
                self.call(&name, &h.params, &h.hash, scope);
            }
            other => self.param(other, scope),
        }
    }

    fn call(
        &mut self,
        name: &str,
        params: &[Parameter],
        hash: &std::collections::HashMap<String, Parameter>,
        scope: Scope,
    ) {
        self.out.helpers.push(name.to_owned());
        let guarded = Scope { guarded: scope.guarded || name == "default", ..scope };
        for (i, p) in params.iter().enumerate() {
            self.param(p, if i == 0 { guarded } else { scope });
        }
        for p in hash.values() {
            self.param(p, scope);
        }
    }

    fn block(&mut self, h: &HelperTemplate, scope: Scope) {
        let name = match &h.name {
            Parameter::Name(n) => n.clone(),
            Parameter::Path(p) => path_raw(p),
            _ => String::new(),
        };
        let test = Scope { guarded: scope.guarded || matches!(name.as_str(), "if" | "unless"), ..scope };
        self.call(&name, &h.params, &h.hash, test);
        let inner = match name.as_str() {
            "each" | "with" => Scope { relative: true, ..test },
            _ => test,
        };
        if let Some(t) = &h.template {
            self.template(t, inner);
        }
        if let Some(t) = &h.inverse {
            self.template(t, test);
        }
    }

    fn param(&mut self, p: &Parameter, scope: Scope) {
        match p {
            Parameter::Path(path) => self.path(path, scope),
            Parameter::Subexpression(sub) => match sub.as_element() {
                TemplateElement::Expression(h) => self.helper(h, scope),
                _ => self.out.unsupported.push("this subexpression"),
            },
            Parameter::Name(name) => self.path_text(name, scope),
            Parameter::Literal(_) => {}
            _ => {}
        }
    }

    fn path(&mut self, path: &Path, scope: Scope) {
        if let Path::Relative((_, raw)) = path {
            self.path_text(raw, scope);
        }
    }

    fn path_text(&mut self, raw: &str, scope: Scope) {
        let mut segments = split_path(raw);
        if segments.first().map(String::as_str) == Some("@root") {
            segments.remove(0);
        } else if scope.relative || raw.starts_with("..") || raw.starts_with('@') {
            return;
        } else if segments.first().map(String::as_str) == Some("this") {
            segments.remove(0);
        }
        if segments.is_empty() {
            return;
        }
        let root = segments.remove(0);
        self.out.refs.push(PathRef { root, rest: segments, guarded: scope.guarded, raw: raw.to_owned() });
    }
}

/// handlebars' parser speaks in grammar rules (`expected trailing_tilde_...`);
/// say what a person can fix instead.
fn plain_syntax_error(text: &str, raw: &str) -> String {
    if !raw.starts_with("invalid handlebars syntax") {
        return raw.to_owned();
    }
    if text.matches("{{").count() > text.matches("}}").count() {
        "a `{{` is not closed by `}}`".to_owned()
    } else if text.matches("{{#").count() > text.matches("{{/").count() {
        "a block opened with `{{#...}}` is not closed with `{{/...}}`".to_owned()
    } else {
        "what is inside `{{ }}` is not a path, a literal or a helper call".to_owned()
    }
}

fn path_raw(path: &Path) -> String {
    match path {
        Path::Relative((_, raw)) => raw.clone(),
        Path::Local((_, _, raw)) => raw.clone(),
    }
}

/// Splits `steps.x.output.[0]` or `steps/x/output` into segments, brackets removed.
pub(crate) fn split_path(raw: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '.' | '/' => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            '[' => {
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    current.push(c);
                }
                out.push(std::mem::take(&mut current));
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(text: &str) -> Vec<(String, Vec<String>, bool)> {
        analyze(text).expect("parses").refs.into_iter().map(|r| (r.root, r.rest, r.guarded)).collect()
    }

    fn r(root: &str, rest: &[&str], guarded: bool) -> (String, Vec<String>, bool) {
        (root.into(), rest.iter().map(|s| s.to_string()).collect(), guarded)
    }

    #[test]
    fn finds_paths_and_helpers() {
        assert_eq!(refs("{{input.order_id}}"), vec![r("input", &["order_id"], false)]);
        assert_eq!(refs("{{input}}"), vec![r("input", &[], false)]);
        assert_eq!(refs("id {{steps.a.output.[0].x}}!"), vec![r("steps", &["a", "output", "0", "x"], false)]);
        assert_eq!(refs("{{default steps.a.output.x 3}}"), vec![r("steps", &["a", "output", "x"], true)]);
        assert_eq!(refs("{{eq (len input.items) 0}}"), vec![r("input", &["items"], false)]);
        assert_eq!(refs("{{#each input.items}}{{sku}}{{@index}}{{/each}}"), vec![r("input", &["items"], false)]);
        assert_eq!(refs("{{#if steps.a.output}}{{steps.a.output.x}}{{/if}}").len(), 2);
        assert!(refs("{{#if steps.a.output}}{{steps.a.output.x}}{{/if}}").iter().all(|r| r.2));
        assert_eq!(refs("{{@root.input.x}}"), vec![r("input", &["x"], false)]);
        let a = analyze("{{lookup steps.a.output index}}").expect("parses");
        assert!(a.lone);
        assert_eq!(a.helpers, vec!["lookup"]);
        assert_eq!(a.refs.len(), 2);
        assert!(!analyze("a {{x}}").expect("parses").lone);
    }

    #[test]
    fn bounds_size_and_nesting() {
        assert!(analyze(&"{{#if a}}".repeat(5000)).is_err());
        assert!(analyze(&format!("{{{{eq {}a{} 1}}}}", "(len ".repeat(500), ")".repeat(500))).is_err());
        assert!(analyze(&"x".repeat(MAX_TEMPLATE_BYTES + 1)).is_err());
        assert!(analyze("{{#if a}}{{#each b}}{{c}}{{/each}}{{/if}}").is_ok());
    }

    #[test]
    fn reports_syntax_errors() {
        let message = |t: &str| analyze(t).err().map(|e| e.message).unwrap_or_default();
        assert_eq!(message("hello {{input.x"), "a `{{` is not closed by `}}`");
        assert_eq!(message("{{#if input.x}}yes"), "a block opened with `{{#...}}` is not closed with `{{/...}}`");
        assert_eq!(message("{{ a b c ( }}"), "what is inside `{{ }}` is not a path, a literal or a helper call");
        assert!(analyze("{{input.x").is_err());
        assert!(analyze("{{#if x}}no end").is_err());
        assert!(!analyze("{{> partial}}").expect("parses").unsupported.is_empty());
    }
}
