//! YAML text to a spanned [`Node`] tree, built straight from the events of
//! granit-parser (the parser under serde-saphyr). Going through serde's data
//! model cost twice the parse itself; building the tree here costs little.
//!
//! The YAML 1.2 core schema resolves plain scalars (`on`, `yes`, `no` stay text).
//! Every resource is bounded: nesting depth, nodes (aliases expanded, so no
//! "billion laughs"), anchors, and one document per file. Merge keys (`<<`) work.

mod fast;

use std::borrow::Cow;
use std::collections::HashSet;

use granit_parser::{Event, Parser, ScalarStyle, ScanError, Tag};

use super::node::{Entry, Node, Value};
use super::span::Span;

/// Bounds on what a document may make the loader build.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_anchors: usize,
}

/// Why a text is not a YAML document the loader accepts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum YamlError {
    /// Not YAML; the byte offset and the parser's words.
    Syntax {
        at: usize,
        message: String,
    },
    /// Valid YAML past a bound.
    Limit {
        at: usize,
        message: String,
    },
    DuplicateKey {
        span: Span,
        key: String,
    },
    MultipleDocuments {
        at: usize,
    },
    /// YAML the language does not take (tags, complex keys, non-finite numbers).
    Unsupported {
        span: Span,
        message: String,
    },
}

