//! A fast path for the templates most workflows hold: text with `{{path}}` and
//! `{{helper arg (helper arg) "text" 3}}`. Anything else (blocks, `this`, `../`,
//! `@`, hash arguments, comments, escapes) returns `None` and goes to handlebars'
//! own parser. For what it accepts it gives exactly the analysis of the walk over
//! handlebars' parse: a property test holds the two together.

use super::{Analysis, PathRef, HELPERS};

/// Analyzes `text` when it is within the fast subset.
pub(super) fn analyze(text: &str) -> Option<Analysis> {
    let mut analysis = Analysis::default();
    let mut rest = text;
    let mut mustaches = 0;
    let mut has_text = false;
    while let Some(open) = rest.find("{{") {
        let before = &rest[..open];
        if before.ends_with('\\') {
            return None;
        }
        has_text |= !before.is_empty();
        let inner_start = open + 2;
        let close = rest[inner_start..].find("}}")? + inner_start;
        let inner = &rest[inner_start..close];
        if inner.contains('{') || inner.contains('}') {
            return None;
        }
        expression(inner, &mut analysis)?;
        mustaches += 1;
        rest = &rest[close + 2..];
    }
    has_text |= !rest.is_empty();
    analysis.lone = mustaches == 1 && !has_text;
    Some(analysis)
}

#[derive(Debug, Clone, PartialEq)]
enum Token<'a> {
    Open,
    Close,
    Literal,
    Word(&'a str),
}

fn tokens(inner: &str) -> Option<Vec<Token<'_>>> {
    let mut out = Vec::new();
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            q @ (b'"' | b'\'') => {
                let end = inner[i + 1..].find(q as char)? + i + 1;
                if inner[i + 1..end].contains('\\') {
                    return None;
                }
                out.push(Token::Literal);
                i = end + 1;
            }
            _ => {
                let end = inner[i..].find([' ', '\t', '\n', '\r', '(', ')', '"', '\'']).map_or(inner.len(), |e| e + i);
                out.push(word(&inner[i..end])?);
                i = end;
            }
        }
    }
    Some(out)
}

/// A bare word: a literal, or a path of identifiers and `[digits]` segments.
fn word(w: &str) -> Option<Token<'_>> {
    if matches!(w, "true" | "false" | "null" | "undefined") {
        return Some(Token::Literal);
    }
    let first = w.as_bytes().first()?;
    if first.is_ascii_digit() || *first == b'-' {
        let digits = w.strip_prefix('-').unwrap_or(w);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        return (all_digits(int) && all_digits(frac)).then_some(Token::Literal);
    }
    let segments_ok = w.split('.').enumerate().all(|(i, seg)| identifier(seg) || (i > 0 && index(seg)));
    (segments_ok && !matches!(w.split('.').next(), Some("this" | "else"))).then_some(Token::Word(w))
}

