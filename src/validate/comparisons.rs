//! `never-equal` (DSL.md A5): an `eq` or `ne` that compares a field whose
//! schema lists its values (`enum`, `const`) with a quoted literal outside
//! them; `eq input.category 'beuaty'` is never true.

use serde_json::Value as Json;

/// Each `eq`/`ne` of a template between a path and a quoted literal, in order.
pub(crate) fn comparisons(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Most templates compare nothing: look no further then.
    if !text.as_bytes().windows(3).any(|w| w == b"eq " || w == b"ne ") {
        return out;
    }
    for block in text.split("{{").skip(1) {
        let inner = block.split("}}").next().unwrap_or_default();
        let tokens = tokens(inner);
        for w in tokens.windows(3) {
            let [Token::Word(op), a, b] = w else { continue };
            if op != "eq" && op != "ne" {
                continue;
            }
            match (a, b) {
                (Token::Word(path), Token::Quoted(literal)) | (Token::Quoted(literal), Token::Word(path)) => {
                    out.push((path.clone(), literal.clone()))
                }
                _ => {}
            }
        }
    }
    out
}

enum Token {
    Word(String),
    Quoted(String),
}

/// The words and quoted strings of an expression (parentheses and `#` apart).
fn tokens(inner: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() || matches!(c, '(' | ')' | '#' | '~') {
            chars.next();
        } else if c == '\'' || c == '"' {
            chars.next();
            out.push(Token::Quoted(chars.by_ref().take_while(|&q| q != c).collect()));
        } else {
            let mut word = String::new();
            while let Some(&w) = chars.peek().filter(|w| !w.is_whitespace() && !matches!(w, '(' | ')')) {
                word.push(w);
                chars.next();
            }
            out.push(Token::Word(word));
        }
    }
    out
}

/// The values a schema allows when it lists them, as text.
pub(crate) fn listed_values(schema: &Json) -> Option<Vec<String>> {
    let text = |v: &Json| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    if let Some(values) = schema.get("enum").and_then(Json::as_array) {
        return Some(values.iter().map(text).collect());
    }
    schema.get("const").map(|v| vec![text(v)])
}

/// The schema at `fields` below `schema` (through `properties` and list `items`).
pub(crate) fn schema_at<'a>(schema: &'a Json, fields: &[String]) -> Option<&'a Json> {
    fields.iter().try_fold(schema, |s, field| match s.get("properties").and_then(|p| p.get(field)) {
        Some(next) => Some(next),
        None if field.parse::<usize>().is_ok() => s.get("items"),
        None => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_comparisons_of_a_path_with_a_literal() {
        let found =
            comparisons("{{#if (eq input.category 'beuaty')}}x{{/if}} {{ne \"b\" steps.a.output.s}} {{eq a b}}");
        let want = [("input.category", "beuaty"), ("steps.a.output.s", "b")];
        assert_eq!(found, want.map(|(p, l)| (p.to_owned(), l.to_owned())));
    }
}