/// Parses one YAML document; an empty text is `null`.
pub(crate) fn parse(text: &str, limits: Limits) -> Result<Node, YamlError> {
    let new = || Builder { limits, stack: Vec::new(), anchors: Vec::new(), nodes: 0, documents: 0, root: None };
    let mut builder = new();
    let mut failed: Option<YamlError> = None;
    let fast = fast::feed(text, &mut |event, span| {
        if failed.is_none() {
            failed = builder.event(event, span).err();
        }
    });
    if !fast {
        // Not in the fast subset: the general parser reads it from the start.
        builder = new();
        failed = None;
        for item in Parser::new_from_str(text) {
            let (event, span) = item.map_err(|e| syntax_error(text, &e))?;
            builder.event(event, byte_span(&span))?;
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(builder.root.unwrap_or(Node { value: Value::Null, span: Span::default() }))
}

fn byte_span(span: &granit_parser::Span) -> Span {
    span.byte_range().map_or_else(Span::default, |r| Span::new(r.start, r.end))
}

fn syntax_error(text: &str, e: &ScanError) -> YamlError {
    let marker = e.marker();
    let at = marker.byte_offset().unwrap_or_else(|| char_to_byte(text, marker.index()));
    let message = e.to_string();
    // The parser's own message ends with " at byte N line L column C": the position is ours to show.
    let message = message.split(" at byte ").next().unwrap_or(&message).trim().to_owned();
    let limit = message.contains("nesting") || message.contains("limit");
    if limit {
        YamlError::Limit { at, message }
    } else {
        YamlError::Syntax { at, message }
    }
}

fn char_to_byte(text: &str, index: usize) -> usize {
    text.char_indices().nth(index).map_or(text.len(), |(i, _)| i)
}

enum Frame {
    Seq { items: Vec<Node>, span: Span, anchor: usize },
    Map { map: MapFrame, span: Span, anchor: usize },
}

#[derive(Default)]
struct MapFrame {
    entries: Vec<Entry>,
    key: Option<(String, Span, bool)>,
    /// Keys seen, once the mapping is large enough for a linear scan to be slow.
    seen: Option<HashSet<String>>,
    merges: Vec<Node>,
}

const LINEAR_SCAN_KEYS: usize = 16;

impl MapFrame {
    fn contains(&self, key: &str) -> bool {
        match &self.seen {
            Some(seen) => seen.contains(key),
            None => self.entries.iter().any(|e| e.key == key),
        }
    }

    fn insert(&mut self, entry: Entry) {
        if let Some(seen) = &mut self.seen {
            seen.insert(entry.key.clone());
        } else if self.entries.len() >= LINEAR_SCAN_KEYS {
            let mut seen: HashSet<String> = self.entries.iter().map(|e| e.key.clone()).collect();
            seen.insert(entry.key.clone());
            self.seen = Some(seen);
        }
        self.entries.push(entry);
    }
}

struct Builder {
    limits: Limits,
    stack: Vec<Frame>,
    /// Anchored nodes by anchor id, with their size in nodes.
    anchors: Vec<Option<(Node, usize)>>,
    nodes: usize,
    documents: usize,
    root: Option<Node>,
}

impl Builder {
    fn event(&mut self, event: Event, span: Span) -> Result<(), YamlError> {
        match event {
            Event::DocumentStart(..) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(YamlError::MultipleDocuments { at: span.start });
                }
                Ok(())
            }
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1, span)?;
                let node = Node { value: scalar(text, style, tag.as_deref(), span)?, span };
                self.anchor(anchor, &node, 1)?;
                self.value(node, style == ScalarStyle::Plain)
            }
            Event::SequenceStart(_, anchor, tag) => {
                reject_tag(tag.as_deref(), span)?;
                self.open(Frame::Seq { items: Vec::new(), span, anchor }, span)
            }
            Event::MappingStart(_, anchor, tag) => {
                reject_tag(tag.as_deref(), span)?;
                self.open(Frame::Map { map: MapFrame::default(), span, anchor }, span)
            }
            Event::SequenceEnd | Event::MappingEnd => self.close(),
            Event::Alias(id) => {
                let Some(Some((node, size))) = self.anchors.get(id) else {
                    return Err(YamlError::Syntax {
                        at: span.start,
                        message: "an alias names an unknown anchor".into(),
                    });
                };
                let (node, size) = (node.clone(), *size);
                self.count(size, span)?;
                self.value(Node { span, ..node }, false)
            }
            Event::UnresolvedAlias(name) => {
                Err(YamlError::Syntax { at: span.start, message: format!("the alias `*{name}` names no anchor") })
            }
            _ => Ok(()),
        }
    }

    fn count(&mut self, nodes: usize, span: Span) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > self.limits.max_nodes {
            return Err(YamlError::Limit {
                at: span.start,
                message: format!("the document holds more than {} values, aliases expanded", self.limits.max_nodes),
            });
        }
        Ok(())
    }

    fn anchor(&mut self, anchor: usize, node: &Node, size: usize) -> Result<(), YamlError> {
        if anchor == 0 {
            return Ok(());
        }
        if anchor > self.limits.max_anchors {
            return Err(YamlError::Limit {
                at: node.span.start,
                message: format!("the document defines more than {} anchors", self.limits.max_anchors),
            });
        }
        if self.anchors.len() <= anchor {
            self.anchors.resize(anchor + 1, None);
        }
        self.anchors[anchor] = Some((node.clone(), size));
        Ok(())
    }

    fn open(&mut self, frame: Frame, span: Span) -> Result<(), YamlError> {
        self.count(1, span)?;
        if self.stack.len() >= self.limits.max_depth {
            return Err(YamlError::Limit {
                at: span.start,
                message: format!("lists and mappings nest more than {} deep", self.limits.max_depth),
            });
        }
        self.stack.push(frame);
        Ok(())
    }

    fn close(&mut self) -> Result<(), YamlError> {
        let (node, anchor) = match self.stack.pop() {
            Some(Frame::Seq { items, span, anchor }) => (Node { value: Value::Seq(items), span }, anchor),
            Some(Frame::Map { map, span, anchor }) => (Node { value: Value::Map(merge(map)?), span }, anchor),
            None => return Ok(()),
        };
        if anchor != 0 {
            let size = node.count();
            self.anchor(anchor, &node, size)?;
        }
        self.value(node, false)
    }

    /// Places a finished node; `plain` says a scalar was written unquoted.
    fn value(&mut self, node: Node, plain: bool) -> Result<(), YamlError> {
        match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                Ok(())
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                Ok(())
            }
            Some(Frame::Map { map, .. }) => match map.key.take() {
                None => {
                    map.key = Some(key_text(node, plain)?);
                    Ok(())
                }
                Some((key, _, true)) if key == "<<" => {
                    map.merges.push(node);
                    Ok(())
                }
                Some((key, key_span, _)) => {
                    if map.contains(&key) {
                        return Err(YamlError::DuplicateKey { span: key_span, key });
                    }
                    map.insert(Entry { key, key_span, value: node });
                    Ok(())
                }
            },
        }
    }
}