fn identifier(seg: &str) -> bool {
    let mut bytes = seg.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn index(seg: &str) -> bool {
    seg.len() > 2
        && seg.starts_with('[')
        && seg.ends_with(']')
        && seg[1..seg.len() - 1].bytes().all(|b| b.is_ascii_digit())
}

/// One `{{ ... }}`: a path, or a helper call.
fn expression(inner: &str, out: &mut Analysis) -> Option<()> {
    let tokens = tokens(inner)?;
    let mut pos = 0;
    match tokens.as_slice() {
        [Token::Word(w)] => {
            if !w.contains('.') && HELPERS.contains(w) {
                out.helpers.push((*w).to_owned());
            } else {
                path(w, false, out);
            }
            Some(())
        }
        [Token::Word(_), ..] => {
            call(&tokens, &mut pos, false, out)?;
            (pos == tokens.len()).then_some(())
        }
        _ => None,
    }
}

/// A helper name and its parameters, up to the end or a `)`.
fn call(tokens: &[Token], pos: &mut usize, guarded: bool, out: &mut Analysis) -> Option<()> {
    let Some(Token::Word(name)) = tokens.get(*pos) else { return None };
    if name.contains('.') {
        return None;
    }
    out.helpers.push((*name).to_owned());
    *pos += 1;
    let mut first = true;
    while let Some(token) = tokens.get(*pos) {
        let param_guarded = guarded || (first && *name == "default");
        match token {
            Token::Close => break,
            Token::Literal => *pos += 1,
            Token::Word(w) => {
                path(w, param_guarded, out);
                *pos += 1;
            }
            Token::Open => {
                *pos += 1;
                let start = *pos;
                call(tokens, pos, param_guarded, out)?;
                if *pos == start + 1 || tokens.get(*pos) != Some(&Token::Close) {
                    return None;
                }
                *pos += 1;
            }
        }
        first = false;
    }
    Some(())
}

fn path(w: &str, guarded: bool, out: &mut Analysis) {
    let mut segments = w.split('.').map(|s| s.trim_start_matches('[').trim_end_matches(']').to_owned());
    let Some(root) = segments.next() else { return };
    out.refs.push(PathRef { root, rest: segments.collect(), guarded, raw: w.to_owned() });
}

#[cfg(test)]
mod tests {
    use super::super::analyze_with_handlebars;
    use proptest::prelude::*;

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("input.order_id".to_owned()),
            Just("steps.a.output.[0].x".to_owned()),
            Just("steps.my-step.output".to_owned()),
            Just("item".to_owned()),
            Just("index".to_owned()),
            Just("default steps.a.output.x 0".to_owned()),
            Just("default (lookup steps.a.output index) \"none\"".to_owned()),
            Just("eq (len input.items) 0".to_owned()),
            Just("and a b".to_owned()),
            Just("json".to_owned()),
            Just("lookup steps.x.output \"k\"".to_owned()),
            Just("gt input.total -1.5".to_owned()),
            Just("uppercase input.x".to_owned()),
            Just("true".to_owned()),
            Just("this.x".to_owned()),
            Just("../x".to_owned()),
            Just("@index".to_owned()),
            Just("#if x".to_owned()),
            Just("/if".to_owned()),
            Just("!comment".to_owned()),
            Just("x y=z".to_owned()),
            Just("(x)".to_owned()),
            Just("default".to_owned()),
            Just("a.b.".to_owned()),
            Just(".a".to_owned()),
            Just("a..b".to_owned()),
            Just("a.[x]".to_owned()),
            Just("eq a (b c".to_owned()),
            Just("'single' x".to_owned()),
            "[a-z_. ()\"0-9\\[\\]-]{0,14}",
        ]
    }

    fn template() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                fragment().prop_map(|f| format!("{{{{{f}}}}}")),
                fragment().prop_map(|f| format!("{{{{ {f} }}}}")),
                Just("text ".to_owned()),
                Just("}}".to_owned()),
                Just("{{".to_owned()),
                Just("\\{{x}}".to_owned()),
                Just("{{{x}}}".to_owned()),
                "[a-z {}]{0,6}",
            ],
            0..4,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

        /// Whatever the fast path accepts, handlebars accepts, with the same analysis.
        #[test]
        fn fast_path_agrees_with_handlebars(text in template()) {
            if let Some(fast) = super::analyze(&text) {
                let slow = analyze_with_handlebars(&text);
                prop_assert!(slow.is_ok(), "fast accepted {text:?}, handlebars: {slow:?}");
                let slow = slow.expect("checked");
                prop_assert_eq!(fast.lone, slow.lone, "lone of {:?}", text);
                prop_assert_eq!(&fast.refs, &slow.refs, "refs of {:?}", text);
                prop_assert_eq!(&fast.helpers, &slow.helpers, "helpers of {:?}", text);
                prop_assert!(slow.unsupported.is_empty());
            }
        }
    }

    #[test]
    fn takes_the_common_templates() {
        for t in [
            "{{input.x}}",
            "a {{steps.b.output.[0].c}} b",
            "{{default (lookup steps.a.output index) \"\"}}",
            "{{json}}",
        ] {
            assert!(super::analyze(t).is_some(), "{t}");
        }
        for t in ["{{#if x}}y{{/if}}", "{{this}}", "{{x y=1}}", "\\{{x}}", "{{!c}}", "{{x"] {
            assert!(super::analyze(t).is_none(), "{t}");
        }
    }
}
