//! The language's own template helpers (DSL.md B3): arithmetic, exact in
//! decimal (`add 0.1 0.2` is 0.3, as an analyst reckons it), and text. Each
//! takes the arguments its signature in `dsl::template::signature` says; a
//! wrong one fails the render with a message naming the helper and the argument.

use handlebars::{Context, Handlebars, Helper, HelperDef, RenderContext, RenderError, RenderErrorReason, ScopedJson};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value as Json;

use crate::dsl::template::signature::{Kinds, Signature};

type Body = fn(&[Json]) -> Result<Json, String>;

/// Registers every helper of this file.
pub(super) fn register(registry: &mut Handlebars<'static>) {
    let helpers: [(&'static str, Body); 14] = [
        // `x`, or `fallback` when `x` is missing or null.
        ("default", |a| Ok(if a[0].is_null() { a[1].clone() } else { a[0].clone() })),
        ("add", |a| fold(a, Decimal::checked_add)),
        ("mul", |a| fold(a, Decimal::checked_mul)),
        ("sub", |a| fold(a, Decimal::checked_sub)),
        ("div", |a| divide(a, Decimal::checked_div)),
        ("mod", |a| divide(a, Decimal::checked_rem)),
        ("min", |a| pick(a, std::cmp::Ordering::Less)),
        ("max", |a| pick(a, std::cmp::Ordering::Greater)),
        ("round", round),
        ("concat", concat),
        ("upper", |a| text_map(a, str::to_uppercase)),
        ("lower", |a| text_map(a, str::to_lowercase)),
        ("contains", contains),
        ("starts_with", starts_with),
    ];
    for (name, body) in helpers {
        registry.register_helper(name, Box::new(Pure { name, body }));
    }
}

/// A helper that computes a value from its arguments' values alone.
struct Pure {
    name: &'static str,
    body: Body,
}

impl HelperDef for Pure {
    fn call_inner<'reg: 'rc, 'rc>(
        &self,
        h: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
    ) -> Result<ScopedJson<'rc>, RenderError> {
        let args: Vec<Json> = h.params().iter().map(|p| p.value().clone()).collect();
        let fail = |m: String| RenderError::from(RenderErrorReason::Other(format!("`{}`: {m}", self.name)));
        if let Some(sig) = Signature::of(self.name) {
            if args.len() < sig.min || sig.max.is_some_and(|max| args.len() > max) {
                return Err(fail(format!("takes {}, not {}", sig.arity(), args.len())));
            }
        }
        (self.body)(&args).map(ScopedJson::Derived).map_err(fail)
    }
}

/// Argument `i` (from 0) as an exact decimal.
fn number(args: &[Json], i: usize) -> Result<Decimal, String> {
    let v = &args[i];
    let n = v.as_number().ok_or_else(|| wrong(i, v, Kinds::NUMBER))?;
    let text = n.to_string();
    Decimal::from_str_exact(&text)
        .or_else(|_| Decimal::from_scientific(&text))
        .map_err(|_| format!("argument {} ({text}) is too large to compute with", i + 1))
}

fn wrong(i: usize, v: &Json, wanted: Kinds) -> String {
    format!("argument {} is {}, not {}", i + 1, Kinds::of(v).describe(), wanted.describe())
}

/// A decimal as JSON: a whole number without `.0`.
fn to_json(d: Decimal) -> Result<Json, String> {
    let d = d.normalize();
    if d.scale() == 0 {
        if let Ok(i) = i64::try_from(d) {
            return Ok(Json::from(i));
        }
    }
    let f = f64::try_from(d).map_err(|_| "the result cannot be written as a number".to_owned())?;
    serde_json::Number::from_f64(f).map(Json::Number).ok_or_else(|| "the result is not a number".to_owned())
}

const TOO_LARGE: &str = "the result is too large";

fn fold(args: &[Json], op: fn(Decimal, Decimal) -> Option<Decimal>) -> Result<Json, String> {
    let mut acc = number(args, 0)?;
    for i in 1..args.len() {
        acc = op(acc, number(args, i)?).ok_or(TOO_LARGE)?;
    }
    to_json(acc)
}

/// `div` (exact: `div 7 2` is 3.5) and `mod`; by zero is an error.
fn divide(args: &[Json], op: fn(Decimal, Decimal) -> Option<Decimal>) -> Result<Json, String> {
    let (a, b) = (number(args, 0)?, number(args, 1)?);
    if b.is_zero() {
        return Err("division by zero".to_owned());
    }
    to_json(op(a, b).ok_or(TOO_LARGE)?)
}

fn pick(args: &[Json], keep: std::cmp::Ordering) -> Result<Json, String> {
    let mut best = number(args, 0)?;
    for i in 1..args.len() {
        let n = number(args, i)?;
        if n.cmp(&best) == keep {
            best = n;
        }
    }
    to_json(best)
}

/// `round x` to a whole number, `round x n` to n decimals; halves away from zero.
fn round(args: &[Json]) -> Result<Json, String> {
    let x = number(args, 0)?;
    let places = match args.get(1) {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(n) if n <= 20 => n as u32,
            _ => return Err(format!("argument 2 must be a whole number of decimals from 0 to 20, not {v}")),
        },
    };
    to_json(x.round_dp_with_strategy(places, RoundingStrategy::MidpointAwayFromZero))
}

/// Text and numbers joined; null adds nothing (as in text).
fn concat(args: &[Json]) -> Result<Json, String> {
    let mut out = String::new();
    for (i, v) in args.iter().enumerate() {
        match v {
            Json::String(s) => out.push_str(s),
            Json::Number(n) => out.push_str(&n.to_string()),
            Json::Null => {}
            other => return Err(wrong(i, other, Kinds::TEXT.or(Kinds::NUMBER))),
        }
    }
    Ok(Json::String(out))
}