/// Applies `<<` merge keys: merged entries come after the mapping's own, which win.
fn merge(mut map: MapFrame) -> Result<Vec<Entry>, YamlError> {
    for source in std::mem::take(&mut map.merges) {
        let sources = match source.value {
            Value::Map(entries) => vec![entries],
            Value::Seq(items) => items
                .into_iter()
                .map(|n| match n.value {
                    Value::Map(entries) => Ok(entries),
                    _ => Err(merge_error(n.span)),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(merge_error(source.span)),
        };
        for entry in sources.into_iter().flatten() {
            if !map.contains(&entry.key) {
                map.insert(entry);
            }
        }
    }
    Ok(map.entries)
}

fn merge_error(span: Span) -> YamlError {
    YamlError::Unsupported { span, message: "`<<` merges a mapping, or a list of mappings".into() }
}

/// A key as text, and whether it was written plain (so `<<` is a merge).
fn key_text(node: Node, plain: bool) -> Result<(String, Span, bool), YamlError> {
    let text = match node.value {
        Value::String(s) => s,
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Seq(_) | Value::Map(_) => {
            return Err(YamlError::Unsupported {
                span: node.span,
                message: "a key must be plain text, not a list or a mapping".into(),
            })
        }
    };
    Ok((text, node.span, plain))
}

fn reject_tag(tag: Option<&Tag>, span: Span) -> Result<(), YamlError> {
    match tag {
        None => Ok(()),
        Some(t) if t.is_yaml_core_schema() && matches!(t.suffix(), "seq" | "map") => Ok(()),
        Some(_) => Err(unsupported_tag(span)),
    }
}

fn unsupported_tag(span: Span) -> YamlError {
    YamlError::Unsupported { span, message: "YAML tags (`!name`) are not part of the workflow language".into() }
}

/// Resolves a scalar by the YAML 1.2 core schema (quoted and block scalars are text).
fn scalar(text: Cow<str>, style: ScalarStyle, tag: Option<&Tag>, span: Span) -> Result<Value, YamlError> {
    match tag {
        None if style == ScalarStyle::Plain => resolve_plain(text, span),
        None => Ok(Value::String(text.into_owned())),
        Some(t) if t.is_yaml_core_schema() => match t.suffix() {
            "str" => Ok(Value::String(text.into_owned())),
            "null" | "bool" | "int" | "float" => match resolve_plain(text, span)? {
                Value::String(text) => {
                    Err(YamlError::Unsupported { span, message: format!("`{text}` is not a {}", t.suffix()) })
                }
                v => Ok(v),
            },
            _ => Err(unsupported_tag(span)),
        },
        Some(_) => Err(unsupported_tag(span)),
    }
}

fn resolve_plain(text: Cow<str>, span: Span) -> Result<Value, YamlError> {
    Ok(match text.as_ref() {
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        "true" | "True" | "TRUE" => Value::Bool(true),
        "false" | "False" | "FALSE" => Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan" | ".NaN"
        | ".NAN" => {
            return Err(YamlError::Unsupported {
                span,
                message: format!("`{text}` is not a finite number; write a number or quote it as text"),
            })
        }
        other => match number(other) {
            Some(n) => Value::Number(n),
            None => Value::String(text.into_owned()),
        },
    })
}

fn number(text: &str) -> Option<serde_json::Number> {
    let first = *text.as_bytes().first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.')) {
        return None;
    }
    let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
    if let Some(hex) = text.strip_prefix("0x") {
        return u64::from_str_radix(hex, 16).ok().map(Into::into);
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return u64::from_str_radix(oct, 8).ok().map(Into::into);
    }
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(n) = text.parse::<i64>() {
            return Some(n.into());
        }
        if let Ok(n) = unsigned.parse::<u64>() {
            return (!text.starts_with('-')).then(|| n.into());
        }
        return text.parse::<f64>().ok().and_then(serde_json::Number::from_f64);
    }
    if is_float(unsigned) {
        return text.parse::<f64>().ok().filter(|f| f.is_finite()).and_then(serde_json::Number::from_f64);
    }
    None
}

