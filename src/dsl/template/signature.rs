//! What each template helper takes and gives: the table `validate` checks
//! calls against (number and kind of arguments) and the engine's helpers
//! follow (DSL.md B3).

use handlebars::template::{HelperTemplate, Parameter, TemplateElement};
use handlebars::Template;
use serde_json::Value as Json;

/// The kinds of value an argument may have (or a helper gives), as a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Kinds(u8);

impl Kinds {
    pub(crate) const NUMBER: Kinds = Kinds(1);
    pub(crate) const TEXT: Kinds = Kinds(2);
    pub(crate) const BOOL: Kinds = Kinds(4);
    pub(crate) const LIST: Kinds = Kinds(8);
    pub(crate) const MAP: Kinds = Kinds(16);
    pub(crate) const NULL: Kinds = Kinds(32);
    pub(crate) const ANY: Kinds = Kinds(63);

    pub(crate) const fn or(self, other: Kinds) -> Kinds {
        Kinds(self.0 | other.0)
    }

    /// Whether some value of these kinds is one of `allowed`.
    pub(crate) fn meets(self, allowed: Kinds) -> bool {
        self.0 & allowed.0 != 0
    }

    /// The kind of a JSON value.
    pub(crate) fn of(value: &Json) -> Kinds {
        match value {
            Json::Null => Kinds::NULL,
            Json::Bool(_) => Kinds::BOOL,
            Json::Number(_) => Kinds::NUMBER,
            Json::String(_) => Kinds::TEXT,
            Json::Array(_) => Kinds::LIST,
            Json::Object(_) => Kinds::MAP,
        }
    }

    /// The kinds a JSON Schema allows (`type`, as a word or a list); any when it says none.
    pub(crate) fn of_schema(schema: &Json) -> Kinds {
        let one = |t: &str| match t {
            "number" | "integer" => Kinds::NUMBER,
            "string" => Kinds::TEXT,
            "boolean" => Kinds::BOOL,
            "array" => Kinds::LIST,
            "object" => Kinds::MAP,
            "null" => Kinds::NULL,
            _ => Kinds::ANY,
        };
        match &schema["type"] {
            Json::String(t) => one(t),
            Json::Array(types) => types.iter().filter_map(Json::as_str).fold(Kinds(0), |k, t| k.or(one(t))),
            _ => Kinds::ANY,
        }
    }

    /// In words, for messages: "a number", "text or a list" (null is left
    /// unsaid beside other kinds: any value may be missing).
    pub(crate) fn describe(self) -> String {
        if self != Kinds::NULL && self.meets(Kinds::NULL) {
            return Kinds(self.0 & !Kinds::NULL.0).describe();
        }
        let names = [
            (Kinds::NUMBER, "a number"),
            (Kinds::TEXT, "text"),
            (Kinds::BOOL, "true or false"),
            (Kinds::LIST, "a list"),
            (Kinds::MAP, "a mapping"),
            (Kinds::NULL, "null"),
        ];
        let words: Vec<&str> = names.iter().filter(|(k, _)| self.meets(*k)).map(|(_, w)| *w).collect();
        match words.as_slice() {
            [] => "nothing".to_owned(),
            [one] => (*one).to_owned(),
            [init @ .., last] => format!("{} or {last}", init.join(", ")),
        }
    }
}

/// A helper's arguments and result.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signature {
    pub name: &'static str,
    /// The kinds each argument may have; past the end, the last one's.
    pub params: &'static [Kinds],
    pub min: usize,
    /// None: as many as wanted.
    pub max: Option<usize>,
    pub gives: Kinds,
}

const N: Kinds = Kinds::NUMBER;
const T: Kinds = Kinds::TEXT;
const B: Kinds = Kinds::BOOL;
const A: Kinds = Kinds::ANY;
/// Text, or a number written as text.
const TN: Kinds = Kinds::TEXT.or(Kinds::NUMBER).or(Kinds::NULL);
const TL: Kinds = Kinds::TEXT.or(Kinds::LIST);

const fn sig(name: &'static str, params: &'static [Kinds], min: usize, max: Option<usize>, gives: Kinds) -> Signature {
    Signature { name, params, min, max, gives }
}

/// The helpers whose calls are checked (block helpers, `lookup` and `log` are not).
pub(crate) const SIGNATURES: &[Signature] = &[
    sig("eq", &[A, A], 2, Some(2), B),
    sig("ne", &[A, A], 2, Some(2), B),
    sig("gt", &[A, A], 2, Some(2), B),
    sig("gte", &[A, A], 2, Some(2), B),
    sig("lt", &[A, A], 2, Some(2), B),
    sig("lte", &[A, A], 2, Some(2), B),
    sig("and", &[A], 1, None, B),
    sig("or", &[A], 1, None, B),
    sig("not", &[A], 1, Some(1), B),
    sig("len", &[TL.or(Kinds::MAP).or(Kinds::NULL)], 1, Some(1), N),
    sig("json", &[A], 1, Some(1), T),
    sig("default", &[A, A], 2, Some(2), A),
    sig("add", &[N], 2, None, N),
    sig("sub", &[N, N], 2, Some(2), N),
    sig("mul", &[N], 2, None, N),
    sig("div", &[N, N], 2, Some(2), N),
    sig("mod", &[N, N], 2, Some(2), N),
    sig("round", &[N, N], 1, Some(2), N),
    sig("min", &[N], 2, None, N),
    sig("max", &[N], 2, None, N),
    sig("concat", &[TN], 2, None, T),
    sig("upper", &[T.or(Kinds::NULL)], 1, Some(1), T),
    sig("lower", &[T.or(Kinds::NULL)], 1, Some(1), T),
    sig("contains", &[TL.or(Kinds::NULL), A], 2, Some(2), B),
    sig("starts_with", &[T.or(Kinds::NULL), T], 2, Some(2), B),
];