fn text_map(args: &[Json], f: fn(&str) -> String) -> Result<Json, String> {
    match &args[0] {
        Json::String(s) => Ok(Json::String(f(s))),
        Json::Null => Ok(Json::Null),
        other => Err(wrong(0, other, Kinds::TEXT)),
    }
}

/// Text that holds other text, or a list that holds an item equal to the value.
fn contains(args: &[Json]) -> Result<Json, String> {
    let found = match (&args[0], &args[1]) {
        (Json::Null, _) => false,
        (Json::String(hay), Json::String(needle)) => hay.contains(needle.as_str()),
        (Json::String(hay), Json::Number(n)) => hay.contains(&n.to_string()),
        (Json::String(_), other) => return Err(wrong(1, other, Kinds::TEXT)),
        (Json::Array(items), v) => items.iter().any(|item| same(item, v)),
        (other, _) => return Err(wrong(0, other, Kinds::TEXT.or(Kinds::LIST))),
    };
    Ok(Json::Bool(found))
}

/// Equal as values: numbers by value (`1` is `1.0`), the rest as JSON.
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn starts_with(args: &[Json]) -> Result<Json, String> {
    match (&args[0], &args[1]) {
        (Json::Null, _) => Ok(Json::Bool(false)),
        (Json::String(s), Json::String(prefix)) => Ok(Json::Bool(s.starts_with(prefix.as_str()))),
        (Json::String(_), other) => Err(wrong(1, other, Kinds::TEXT)),
        (other, _) => Err(wrong(0, other, Kinds::TEXT)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::template::{RenderFailure, Templates};

    fn eval(expr: &str, ctx: Json) -> Result<Json, RenderFailure> {
        let yaml = format!("v: \"{{{{{expr}}}}}\"");
        let node = crate::dsl::yaml::parse(&yaml, crate::dsl::loader::LIMITS).expect("yaml");
        let mut t = Templates::new();
        let compiled = t.compile(&node).expect("compiles");
        t.render(&compiled, &ctx, "with").map(|v| v["v"].clone())
    }

    use serde_json::Value as Json;

    fn ok(expr: &str) -> Json {
        eval(expr, json!({"input": {"price": 19.99, "qty": 3, "name": "Ada", "tags": ["vip", 2]}}))
            .unwrap_or_else(|e| panic!("{expr}: {}", e.message))
    }

    fn err(expr: &str) -> String {
        match eval(expr, json!({"input": {"price": 19.99, "name": "Ada"}})) {
            Ok(v) => panic!("{expr} gave {v}"),
            Err(e) => e.message,
        }
    }

    #[test]
    fn arithmetic_is_exact_in_decimal_and_whole_results_have_no_fraction() {
        assert_eq!(ok("add 0.1 0.2"), json!(0.3));
        assert_eq!(ok("add 1 2 3"), json!(6));
        assert_eq!(ok("sub 10 2.5"), json!(7.5));
        assert_eq!(ok("mul input.price input.qty"), json!(59.97));
        assert_eq!(ok("div 7 2"), json!(3.5));
        assert_eq!(ok("div 6 3"), json!(2));
        assert_eq!(ok("mod 7 3"), json!(1));
        assert_eq!(ok("min 4 2.5 9"), json!(2.5));
        assert_eq!(ok("max 4 2.5 9"), json!(9));
        assert_eq!(ok("round 2.5"), json!(3));
        assert_eq!(ok("round -2.5"), json!(-3));
        assert_eq!(ok("round 2.675 2"), json!(2.68));
        assert_eq!(ok("round (mul input.price 0.9) 2"), json!(17.99));
        assert_eq!(ok("gt (mul input.qty 2) 5"), json!(true));
    }

    #[test]
    fn text_helpers_join_change_case_and_search() {
        assert_eq!(ok("concat 'order-' input.qty '-' input.name"), json!("order-3-Ada"));
        assert_eq!(ok("upper input.name"), json!("ADA"));
        assert_eq!(ok("lower 'ÉTÉ'"), json!("été"));
        assert_eq!(ok("contains input.name 'd'"), json!(true));
        assert_eq!(ok("contains input.tags 'vip'"), json!(true));
        assert_eq!(ok("contains input.tags 2.0"), json!(true));
        assert_eq!(ok("contains input.tags 'gold'"), json!(false));
        assert_eq!(ok("starts_with input.name \\\"A\\\""), json!(true));
        assert_eq!(ok("contains input.missing 'x'"), json!(false));
    }

    #[test]
    fn wrong_arguments_and_division_by_zero_are_template_errors_naming_the_helper() {
        assert_eq!(err("div 1 0"), "`div`: division by zero");
        assert_eq!(err("mod 1 0"), "`mod`: division by zero");
        assert_eq!(err("add input.name 1"), "`add`: argument 1 is text, not a number");
        assert_eq!(err("add input.missing 1"), "`add`: argument 1 is null, not a number");
        assert_eq!(err("add 1"), "`add`: takes 2 or more arguments, not 1");
        assert_eq!(err("upper 3"), "`upper`: argument 1 is a number, not text");
        assert_eq!(err("round 1.5 -1"), "`round`: argument 2 must be a whole number of decimals from 0 to 20, not -1");
        assert_eq!(err("mul 99999999999999999999 99999999999999999999"), "`mul`: the result is too large");
    }
}