/// `(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, the core schema's float.
fn is_float(text: &str) -> bool {
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match frac {
        Some(f) => digits(int) && digits(f) && !(int.is_empty() && f.is_empty()),
        None => !int.is_empty() && digits(int),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { max_depth: 10, max_nodes: 1000, max_anchors: 100 };

    fn values(text: &str) -> Vec<Value> {
        parse(text, LIMITS).expect("parses").items().iter().map(|n| n.value.clone()).collect()
    }

    #[test]
    fn resolves_scalars_by_the_core_schema() {
        let v = values("[on, yes, No, true, FALSE, ~, null, 12, -3, 0x1F, 0o17, 1.5, 2e3, .5, '7', 1_000, 1.2.3, 007]");
        let n = |x: serde_json::Number| Value::Number(x);
        assert_eq!(
            v,
            vec![
                Value::String("on".into()),
                Value::String("yes".into()),
                Value::String("No".into()),
                Value::Bool(true),
                Value::Bool(false),
                Value::Null,
                Value::Null,
                n(12.into()),
                n((-3).into()),
                n(31.into()),
                n(15.into()),
                n(serde_json::Number::from_f64(1.5).expect("finite")),
                n(serde_json::Number::from_f64(2000.0).expect("finite")),
                n(serde_json::Number::from_f64(0.5).expect("finite")),
                Value::String("7".into()),
                Value::String("1_000".into()),
                Value::String("1.2.3".into()),
                n(7.into()),
            ]
        );
    }

    #[test]
    fn keeps_spans_of_keys_and_values() {
        let text = "a: 1\nb:\n  - \"x\"\n";
        let root = parse(text, LIMITS).expect("parses");
        let b = root.entry("b").expect("b");
        assert_eq!(&text[b.key_span.start..b.key_span.end], "b");
        let x = &b.value.items()[0];
        assert_eq!(&text[x.span.start..x.span.end], "\"x\"");
    }

    #[test]
    fn merges_and_aliases() {
        let root = parse("base: &b {x: 1, y: 2}\nm:\n  <<: *b\n  y: 3\nl: *b\n", LIMITS).expect("parses");
        let m = root.get("m").expect("m");
        assert_eq!(m.to_json(), serde_json::json!({"y": 3, "x": 1}));
        assert_eq!(root.get("l").expect("l").to_json(), serde_json::json!({"x": 1, "y": 2}));
        let quoted = parse("\"<<\": 1\n", LIMITS).expect("parses");
        assert_eq!(quoted.to_json(), serde_json::json!({"<<": 1}));
    }

    #[test]
    fn rejects_what_the_language_does_not_take() {
        assert!(matches!(parse("a: 1\na: 2\n", LIMITS), Err(YamlError::DuplicateKey { .. })));
        assert!(matches!(parse("a: 1\n---\nb: 2\n", LIMITS), Err(YamlError::MultipleDocuments { .. })));
        assert!(matches!(parse("a: !custom x\n", LIMITS), Err(YamlError::Unsupported { .. })));
        assert!(matches!(parse("a: .inf\n", LIMITS), Err(YamlError::Unsupported { .. })));
        assert!(matches!(parse("? [a]\n: 1\n", LIMITS), Err(YamlError::Unsupported { .. })));
        assert!(matches!(parse("a: [1\n", LIMITS), Err(YamlError::Syntax { .. })));
        assert!(matches!(parse("a: *nope\n", LIMITS), Err(YamlError::Syntax { .. })));
        assert_eq!(parse("a: !!str 12\n", LIMITS).expect("parses").get("a").and_then(Node::as_str), Some("12"));
    }

    #[test]
    fn bounds_depth_nodes_and_alias_expansion() {
        assert!(matches!(
            parse(&format!("{}{}", "[".repeat(20), "]".repeat(20)), LIMITS),
            Err(YamlError::Limit { .. })
        ));
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..6u8 {
            let (me, prev) = ((b'a' + i) as char, (b'a' + i - 1) as char);
            bomb.push_str(&format!("{me}: &{me} [{}]\n", vec![format!("*{prev}"); 10].join(",")));
        }
        assert!(matches!(parse(&bomb, LIMITS), Err(YamlError::Limit { .. })));
        let many_keys: String = (0..2000).map(|i| format!("k{i}: 1\n")).collect();
        assert!(matches!(parse(&many_keys, LIMITS), Err(YamlError::Limit { .. })));
    }
}