impl Signature {
    pub(crate) fn of(name: &str) -> Option<&'static Signature> {
        SIGNATURES.iter().find(|s| s.name == name)
    }

    /// The kinds argument `i` (from 0) may have.
    pub(crate) fn param(&self, i: usize) -> Kinds {
        self.params.get(i).or(self.params.last()).copied().unwrap_or(Kinds::ANY)
    }

    /// "2 arguments", "2 or more arguments", "1 or 2 arguments".
    pub(crate) fn arity(&self) -> String {
        let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
        match self.max {
            Some(max) if max == self.min => format!("{max} {}", plural(max)),
            Some(max) if max == self.min + 1 => format!("{} or {max} {}", self.min, plural(max)),
            Some(max) => format!("{} to {max} {}", self.min, plural(max)),
            None => format!("{} or more {}", self.min, plural(2)),
        }
    }
}

/// One argument of a helper call, as written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Literal(Json),
    /// A path, as written (`input.total`).
    Path(String),
    /// A subexpression: `(add a b)` gives what `add` gives.
    Call(String),
}

/// A helper call found in a template.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    pub name: String,
    pub args: Vec<Arg>,
}

/// Every helper call of a template with positional arguments, subexpressions
/// included, in order. (A template that does not parse has none: its syntax is
/// reported elsewhere.)
pub(crate) fn calls(text: &str) -> Vec<Call> {
    let mut out = Vec::new();
    if let Ok(template) = Template::compile(text) {
        walk(&template, &mut out);
    }
    out
}

fn walk(template: &Template, out: &mut Vec<Call>) {
    for element in &template.elements {
        match element {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => helper(h, out),
            TemplateElement::HelperBlock(h) => {
                h.params.iter().for_each(|p| param(p, out));
                if let Some(t) = &h.template {
                    walk(t, out);
                }
                if let Some(t) = &h.inverse {
                    walk(t, out);
                }
            }
            _ => {}
        }
    }
}

fn helper(h: &HelperTemplate, out: &mut Vec<Call>) {
    let name = match &h.name {
        Parameter::Name(name) => name.clone(),
        Parameter::Path(path) => super::path_raw(path),
        _ => return,
    };
    // A lone name with no arguments is a path (`{{total}}`), not a call.
    if h.params.is_empty() && Signature::of(&name).is_none() {
        return;
    }
    out.push(Call { name, args: h.params.iter().map(arg).collect() });
    h.params.iter().for_each(|p| param(p, out));
}

fn param(p: &Parameter, out: &mut Vec<Call>) {
    if let Parameter::Subexpression(sub) = p {
        if let TemplateElement::Expression(h) = sub.as_element() {
            helper(h, out);
        }
    }
}

fn arg(p: &Parameter) -> Arg {
    match p {
        Parameter::Literal(value) => Arg::Literal(value.clone()),
        Parameter::Path(path) => Arg::Path(super::path_raw(path)),
        Parameter::Name(name) => Arg::Path(name.clone()),
        Parameter::Subexpression(sub) => match sub.as_element() {
            TemplateElement::Expression(h) => match &h.name {
                Parameter::Name(name) => Arg::Call(name.clone()),
                Parameter::Path(path) => Arg::Call(super::path_raw(path)),
                _ => Arg::Literal(Json::Null),
            },
            _ => Arg::Literal(Json::Null),
        },
        _ => Arg::Literal(Json::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_calls_with_their_arguments_in_subexpressions_and_blocks() {
        let found = calls("{{round (mul input.price 0.9) 2}} {{#if (contains input.tags 'vip')}}x{{/if}}");
        let want = vec![
            Call { name: "round".into(), args: vec![Arg::Call("mul".into()), Arg::Literal(json!(2))] },
            Call { name: "mul".into(), args: vec![Arg::Path("input.price".into()), Arg::Literal(json!(0.9))] },
            Call { name: "contains".into(), args: vec![Arg::Path("input.tags".into()), Arg::Literal(json!("vip"))] },
        ];
        assert_eq!(found, want);
        assert!(calls("{{input.total}}").is_empty(), "a path is not a call");
    }

    #[test]
    fn kinds_read_from_schemas_and_say_themselves() {
        assert_eq!(Kinds::of_schema(&json!({"type": "integer"})), Kinds::NUMBER);
        assert!(Kinds::of_schema(&json!({"type": ["string", "null"]})).meets(Kinds::NULL));
        assert_eq!(Kinds::of_schema(&json!({})), Kinds::ANY);
        assert_eq!(Kinds::TEXT.or(Kinds::LIST).describe(), "text or a list");
        assert_eq!(Signature::of("add").map(Signature::arity).as_deref(), Some("2 or more arguments"));
        assert_eq!(Signature::of("round").map(Signature::arity).as_deref(), Some("1 or 2 arguments"));
    }
}
